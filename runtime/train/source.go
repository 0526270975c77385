package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/tasks"
)

// Source is what a Trainer draws its batches from: a synthetic task (*tasks.Task) or, for an
// image model, an ImageSource such as the OCR line renderer. Batch lays a batch out as
// tasks.Task.Batch does (batch rows of seq tokens, targets and 1/count loss weights).
type Source interface {
	Name() string
	// MaxSeqLen is the longest sequence the source produces; training seq_len must reach it.
	MaxSeqLen() int
	Batch(rng *rand.Rand, batchSize, seqLen int) (tokens, targets []uint32, weights []float32, err error)
}

// ImageBatch is a batch of an image model: the token layout of Source.Batch plus one line image
// per sequence, Pixels (batch, image_height, max_image_width) f32 row-major with 1 = ink, 0 =
// paper, padded with 0 past each line's width. Every sequence starts with the config's
// ImageTokens() image positions (position p reads strip p).
type ImageBatch struct {
	Tokens, Targets []uint32
	Weights         []float32
	Pixels          []float32
}

// ImageSource is a Source for image models.
type ImageSource interface {
	Source
	// VocabSize is the number of token ids the source's tokenizer uses; the model's vocab_size
	// must be at least this.
	VocabSize() int
	// CheckConfig errors when the model's image fields do not match the images the source makes.
	CheckConfig(c *config.ModelConfig) error
	ImageBatch(rng *rand.Rand, batchSize, seqLen int) (ImageBatch, error)
}

// Vocabulary is a text Source with its own tokenizer (runtime/textdata's tasks): the model's
// vocab_size must reach VocabSize instead of the synthetic tasks' 43 tokens.
type Vocabulary interface {
	VocabSize() int
}

// checkSource checks that the model can learn from the source: vocabulary, sequence length
// and, for image models, that source and model agree on images.
func checkSource(cfg *config.ModelConfig, tc config.TrainingConfig, src Source) error {
	img, isImage := src.(ImageSource)
	switch {
	case isImage && !cfg.HasImage():
		return fmt.Errorf("task %s gives line images, but the config has no image fields (image_height, patch_width, max_image_width)", src.Name())
	case !isImage && cfg.HasImage():
		return fmt.Errorf("the config reads images (image_height %d), but task %s gives text only", cfg.ImageHeight, src.Name())
	case isImage:
		if cfg.VocabSize < img.VocabSize() {
			return fmt.Errorf("vocab_size %d is smaller than task %s's %d tokens", cfg.VocabSize, src.Name(), img.VocabSize())
		}
		if err := img.CheckConfig(cfg); err != nil {
			return err
		}
	default:
		if v, ok := src.(Vocabulary); ok {
			if cfg.VocabSize < v.VocabSize() {
				return fmt.Errorf("vocab_size %d is smaller than task %s's %d tokens", cfg.VocabSize, src.Name(), v.VocabSize())
			}
		} else if _, err := tasks.CheckVocabSize(cfg.VocabSize); err != nil {
			return err
		}
	}
	if tc.SeqLen < src.MaxSeqLen() {
		return fmt.Errorf("training seq_len %d is too short for task %s, whose longest example needs %d", tc.SeqLen, src.Name(), src.MaxSeqLen())
	}
	return nil
}

// Package ocr reads printed text lines with an image model trained by moegpu: the tokenizer
// of the OCR vocabulary, the training task that renders lines on the fly (a train.ImageSource),
// the recognizer that turns an image file into lines of text, and the character error rate.
//
// A sequence of the OCR model is the line image's tokens (one per patch_width-pixel column
// strip, image_height pixels tall, max_image_width/patch_width of them, IMG token ids whose
// vectors get the strip's patch embedding added), then BOS, the text, and EOS. The model is
// trained on the text tokens only, and reads the text back greedily (or with MTP speculative
// decoding) after the image and BOS.
package ocr

import (
	"fmt"
	"strings"
)

// Token ids of the OCR vocabulary. The vocabulary is fixed, so a model trained on one version
// of this package reads the same ids in every other:
//
//	0 PAD   1 BOS   2 EOS   3 SEP (unused)   4 IMG (an image-strip position)
//	5..99   the printable ASCII characters ' ' (32) … '~' (126), in order
const (
	PAD = 0
	BOS = 1
	EOS = 2
	SEP = 3
	IMG = 4

	firstChar = 5
	// VocabSize is the number of token ids.
	VocabSize = firstChar + 95
)

// Encode maps printable ASCII text to token ids. Any other character (a tab, a newline,
// anything beyond ASCII) is an error naming it and its position.
func Encode(text string) ([]int, error) {
	ids := make([]int, 0, len(text))
	for i, r := range text {
		if r < ' ' || r > '~' {
			return nil, fmt.Errorf("ocr: character %q at byte %d is not printable ASCII", r, i)
		}
		ids = append(ids, firstChar+int(r-' '))
	}
	return ids, nil
}

// Decode maps ids back to text, stopping at the first EOS; PAD, BOS, SEP and IMG are dropped
// and ids outside the vocabulary are written as U+FFFD, so a wrong id is visible, not silent.
func Decode(ids []int) string {
	var b strings.Builder
	for _, id := range ids {
		switch {
		case id == EOS:
			return b.String()
		case id >= firstChar && id < VocabSize:
			b.WriteByte(byte(' ' + id - firstChar))
		case id >= 0 && id < firstChar:
		default:
			b.WriteRune('\uFFFD')
		}
	}
	return b.String()
}

// Vocab returns the text of every token id, index = id; special tokens are spelled <pad>,
// <bos>, <eos>, <sep>, <img>.
func Vocab() []string {
	v := make([]string, VocabSize)
	v[PAD], v[BOS], v[EOS], v[SEP], v[IMG] = "<pad>", "<bos>", "<eos>", "<sep>", "<img>"
	for i := 0; i < 95; i++ {
		v[firstChar+i] = string(rune(' ' + i))
	}
	return v
}

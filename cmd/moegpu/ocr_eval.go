package main

import (
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrdata"
)

// evaluateOCR scores an OCR checkpoint on n lines rendered from the held-out validation font
// families (all conditions mixed, seed fixing the lines): CER and exact lines; f16 stores the
// linear layers' weights in half precision.
func evaluateOCR(dir string, n int, seed uint64, d *gpu.Device, f16 bool, stdout io.Writer) error {
	score, routing, ms, err := scoreOCR(dir, n, seed, d, f16)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "ocr: CER %.2f%% (%d edits / %d characters), %d/%d lines exact (%.1f%%), %.1f ms/line; %d held-out lines (validation fonts, all conditions, seed %d)\n",
		100*score.CER(), score.Edits, score.RefChars, score.Exact, score.Lines, 100*score.ExactRate(), ms/float64(n), n, seed)
	printRouting(stdout, routing)
	return nil
}

// scoreOCR reads n held-out lines with an OCR checkpoint: their score, the copy-expert skips
// on image and text tokens (nil without copy experts) and the decoding time in ms.
func scoreOCR(dir string, n int, seed uint64, d *gpu.Device, f16 bool) (ocr.Score, *ocr.Routing, float64, error) {
	var score ocr.Score
	if d == nil {
		return score, nil, 0, fmt.Errorf("ocr evaluation runs on the gpu executor")
	}
	cfg, err := ocr.LoadConfig(dir)
	if err != nil {
		return score, nil, 0, err
	}
	task, err := ocr.NewTask(cfg, ocrdata.Validation)
	if err != nil {
		return score, nil, 0, err
	}
	lines, err := task.Lines(rand.New(rand.NewPCG(seed, 0x6f63725f6576616c)), n) // "ocr_eval"
	if err != nil {
		return score, nil, 0, err
	}
	const batch = 16
	dec, err := ocr.NewDecoder(dir, d, batch, f16)
	if err != nil {
		return score, nil, 0, err
	}
	defer dec.Close()
	if cfg.ZeroExpertNum > 0 {
		if err := dec.CountRouting(); err != nil {
			return score, nil, 0, err
		}
	}
	var ms float64
	for i := 0; i < len(lines); i += batch {
		part := lines[i:min(i+batch, len(lines))]
		imgs := make([][]float32, len(part))
		for j, l := range part {
			imgs[j] = l.Pixels
		}
		texts, el, err := dec.Read(imgs)
		if err != nil {
			return score, nil, 0, err
		}
		ms += float64(el.Microseconds()) / 1000
		for j, l := range part {
			score.Add(l.Text, texts[j])
		}
	}
	return score, dec.Routing, ms, nil
}

// printRouting reports each MoE layer's skip rate (copy expert taken) on image and text tokens.
func printRouting(w io.Writer, r *ocr.Routing) {
	if r == nil {
		return
	}
	for i, l := range r.Layers {
		fmt.Fprintf(w, "%s: copy expert (FFN skipped) on %.1f%% of image tokens, %.1f%% of text tokens\n",
			l, 100*r.ImageSkipRate(i), 100*r.TextSkipRate(i))
	}
}

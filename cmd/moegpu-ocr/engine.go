package main

import (
	"fmt"
	"image"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/moegpu/moegpu/assets/models"
	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// Engine reads the text of an image. The app runs one on its worker goroutine, never on the
// UI thread.
type Engine interface {
	// Recognize reads img's lines; progress, if not nil, is told after each batch.
	Recognize(img image.Image, progress ocr.Progress) (ocr.Result, error)
	// Adapter names the GPU adapter the engine runs on.
	Adapter() string
	// Close releases the model and its device.
	Close()
}

// modelDir resolves --model (see models.OCRDir). When the built-in model cannot be unpacked
// it returns the checkout's path, so the error the window shows names where the model was
// looked for.
func modelDir(flagValue string) string {
	dir, note, err := models.OCRDir(flagValue)
	if err != nil {
		log.Printf("moegpu-ocr: %v", err)
		return models.OCRSmall
	}
	if note != "" {
		log.Printf("moegpu-ocr: %s", note)
	}
	return dir
}

// realEngine is the OCR model on its own device (the window draws with another one, so
// recognition never waits on a frame and a frame never waits on recognition).
type realEngine struct {
	dev *gpu.Device
	rec *ocr.Recognizer
}

// openEngine loads the model in dir onto the adapter opt names. Its errors say what is
// missing in words the window can show.
func openEngine(dir string, opt gpu.Options, ropt ocr.Options) (Engine, error) {
	for _, f := range []string{"config.json", ocr.WeightsFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			abs, _ := filepath.Abs(dir)
			return nil, fmt.Errorf("no OCR model at %s (missing %s): start with --model DIR, a checkpoint of `moegpu train --task ocr`, or set MOEGPU_OCR_MODEL", abs, f)
		}
	}
	dev, err := gpu.Open(opt)
	if err != nil {
		return nil, fmt.Errorf("no GPU adapter for the OCR model: %w", err)
	}
	rec, err := ocr.Open(dir, dev, ropt)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("OCR model %s: %w", dir, err)
	}
	return &realEngine{dev: dev, rec: rec}, nil
}

func (e *realEngine) Recognize(img image.Image, p ocr.Progress) (ocr.Result, error) {
	return e.rec.Recognize(img, p)
}

func (e *realEngine) Adapter() string { return e.rec.Adapter() }

func (e *realEngine) Close() {
	e.rec.Close()
	e.dev.Close()
}

// fakeEngine finds an image's lines as the real one does (ocrimage.Prepare) and names them
// "line N" instead of reading them, taking Delay per line, with a confidence of 0.99 (0.6 for
// the last of three or more lines). Tests use it where no model exists;
// `--engine fake` selects it.
type fakeEngine struct{ Delay time.Duration }

func (e fakeEngine) Recognize(img image.Image, p ocr.Progress) (ocr.Result, error) {
	start := time.Now()
	lines, err := ocrimage.Prepare(img, 0, 0)
	if err != nil {
		return ocr.Result{}, err
	}
	res := ocr.Result{PrepareMs: float64(time.Since(start).Microseconds()) / 1000}
	for i, l := range lines {
		t := time.Now()
		time.Sleep(e.Delay)
		ms := float64(time.Since(t).Microseconds()) / 1000
		// The last of three or more lines is one the model would doubt, so the window shows
		// both kinds next to the selected one.
		conf := 0.99
		if i == len(lines)-1 && i >= 2 {
			conf = 0.6
		}
		res.Lines = append(res.Lines, ocr.LineResult{Box: l.Box, Text: fmt.Sprintf("line %d", i+1), Segments: len(l.Segments), Ms: ms, Confidence: conf})
		res.DecodeMs += ms
		if p != nil {
			p(i+1, len(lines))
		}
	}
	return res, nil
}

func (fakeEngine) Adapter() string { return "fake engine (no model)" }

func (fakeEngine) Close() {}

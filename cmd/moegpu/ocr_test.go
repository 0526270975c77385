package main

import (
	"encoding/json"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/procenv"
	"github.com/moegpu/moegpu/runtime/ocr"
)

// tinyOCRConfig is a small image model that trains in seconds (it reads nothing useful).
const tinyOCRConfig = `{"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2,
	"num_attention_heads": 2, "num_key_value_heads": 1, "intermediate_size": 48,
	"max_position_embeddings": 64, "sliding_window": 16, "layer_types": ["sliding_attention", "full_attention"],
	"attention_sink": true, "tie_word_embeddings": true,
	"image_height": 16, "patch_width": 8, "max_image_width": 192,
	"n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 16, "zero_expert_num": 1,
	"num_nextn_predict_layers": 1,
	"training": {"batch_size": 2, "seq_len": 58, "learning_rate": 0.01, "warmup_steps": 1}}`

func TestOCRRefusesBadImagesAndModelsNamingThem(t *testing.T) {
	dir := t.TempDir()
	notImage := filepath.Join(dir, "notes.png")
	require.NoError(t, os.WriteFile(notImage, []byte("shopping list: eggs"), 0o644))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"ocr", "--model", dir, filepath.Join(dir, "missing.png")}, "missing.png"},
		{[]string{"ocr", "--model", dir, notImage}, "notes.png"},
		{[]string{"ocr", "--model", dir, "--eval", dir}, "no NAME.gt.txt"},
		{[]string{"ocr", "--model", dir, "--eval", notImage}, "notes.png is a file"},
		{[]string{"ocr", "--model", dir, "--eval", "../../assets/samples", "--line"}, "--line: eval folder ../../assets/samples holds pages"},
		{[]string{"ocr", "--model", dir}, "give one or more image files"},
		{[]string{"ocr", "--batch", "0", "x.png"}, "--batch 0"},
		{[]string{"ocr", "--write-eval", dir, "--split", "test"}, "want validation or train"},
	} {
		code, _, errs := runCLI(c.args...)
		require.Equal(t, 1, code, "%v", c.args)
		require.Contains(t, errs, c.want, "%v", c.args)
	}
	code, _, errs := runCLI("ocr", "--model", dir, filepath.Join(dir, "missing.png"))
	require.Equal(t, 1, code)
	require.Equal(t, 1, strings.Count(errs, "missing.png"), "the file is named once: %s", errs)
	gputest.Device(t)
	code, _, errs = runCLI("ocr", "--model", dir, "../../assets/samples/receipt.png")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "not a model directory")
}

// A mistyped flag or a bad value is one line that names it and points to --help (exit status
// 2), not the error followed by every flag; --help itself still lists them.
func TestFlagMistakesAreOneLine(t *testing.T) {
	for _, args := range [][]string{{"ocr", "--bogus", "x.png"}, {"ocr", "--batch", "x", "x.png"}, {"train", "--nope"}} {
		code, out, errs := runCLI(args...)
		require.Equal(t, 2, code, "%v", args)
		require.Empty(t, out)
		require.Equal(t, 1, strings.Count(errs, "\n"), "%v: %s", args, errs)
		require.Contains(t, errs, "--help lists the flags")
	}
	code, _, errs := runCLI("ocr", "--help")
	require.Equal(t, 0, code)
	require.Contains(t, errs, "Usage: moegpu ocr")
	require.Contains(t, errs, "-no-second-look")
}

// The whole OCR command line on a tiny model trained for a few steps: train --task ocr (with
// its held-out CER and skip rates), --write-eval, --eval, --json on several images, and bench
// ocr. The numbers are meaningless; the plumbing is what is checked.
func TestOCRCommandsRunEndToEndOnATinyModel(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "tiny-ocr.json")
	require.NoError(t, os.WriteFile(cfg, []byte(tinyOCRConfig), 0o644))
	model := filepath.Join(dir, "model")
	code, out, errs := runCLI("train", "--config", cfg, "--task", "ocr", "--steps", "3", "--out", model, "--eval", "4")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "ocr: CER")
	require.Contains(t, out, "of image tokens")
	trained := out[strings.Index(out, "ocr: CER"):]

	// eval scores the checkpoint on the same held-out lines as train's end-of-run check, with
	// the task taken from the checkpoint.
	code, out, errs = runCLI("eval", "--checkpoint", model, "--n", "4")
	require.Equal(t, 0, code, errs)
	ms := regexp.MustCompile(`[0-9.]+ ms/line`)
	require.Equal(t, ms.ReplaceAllString(trained, "ms/line"), ms.ReplaceAllString(out, "ms/line"))
	code, _, errs = runCLI("eval", "--checkpoint", model, "--task", "ocr", "--speculative")
	require.NotEqual(t, 0, code)
	require.Contains(t, errs, "--speculative does not apply to --task ocr")

	evalDir := filepath.Join(dir, "eval")
	code, out, errs = runCLI("ocr", "--write-eval", evalDir, "--per-condition", "1")
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "wrote 1 line per condition")
	code, out, errs = runCLI("ocr", "--model", model, "--eval", evalDir)
	require.Equal(t, 0, code, errs)
	for _, want := range []string{"| clean | 1 |", "| noise | 1 |", "| **all** | 9 |"} {
		require.Contains(t, out, want)
	}
	// With --json: the scores and every line's reference, reading and edits.
	code, out, errs = runCLI("ocr", "--model", model, "--eval", evalDir, "--json")
	require.Equal(t, 0, code, errs)
	var rep struct {
		Overall struct{ Lines, Edits int } `json:"overall"`
		Lines   []struct {
			Set, Name, Ref, Text string
			Edits                int
		} `json:"lines"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	require.Len(t, rep.Lines, 9)
	require.Equal(t, 9, rep.Overall.Lines)
	edits := 0
	for _, l := range rep.Lines {
		require.NotEmpty(t, l.Ref)
		require.Equal(t, ocr.Levenshtein(l.Ref, l.Text), l.Edits)
		edits += l.Edits
	}
	require.Equal(t, rep.Overall.Edits, edits)

	samples, _ := filepath.Glob("../../assets/samples/*.png")
	require.Len(t, samples, 3)
	// A file that is not an image, between the samples: listed in its place with its error,
	// the others read, exit status 1.
	notImage := filepath.Join(dir, "notes.png")
	require.NoError(t, os.WriteFile(notImage, []byte("just some text"), 0o644))
	// --all-lines: the tiny model doubts every line it reads, and reads some as punctuation.
	args := []string{"ocr", "--model", model, "--json", "--all-lines", samples[0], notImage, samples[1], samples[2]}
	code, out, errs = runCLI(args...)
	require.Equal(t, 1, code, errs)
	var res []struct {
		File  string `json:"file"`
		Error string `json:"error"`
		Lines []struct {
			Box        struct{ X0, Y0, X1, Y1 int } `json:"box"`
			Text       string                       `json:"text"`
			Ms         float64                      `json:"ms"`
			Confidence float64                      `json:"confidence"`
		} `json:"lines"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &res))
	require.Len(t, res, 4)
	require.Equal(t, notImage, res[1].File)
	require.Contains(t, res[1].Error, "not an image")
	require.Nil(t, res[1].Lines)
	res = append(res[:1], res[2:]...)
	for i, r := range res {
		require.Empty(t, r.Error)
		for _, l := range r.Lines {
			require.Greater(t, l.Confidence, 0.0, r.File)
			require.LessOrEqual(t, l.Confidence, 1.0, r.File)
			require.Equal(t, math.Round(l.Ms*100)/100, l.Ms, "ms to 0.01")
		}
		require.Equal(t, samples[i], r.File, "in the order given")
		if strings.HasSuffix(r.File, "paragraph.png") {
			require.Len(t, r.Lines, 3, "the paragraph's three lines")
			require.Less(t, r.Lines[0].Box.Y1, r.Lines[1].Box.Y1, "in reading order")
		} else {
			require.Len(t, r.Lines, 1, r.File)
		}
	}
	// "-" reads standard input: the same text as the file.
	code, want, errs := runCLI("ocr", "--model", model, samples[1])
	require.Equal(t, 0, code, errs)
	f, err := os.Open(samples[1])
	require.NoError(t, err)
	defer func(r io.Reader) { ocrStdin = r }(ocrStdin)
	ocrStdin = f
	code, out, errs = runCLI("ocr", "--model", model, "-")
	f.Close()
	require.Equal(t, 0, code, errs)
	require.Equal(t, want, out)
	// Every file unreadable: still a JSON array, exit status 1.
	code, out, _ = runCLI("ocr", "--model", model, "--json", notImage)
	require.Equal(t, 1, code)
	var bad []struct{ File, Error string }
	require.NoError(t, json.Unmarshal([]byte(out), &bad), out)
	require.Len(t, bad, 1)
	require.Equal(t, notImage, bad[0].File)
	require.Contains(t, bad[0].Error, "not an image")
	code, _, errs = runCLI("ocr", "--model", model, "-", "-")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "standard input (-) can be given once")

	code, out, errs = runCLI("ocr", "--model", model, "--speculative", "--json", samples[0])
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, `"speculative"`)

	code, out, errs = runCLI("bench", "ocr", evalDir, "--model", model)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "| **all** | 9 |")

	// With a stand-in Tesseract that reads every line as "text" and records its environment:
	// its column is scored, and it runs in the user's environment, not in the one this process
	// restarted itself with (procenv), whose huge pages would change its time too.
	fake := filepath.Join(dir, "tesseract")
	require.NoError(t, os.WriteFile(fake, []byte(`#!/bin/sh
if [ "$1" = "--version" ]; then echo "tesseract 0.0 (stand-in)"; exit 0; fi
env > "$(dirname "$0")/env.txt"
while read -r f; do printf 'text\n\f'; done < "$1"
`), 0o755))
	code, out, errs = runCLI("bench", "ocr", evalDir, "--model", model, "--tesseract", fake)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "tesseract 0.0 (stand-in)")
	require.Regexp(t, `\| \*\*all\*\* \| 9 \| [0-9.]+% \| [0-9.]+% \|`, out, "both CER columns")
	env, err := os.ReadFile(filepath.Join(dir, "env.txt"))
	require.NoError(t, err)
	require.Contains(t, string(env), "OMP_THREAD_LIMIT=1")
	require.NotContains(t, string(env), procenv.AddedEnv)
	if strings.Contains(os.Getenv(procenv.AddedEnv), "GLIBC_TUNABLES") {
		require.NotContains(t, string(env), "glibc.malloc.hugetlb=1", "the setting the restart added")
	}
}

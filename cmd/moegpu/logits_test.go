package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/tasks"
)

// readNpy decodes a float32 .npy as written by npy: its shape and values.
func readNpy(t *testing.T, path string) ([]int, []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "\x93NUMPY\x01\x00", string(b[:8]))
	hl := int(binary.LittleEndian.Uint16(b[8:10]))
	require.Zero(t, (10+hl)%64, "the data starts 64-byte aligned")
	hdr := string(b[10 : 10+hl])
	require.Contains(t, hdr, "'descr': '<f4'")
	sh := hdr[strings.Index(hdr, "(")+1 : strings.Index(hdr, ")")]
	var shape []int
	n := 1
	for _, f := range strings.Split(sh, ",") {
		if f = strings.TrimSpace(f); f != "" {
			var d int
			require.NoError(t, json.Unmarshal([]byte(f), &d))
			shape, n = append(shape, d), n*d
		}
	}
	data := b[10+hl:]
	require.Len(t, data, 4*n)
	v := make([]float32, n)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
	}
	return shape, v
}

func argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

func TestLogitsWritesEveryPositionAndAgreesWithGenerate(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	ck := filepath.Join(dir, "run")
	code, _, errs := runCLI("train", "--config", "../../assets/configs/tiny-dense.json", "--task", "copy",
		"--steps", "2", "--out", ck, "--eval", "0")
	require.Equal(t, 0, code, errs)

	// One prompt as .npy: [T, vocab]; its last row's argmax is the token generate picks first.
	one := filepath.Join(dir, "one.npy")
	code, _, errs = runCLI("logits", "--checkpoint", ck, "--prompt", "abc", "--out", one)
	require.Equal(t, 0, code, errs)
	shape, v := readNpy(t, one)
	require.Equal(t, []int{5, tasks.VocabSize}, shape) // BOS a b c SEP
	code, gen, errs := runCLI("generate", "--checkpoint", ck, "--prompt", "abc", "--max-tokens", "1")
	require.Equal(t, 0, code, errs)
	require.Equal(t, tasks.DecodeAnswer([]int{argmax(v[4*tasks.VocabSize:])}), strings.TrimSpace(gen))

	// A batch of rows as JSON: [B, T, vocab]; a dense model's row 0 is the single sequence's logits.
	rows := filepath.Join(dir, "rows.json")
	require.NoError(t, os.WriteFile(rows, []byte("[[1, 14, 15, 16, 3], [1, 20, 21, 22, 3]]"), 0o644))
	js := filepath.Join(dir, "rows.json.out.json")
	grads := filepath.Join(dir, "grads.safetensors")
	code, _, errs = runCLI("logits", "--checkpoint", ck, "--tokens", rows, "--out", js, "--grads", grads)
	require.Equal(t, 0, code, errs)
	raw, err := os.ReadFile(js)
	require.NoError(t, err)
	var doc struct {
		Shape  []int         `json:"shape"`
		Logits [][][]float32 `json:"logits"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	require.Equal(t, []int{2, 5, tasks.VocabSize}, doc.Shape)
	for i := 0; i < 5; i++ {
		for j := 0; j < tasks.VocabSize; j++ {
			require.InDelta(t, v[i*tasks.VocabSize+j], doc.Logits[0][i][j], 1e-5)
		}
	}
	f, err := safetensors.Read(grads)
	require.NoError(t, err)
	loss, ok := f.Get("loss")
	require.True(t, ok)
	lv, err := loss.Float32()
	require.NoError(t, err)
	require.Greater(t, lv[0], float32(0))
	g, ok := f.Get("model.layers.0.self_attn.q_proj.weight")
	require.True(t, ok)
	require.Equal(t, []int{64, 64}, g.Shape)
}

func TestLogitsRefusesBadArguments(t *testing.T) {
	gputest.Device(t)
	dir := t.TempDir()
	ck := filepath.Join(dir, "run")
	code, _, errs := runCLI("train", "--config", "../../assets/configs/tiny-dense.json", "--task", "copy",
		"--steps", "1", "--out", ck, "--eval", "0")
	require.Equal(t, 0, code, errs)
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--prompt", "ab", "--tokens", file("a.json", "[1]")}, "exactly one of"},
		{[]string{}, "exactly one of"},
		{[]string{"--tokens", file("big.json", "[1, 43]")}, "outside the vocabulary"},
		{[]string{"--tokens", file("ragged.json", "[[1, 2], [1]]")}, "equally long"},
		{[]string{"--tokens", file("empty.json", "[]")}, "no tokens"},
		{[]string{"--tokens", file("long.json", "["+strings.Repeat("1, ", 64)+"1]")}, "max_position_embeddings"},
		{[]string{"--prompt", "ab", "--mtp-out", filepath.Join(dir, "m.npy")}, "no MTP modules"},
		{[]string{"--prompt", "ab", "--pixels", file("p.npy", "x")}, "reads no image"},
		{[]string{"--prompt", "AB"}, "not in the vocabulary"},
	} {
		code, _, errs := runCLI(append([]string{"logits", "--checkpoint", ck, "--out", filepath.Join(dir, "o.npy")}, c.args...)...)
		require.Equal(t, 1, code, "%v", c.args)
		require.Contains(t, errs, c.want, "%v", c.args)
	}
}

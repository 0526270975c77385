package main

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/model"
	"github.com/moegpu/moegpu/runtime/safetensors"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
	"github.com/moegpu/moegpu/runtime/weights"
)

// runLogits writes the logits of every position of a token sequence (or a
// batch of them), so that another implementation of the model (the PyTorch
// one in python/moegpu_torch) can be compared with moegpu number for
// number. The forward pass is the training graph's (model.BuildTrain: one
// pass over whole sequences at positions 0 … T−1), so an MoE layer routes
// the B·T tokens of the file as one batch, as training does (this matters
// only for capacity_factor, whose cap counts the batch's tokens).
//
// Formats. --tokens FILE is JSON: one sequence [1, 14, 3] or a batch of
// equal-length rows [[1, 14, 3], [1, 15, 3]]. --out F.npy writes a NumPy
// .npy array, float32 little-endian, shape [T, vocab] for one sequence and
// [B, T, vocab] for a batch; any other extension writes JSON
// {"shape": [...], "logits": nested lists} with the same shape. --mtp-out
// writes the MTP modules' logits with a leading axis D (module k at index
// k−1: it reads the tokens k ahead, PAD past the end, and predicts the token
// k+1 ahead). --grads F runs the training loss on the same tokens (targets:
// each row's next token, every position but the last, weights 1/count; the
// MoE balance losses and the MTP losses with λ = mtp_loss_weight, as a
// training step at that λ) backward, and writes each parameter's gradient
// under the parameter's name, plus "loss", "lm_loss" and "mtp.K.loss" (1),
// to a safetensors file. An image (OCR) model also needs --pixels, a float32
// .npy of the line images ([image_height, max_image_width] or [B, …]); its
// positions p < image tokens read column strip p, as in training.
func runLogits(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("logits", "logits --checkpoint DIR (--tokens FILE | --prompt TEXT) [--out F] [flags]", stderr)
	dir := fs.String("checkpoint", "out/run", "checkpoint directory (moegpu train, or moegpu_torch.save)")
	tokPath := fs.String("tokens", "", "JSON file of token ids: one sequence [1, 14, 3] or equal-length rows [[…], […]]")
	prompt := fs.String("prompt", "", "prompt text instead of --tokens: the sequence BOS prompt SEP, as generate feeds it")
	out := fs.String("out", "logits.npy", "output: .npy (float32, [T, vocab], or [B, T, vocab] for rows) or .json")
	mtpOut := fs.String("mtp-out", "", "also write the MTP modules' logits here ([D, T, vocab] or [D, B, T, vocab]; .npy or .json)")
	gradsOut := fs.String("grads", "", "also write the training loss's gradient of every parameter, and the losses, to this safetensors file")
	pixPath := fs.String("pixels", "", "image models (OCR): the line images, a float32 .npy of shape [image_height, max_image_width] (one row) or [B, image_height, max_image_width], 1 = ink")
	var rf runFlags
	rf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if (*tokPath == "") == (*prompt == "") {
		return fmt.Errorf("give exactly one of --tokens FILE and --prompt TEXT")
	}
	defer rf.prof.start()()
	_, cfg, err := train.LoadState(*dir)
	if err != nil {
		return err
	}
	var rows [][]int
	batched := false
	if *prompt != "" {
		toks, err := tasks.PromptTokens(*prompt)
		if err != nil {
			return err
		}
		rows = [][]int{toks}
	} else if rows, batched, err = readTokenRows(*tokPath); err != nil {
		return err
	}
	B, T := len(rows), len(rows[0])
	if T > cfg.MaxPositionEmbeddings {
		return fmt.Errorf("%d tokens per sequence is more than the checkpoint's max_position_embeddings (%d)", T, cfg.MaxPositionEmbeddings)
	}
	for b, r := range rows {
		for i, id := range r {
			if id < 0 || id >= cfg.VocabSize {
				return fmt.Errorf("token %d of row %d is %d, outside the vocabulary (vocab_size %d)", i, b, id, cfg.VocabSize)
			}
		}
	}
	if *mtpOut != "" && !cfg.HasMTP() {
		return fmt.Errorf("--mtp-out: the checkpoint's model has no MTP modules (num_nextn_predict_layers is 0)")
	}
	var pixels []float32
	if cfg.HasImage() != (*pixPath != "") {
		if *pixPath == "" {
			return fmt.Errorf("the checkpoint's model reads an image: give --pixels")
		}
		return fmt.Errorf("--pixels: the checkpoint's model reads no image (its config has no image_height)")
	}
	if *pixPath != "" {
		if pixels, err = readPixels(*pixPath, B, cfg.ImageHeight, cfg.MaxImageWidth); err != nil {
			return err
		}
	}
	res, err := computeLogits(cfg, *dir, rows, pixels, *gradsOut != "", rf)
	if err != nil {
		return err
	}
	shape := []int{T, cfg.VocabSize}
	if batched {
		shape = []int{B, T, cfg.VocabSize}
	}
	if err := writeArray(*out, shape, res.logits); err != nil {
		return err
	}
	if *mtpOut != "" {
		var all []float32
		for _, l := range res.mtp {
			all = append(all, l...)
		}
		if err := writeArray(*mtpOut, append([]int{len(res.mtp)}, shape...), all); err != nil {
			return err
		}
	}
	if *gradsOut != "" {
		if err := safetensors.Write(*gradsOut, res.grads, map[string]string{"format": "pt"}); err != nil {
			return err
		}
	}
	fmt.Fprintf(stderr, "logits of %d×%d positions (vocab %d) written to %s\n", B, T, cfg.VocabSize, *out)
	return nil
}

// logitsResult is what computeLogits reads back: the main logits (B·T,
// vocab), each MTP module's, and with gradients the safetensors tensors.
type logitsResult struct {
	logits []float32
	mtp    [][]float32
	grads  []safetensors.Tensor
}

// computeLogits runs the training graph's forward (and with grads its
// backward) over rows on the checkpoint's weights.
func computeLogits(cfg *config.ModelConfig, dir string, rows [][]int, pixels []float32, grads bool, rf runFlags) (*logitsResult, error) {
	B, T := len(rows), len(rows[0])
	m, err := model.BuildTrain(cfg, B, T)
	if err != nil {
		return nil, err
	}
	g := m.Graph
	outputs := []*graph.Tensor{m.Logits}
	for _, mod := range m.MTP {
		outputs = append(outputs, mod.Logits)
	}
	params := m.Params()
	if grads {
		if err := g.Backward(m.Loss); err != nil {
			return nil, fmt.Errorf("backward: %w", err)
		}
		keep := append([]*graph.Tensor{m.Loss, m.LMLoss}, m.MTPLoss...)
		for _, p := range params {
			if p.Grad == nil {
				return nil, fmt.Errorf("parameter %s gets no gradient", p.Name)
			}
			keep = append(keep, p.Grad)
		}
		g.FuseAccumulate(append(keep, outputs...)...) // as the trainer builds its step
		outputs = append(outputs, keep...)
	}
	if err := g.Err(); err != nil {
		return nil, err
	}
	d, err := rf.open()
	if err != nil {
		return nil, err
	}
	defer d.Close()
	align := uint64(256)
	if d != nil {
		align = uint64(d.Limits.MinStorageBufferOffsetAlignment)
	}
	plan, err := g.Plan(outputs, align)
	if err != nil {
		return nil, err
	}
	var ex graph.Executor
	switch rf.executor {
	case train.GPU:
		if ex, err = graph.NewGPU(d, plan, nil); err != nil {
			return nil, err
		}
	case train.Reference:
		ex = graph.NewReference(plan)
	default:
		return nil, fmt.Errorf("unknown executor %q (want gpu or reference)", rf.executor)
	}
	defer ex.Close()
	if err := weights.Load(ex, filepath.Join(dir, train.WeightsFile), append(params, m.State()...)); err != nil {
		return nil, err
	}
	n := B * T
	tokens, targets := make([]uint32, n), make([]uint32, n)
	pos, tok, tgt, w := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	count := 0
	for b, r := range rows {
		for i, id := range r {
			at := b*T + i
			tokens[at], targets[at] = uint32(id), graph.IgnoreTarget
			if i+1 < T {
				targets[at] = uint32(r[i+1])
				count++
			}
			pos[at], tok[at], tgt[at] = float64(i), float64(id), float64(targets[at])
		}
	}
	for i := range w {
		if targets[i] != graph.IgnoreTarget {
			w[i] = float64(float32(1 / float64(count)))
		}
	}
	set := func(t *graph.Tensor, v []float64) {
		if err == nil {
			err = ex.Set(t, v)
		}
	}
	set(m.Tokens, tok)
	set(m.Positions, pos)
	set(m.Targets, tgt)
	set(m.Weights, w)
	if m.PixelValues != nil {
		cols := make([]float64, n)
		for i := range cols {
			cols[i] = graph.NoPatch
			if p := i % T; p < cfg.ImageTokens() {
				cols[i] = float64(p) // the image tokens come first: position p reads strip p
			}
		}
		set(m.PixelValues, f32f(pixels))
		set(m.PatchCols, cols)
	}
	if len(m.MTP) > 0 {
		set(m.MTPLambda, []float64{float64(float32(cfg.MTPLossWeight / float64(len(m.MTP))))})
		for k := range m.MTP {
			mt, mg, mw := model.ShiftForMTP(tokens, targets, B, T, k+1, tasks.PAD, graph.IgnoreTarget)
			set(m.MTPTokens[k], u32f(mt))
			set(m.MTPTargets[k], u32f(mg))
			set(m.MTPWeights[k], f32f(mw))
		}
	}
	if err != nil {
		return nil, err
	}
	if err := ex.Run(); err != nil {
		return nil, err
	}
	vals, err := ex.Get(outputs...)
	if err != nil {
		return nil, err
	}
	res := &logitsResult{logits: toF32(vals[0])}
	for k := range m.MTP {
		res.mtp = append(res.mtp, toF32(vals[1+k]))
	}
	if grads {
		v := vals[1+len(m.MTP):]
		scalar := func(name string, x []float64) error {
			t, err := safetensors.FromFloat32(name, []int{1}, toF32(x))
			res.grads = append(res.grads, t)
			return err
		}
		if err := scalar("loss", v[0]); err != nil {
			return nil, err
		}
		if err := scalar("lm_loss", v[1]); err != nil {
			return nil, err
		}
		for k := range m.MTPLoss {
			if err := scalar(fmt.Sprintf("mtp.%d.loss", k+1), v[2+k]); err != nil {
				return nil, err
			}
		}
		// A fused parameter's gradient is written part by part, under the
		// names its checkpoint uses.
		gs, err := weights.Tensors(params, v[2+len(m.MTPLoss):])
		if err != nil {
			return nil, err
		}
		res.grads = append(res.grads, gs...)
	}
	return res, nil
}

// readTokenRows reads a --tokens file: a JSON list of ids (one row,
// batched false), or a list of equal-length, non-empty lists of ids.
func readTokenRows(path string) (rows [][]int, batched bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	var one []int
	if json.Unmarshal(b, &one) == nil {
		if len(one) == 0 {
			return nil, false, fmt.Errorf("%s: no tokens", path)
		}
		return [][]int{one}, false, nil
	}
	if err := json.Unmarshal(b, &rows); err != nil {
		return nil, false, fmt.Errorf("%s: want a JSON list of token ids or a list of equal-length lists: %w", path, err)
	}
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil, false, fmt.Errorf("%s: no tokens", path)
	}
	for i, r := range rows {
		if len(r) != len(rows[0]) {
			return nil, false, fmt.Errorf("%s: row %d has %d tokens, row 0 has %d (rows must be equally long)", path, i, len(r), len(rows[0]))
		}
	}
	return rows, true, nil
}

// readPixels reads a --pixels file: a float32 .npy (little-endian, C
// order) of shape [h, w] (batch 1) or [batch, h, w].
func readPixels(path string, batch, h, w int) ([]float32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	bad := func(why string) error { return fmt.Errorf("--pixels %s: %s", path, why) }
	if len(b) < 10 || string(b[:6]) != "\x93NUMPY" {
		return nil, bad("not a .npy file")
	}
	hl, start := int(binary.LittleEndian.Uint16(b[8:10])), 10
	if b[6] >= 2 {
		if len(b) < 12 {
			return nil, bad("truncated header")
		}
		hl, start = int(binary.LittleEndian.Uint32(b[8:12])), 12
	}
	if len(b) < start+hl {
		return nil, bad("truncated header")
	}
	hdr := strings.ReplaceAll(string(b[start:start+hl]), " ", "")
	if !strings.Contains(hdr, "'descr':'<f4'") || !strings.Contains(hdr, "'fortran_order':False") {
		return nil, bad("want a little-endian float32 array in C order ('<f4')")
	}
	want := fmt.Sprintf("'shape':(%d,%d,%d)", batch, h, w)
	if !strings.Contains(hdr, want) && !(batch == 1 && strings.Contains(hdr, fmt.Sprintf("'shape':(%d,%d)", h, w))) {
		return nil, bad(fmt.Sprintf("header %s: want shape (%d, %d, %d) (rows, image_height, max_image_width)", hdr, batch, h, w))
	}
	data := b[start+hl:]
	if len(data) != 4*batch*h*w {
		return nil, bad(fmt.Sprintf("%d data bytes, want %d", len(data), 4*batch*h*w))
	}
	out := make([]float32, batch*h*w)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		if math.IsNaN(float64(out[i])) || math.IsInf(float64(out[i]), 0) {
			return nil, bad(fmt.Sprintf("pixel %d is %v", i, out[i]))
		}
	}
	return out, nil
}

// writeArray writes v (row-major, of the given shape) as .npy (float32) or,
// for a .json path, as {"shape": …, "logits": nested lists}.
func writeArray(path string, shape []int, v []float32) error {
	if strings.HasSuffix(strings.ToLower(path), ".json") {
		var nest func(d int, v []float32) any
		nest = func(d int, v []float32) any {
			if d == len(shape)-1 {
				return v
			}
			step := len(v) / shape[d]
			out := make([]any, shape[d])
			for i := range out {
				out[i] = nest(d+1, v[i*step:(i+1)*step])
			}
			return out
		}
		for _, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("%s: the logits hold %v, which JSON cannot write; use .npy", path, x)
			}
		}
		b, err := json.Marshal(map[string]any{"shape": shape, "logits": nest(0, v)})
		if err != nil {
			return err
		}
		return atomicfile.Write(path, append(b, '\n'))
	}
	return atomicfile.Write(path, npy(shape, v))
}

// npy encodes a float32 array in the NumPy .npy format, version 1.0.
func npy(shape []int, v []float32) []byte {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	sh := strings.Join(dims, ", ")
	if len(shape) == 1 {
		sh += ","
	}
	header := fmt.Sprintf("{'descr': '<f4', 'fortran_order': False, 'shape': (%s), }", sh)
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	out := make([]byte, 0, 10+len(header)+4*len(v))
	out = append(out, "\x93NUMPY\x01\x00"...)
	out = binary.LittleEndian.AppendUint16(out, uint16(len(header)))
	out = append(out, header...)
	for _, x := range v {
		out = binary.LittleEndian.AppendUint32(out, math.Float32bits(x))
	}
	return out
}

func toF32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func u32f(v []uint32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func f32f(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

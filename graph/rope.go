package graph

import (
	"fmt"
	"math"
	"strings"

	"github.com/moegpu/moegpu/gpu"
)

// RoPE kernel variants, for RoPE.Variant.
const (
	// RoPEAuto picks RoPEVec4 where the shape allows it (RotaryDim % 8 == 0
	// and HeadDim % 4 == 0), RoPEScalar otherwise.
	RoPEAuto = 0
	// RoPEScalar handles one rotated pair (or one copied dim) per head per
	// invocation: any even RotaryDim, any HeadDim.
	RoPEScalar = 1
	// RoPEVec4 handles four pairs at once with vec4 loads: about twice
	// RoPEScalar's speed on lavapipe (4096 tokens × 512: 4.2–8.5 GB/s
	// against 2.1–3.9 GB/s, on a shared 2-core machine).
	RoPEVec4 = 2
)

// RoPE applies rotary position embeddings to the queries or keys of
// attention, so that their dot products depend on relative position. It
// uses the Hugging Face "rotate_half" convention (LLaMA, Qwen, MiMo): within
// each head the pairs are (i, i + RotaryDim/2) for i < RotaryDim/2, and pair
// i turns by θ = pos · inv_freq_i with inv_freq_i = Base^(−2i/RotaryDim):
//
//	y_i           = x_i·cos θ − x_{i+R/2}·sin θ
//	y_{i+R/2}     = x_{i+R/2}·cos θ + x_i·sin θ
//
// Dims RotaryDim … HeadDim−1 of each head pass through (partial rotary, as
// in MiMo-V2-Flash's first 64 of 192 dims). Checkpoints from interleaved
// (GPT-J style, pairs (2i, 2i+1)) models need their q/k weights permuted.
//
// Inputs (x (tokens, Heads·HeadDim) f32, positions (tokens) u32); output y
// of x's shape. With KHeads > 0 the op rotates the queries and keys of one
// attention layer in one dispatch: inputs (q (tokens, Heads·HeadDim), k
// (tokens, KHeads·HeadDim), positions), outputs (q', k'), each exactly what
// a RoPE of its own would give (same kernel arithmetic). Positions are absolute, so decoding with a KV cache passes
// the tokens' true offsets. They must be below 2^24 (16.7M).
//
// Accuracy: angles are reduced modulo 2π exactly in f32 (see
// shaders/rope.wgsl), so the angle error is ≤ ~2.3e-6 rad at every position
// below 2^24 — a plain f32 θ = pos·inv_freq would be off by ~6e-3 rad at
// pos = 1e5. Outputs are then off by ≲ |x|·(2.3e-6 + the adapter's sin/cos
// error); see ropeTol in the tests for measured values.
type RoPE struct {
	Heads, HeadDim int
	// RotaryDim is the number of leading dims of each head that rotate
	// (even, ≤ HeadDim); 0 means HeadDim.
	RotaryDim int
	// Base is the frequency base; 0 means 10000.
	Base float32
	// KHeads, when positive, adds a second rotated tensor (the keys) of
	// KHeads heads of HeadDim, rotated with the same angles in the same
	// dispatch.
	KHeads int
	// Inverse rotates by −θ. It undoes RoPE and is RoPE's backward:
	// dx = RoPE{Inverse: true}(dy).
	Inverse bool
	// Variant selects the kernel: RoPEAuto, RoPEScalar or RoPEVec4.
	Variant int
}

// ropeMaxPos is the first position the f32 angle reduction cannot take.
const ropeMaxPos = 1 << 24

// ropeWG is the workgroup size of the RoPE kernels.
const ropeWG = 64

func (o RoPE) rotary() int {
	if o.RotaryDim == 0 {
		return o.HeadDim
	}
	return o.RotaryDim
}

func (o RoPE) base() float64 {
	if o.Base == 0 {
		return 10000
	}
	return float64(o.Base)
}

// Name implements Op.
func (o RoPE) Name() string {
	n := "rope"
	if o.KHeads > 0 {
		n = "rope_qk"
	}
	if o.Inverse {
		return n + "_inverse"
	}
	return n
}

// Outputs implements Op.
func (o RoPE) Outputs(in []Spec) ([]Spec, error) {
	if o.KHeads < 0 {
		return nil, fmt.Errorf("key heads %d must not be negative", o.KHeads)
	}
	if o.KHeads > 0 {
		if err := wantInputs(in, 3); err != nil {
			return nil, err
		}
		q, err := o.single().Outputs([]Spec{in[0], in[2]})
		if err != nil {
			return nil, fmt.Errorf("q: %w", err)
		}
		kop := o.single()
		kop.Heads = o.KHeads
		k, err := kop.Outputs([]Spec{in[1], in[2]})
		if err != nil {
			return nil, fmt.Errorf("k: %w", err)
		}
		return []Spec{q[0], k[0]}, nil
	}
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if o.Heads <= 0 || o.HeadDim <= 0 {
		return nil, fmt.Errorf("heads %d and head dim %d must be positive", o.Heads, o.HeadDim)
	}
	if r := o.rotary(); r <= 0 || r%2 != 0 || r > o.HeadDim {
		return nil, fmt.Errorf("rotary dim %d must be even and in (0, head dim %d]", r, o.HeadDim)
	}
	if b := o.base(); !(b > 0) || math.IsInf(b, 0) {
		return nil, fmt.Errorf("base %g must be positive and finite", b)
	}
	x, pos := in[0], in[1]
	if err := wantRank("x", x, 2, gpu.F32); err != nil {
		return nil, err
	}
	if x.Shape[1] != o.Heads*o.HeadDim {
		return nil, fmt.Errorf("x %v: want %d columns (heads %d × head dim %d)", x.Shape, o.Heads*o.HeadDim, o.Heads, o.HeadDim)
	}
	if err := wantRank("positions", pos, 1, gpu.U32); err != nil {
		return nil, err
	}
	if pos.Shape[0] != x.Shape[0] {
		return nil, fmt.Errorf("positions %v: want one per token of x %v", pos.Shape, x.Shape)
	}
	return []Spec{F32(x.Shape...)}, nil
}

// single is the one-tensor op with o's rotation (KHeads dropped).
func (o RoPE) single() RoPE {
	o.KHeads = 0
	return o
}

// ropeInvFreq is inv_freq_i = base^(−2i/R) for i < R/2, in float64.
func ropeInvFreq(base float64, rotary int) []float64 {
	f := make([]float64, rotary/2)
	for i := range f {
		f[i] = math.Pow(base, -2*float64(i)/float64(rotary))
	}
	return f
}

// Reference implements Op.
func (o RoPE) Reference(in []*Host) ([]*Host, error) {
	if o.KHeads > 0 {
		q, err := o.single().Reference([]*Host{in[0], in[2]})
		if err != nil {
			return nil, err
		}
		kop := o.single()
		kop.Heads = o.KHeads
		k, err := kop.Reference([]*Host{in[1], in[2]})
		if err != nil {
			return nil, err
		}
		return []*Host{q[0], k[0]}, nil
	}
	x, pos := in[0], in[1]
	y := NewHost(x.Spec)
	copy(y.Data, x.Data)
	tokens, cols := x.Shape[0], x.Shape[1]
	half := o.rotary() / 2
	inv := ropeInvFreq(o.base(), o.rotary())
	sign := 1.0
	if o.Inverse {
		sign = -1
	}
	for t := 0; t < tokens; t++ {
		p := pos.Data[t]
		if p < 0 || p >= ropeMaxPos || p != math.Trunc(p) {
			return nil, fmt.Errorf("position %g of token %d: want an integer in [0, 2^24)", p, t)
		}
		for h := 0; h < o.Heads; h++ {
			base := t*cols + h*o.HeadDim
			for i := 0; i < half; i++ {
				s, c := math.Sincos(p * inv[i])
				s *= sign
				x1, x2 := x.Data[base+i], x.Data[base+i+half]
				y.Data[base+i] = x1*c - x2*s
				y.Data[base+i+half] = x2*c + x1*s
			}
		}
	}
	return []*Host{y}, nil
}

// ropeFreqTable is the (3, half) table the kernels read: f_i =
// inv_freq_i/2π split into a (12 significant bits), b (the next 12) and c
// (the rest, rounded to f32), so that products with 12-bit halves of a
// position are exact in f32.
func ropeFreqTable(base float64, rotary int) []float32 {
	inv := ropeInvFreq(base, rotary)
	half := len(inv)
	tab := make([]float32, 3*half)
	trunc12 := func(v float64) float64 {
		if v == 0 {
			return 0
		}
		fr, e := math.Frexp(v) // v = fr·2^e, fr ∈ [0.5, 1)
		return math.Ldexp(math.Floor(fr*4096), e-12)
	}
	for i, f := range inv {
		f /= 2 * math.Pi
		a := trunc12(f)
		b := trunc12(f - a)
		tab[i] = float32(a)
		tab[half+i] = float32(b)
		tab[2*half+i] = float32(f - a - b)
	}
	return tab
}

// ropeVariant resolves Variant for a shape.
func (o RoPE) ropeVariant() (int, error) {
	vec4OK := o.rotary()%8 == 0 && o.HeadDim%4 == 0
	switch o.Variant {
	case RoPEAuto:
		if vec4OK {
			return RoPEVec4, nil
		}
		return RoPEScalar, nil
	case RoPEScalar:
		return RoPEScalar, nil
	case RoPEVec4:
		if !vec4OK {
			return 0, fmt.Errorf("vec4 variant needs rotary dim %% 8 == 0 and head dim %% 4 == 0, got %d and %d", o.rotary(), o.HeadDim)
		}
		return RoPEVec4, nil
	}
	return 0, fmt.Errorf("unknown variant %d (want %d, %d or %d)", o.Variant, RoPEAuto, RoPEScalar, RoPEVec4)
}

// Encode implements Op. The frequency table is uploaded once into a
// scratch buffer owned by the recording.
func (o RoPE) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	sign := float32(1)
	if o.Inverse {
		sign = -1
	}
	if o.KHeads > 0 {
		return o.dispatch(dev, rec, "rope_qk", sign, o.KHeads, 0, in[:3], out[:2])
	}
	return o.dispatch(dev, rec, "rope", sign, 0, 0, in[:2], out[:1])
}

// dispatch records entry+"_s" or entry+"_v4" of shaders/rope.wgsl (by o's
// variant) over the tokens of before[0]: before are read (the positions
// last), the frequency table follows them in a scratch buffer of the
// recording, and after are written; kheads and vheads fill the parameters
// of the multi-tensor entries.
func (o RoPE) dispatch(dev *gpu.Device, rec *gpu.Recorder, entry string, sign float32, kheads, vheads int, before, after []*gpu.Buffer) error {
	v, err := o.ropeVariant()
	if err != nil {
		return err
	}
	tokens := before[0].Shape[0]
	if tokens == 0 {
		return nil
	}
	half, hd := o.rotary()/2, o.HeadDim
	freq := ropeFreqTable(o.base(), o.rotary())
	tab, err := rec.Scratch(entry+".freq", gpu.F32, len(freq))
	if err != nil {
		return err
	}
	if err := tab.Write(freq); err != nil {
		return err
	}
	entry += "_s"
	if v == RoPEVec4 {
		entry = strings.TrimSuffix(entry, "_s") + "_v4"
		half, hd = half/4, hd/4
	}
	bufs := append(append(append([]*gpu.Buffer{}, before...), tab), after...)
	bindings := make([]gpu.Access, len(bufs))
	for i := range bindings {
		bindings[i] = gpu.Read
		if i > len(before) {
			bindings[i] = gpu.ReadWrite
		}
	}
	k, err := kernel(dev, "rope", entry, entry, bindings, true, map[string]string{"WG": fmt.Sprintf("%du", ropeWG)})
	if err != nil {
		return err
	}
	lanes := half + hd - 2*half
	params := []uint32{uint32(tokens), uint32(o.Heads), uint32(hd), uint32(half), uint32(lanes),
		math.Float32bits(sign), uint32(kheads), uint32(vheads)}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(tokens*lanes, ropeWG)), params, bufs...)
}

// Backward implements Differentiable: a rotation's transpose is its
// inverse, so dx = RoPE with Inverse flipped applied to dy at the same
// positions. Positions get no gradient.
//
// With KHeads, both gradients go through one inverse dispatch; where only
// one of q' and k' gets a gradient, a single-tensor op rotates it.
func (o RoPE) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	inv := o
	inv.Inverse = !o.Inverse
	if o.KHeads == 0 {
		return []*Tensor{g.Apply1(inv, dOut[0], n.In[1]), nil}
	}
	pos := n.In[2]
	switch dq, dk := dOut[0], dOut[1]; {
	case dq != nil && dk != nil:
		d := g.Apply(inv, dq, dk, pos)
		return []*Tensor{d[0], d[1], nil}
	case dq != nil:
		return []*Tensor{g.Apply1(inv.single(), dq, pos), nil, nil}
	default:
		kop := inv.single()
		kop.Heads = o.KHeads
		return []*Tensor{nil, g.Apply1(kop, dk, pos), nil}
	}
}

// RoPEQKV splits the output of a fused q/k/v projection (vLLM's qkv_proj)
// into queries, keys and values and rotates the queries and keys, in one
// dispatch. Input (qkv (tokens, (Heads+KHeads+VHeads)·HeadDim), each row
// [q heads | k heads | v heads], positions (tokens) u32); outputs q
// (tokens, Heads·HeadDim) and k (tokens, KHeads·HeadDim) rotated as RoPE
// rotates them (the same kernel arithmetic, so bit for bit equal), and v
// (tokens, VHeads·HeadDim) copied. Its backward is RoPEQKVBackward.
type RoPEQKV struct {
	Heads, KHeads, VHeads, HeadDim int
	// RotaryDim is the number of leading dims of each head that rotate
	// (even, ≤ HeadDim); 0 means HeadDim.
	RotaryDim int
	// Base is the frequency base; 0 means 10000.
	Base float32
	// Variant selects the kernel: RoPEAuto, RoPEScalar or RoPEVec4.
	Variant int
}

// RoPEQKVBackward is RoPEQKV's gradient: inputs (dq, dk, dv, positions),
// output dqkv (tokens, (Heads+KHeads+VHeads)·HeadDim) holding dq and dk
// rotated by −θ and dv, each in its columns of the fused row.
type RoPEQKVBackward RoPEQKV

func (o RoPEQKV) rope(heads int) RoPE {
	return RoPE{Heads: heads, HeadDim: o.HeadDim, RotaryDim: o.RotaryDim, Base: o.Base, Variant: o.Variant}
}

func (o RoPEQKV) check() error {
	if o.Heads <= 0 || o.KHeads <= 0 || o.VHeads <= 0 || o.HeadDim <= 0 {
		return fmt.Errorf("heads %d, key heads %d, value heads %d and head dim %d must be positive", o.Heads, o.KHeads, o.VHeads, o.HeadDim)
	}
	_, err := o.rope(o.Heads).ropeVariant()
	return err
}

func (o RoPEQKV) width() int { return (o.Heads + o.KHeads + o.VHeads) * o.HeadDim }

// Name implements Op.
func (RoPEQKV) Name() string { return "rope_qkv" }

// Name implements Op.
func (RoPEQKVBackward) Name() string { return "rope_qkv_backward" }

// Outputs implements Op.
func (o RoPEQKV) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 2); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	if err := wantRank("qkv", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if in[0].Shape[1] != o.width() {
		return nil, fmt.Errorf("qkv %v: want %d columns ((%d + %d + %d) heads × head dim %d)", in[0].Shape, o.width(), o.Heads, o.KHeads, o.VHeads, o.HeadDim)
	}
	// The rotation's own checks (rotary dim, base, positions).
	if _, err := o.rope(o.Heads).Outputs([]Spec{F32(in[0].Shape[0], o.Heads*o.HeadDim), in[1]}); err != nil {
		return nil, err
	}
	t := in[0].Shape[0]
	return []Spec{F32(t, o.Heads*o.HeadDim), F32(t, o.KHeads*o.HeadDim), F32(t, o.VHeads*o.HeadDim)}, nil
}

// Outputs implements Op.
func (o RoPEQKVBackward) Outputs(in []Spec) ([]Spec, error) {
	f := RoPEQKV(o)
	if err := wantInputs(in, 4); err != nil {
		return nil, err
	}
	if err := f.check(); err != nil {
		return nil, err
	}
	for i, h := range []int{o.Heads, o.KHeads, o.VHeads} {
		name := []string{"dq", "dk", "dv"}[i]
		if err := wantRank(name, in[i], 2, gpu.F32); err != nil {
			return nil, err
		}
		if in[i].Shape[1] != h*o.HeadDim || in[i].Shape[0] != in[0].Shape[0] {
			return nil, fmt.Errorf("%s %v: want (%d, %d)", name, in[i].Shape, in[0].Shape[0], h*o.HeadDim)
		}
	}
	if _, err := f.rope(o.Heads).Outputs([]Spec{in[0], in[3]}); err != nil {
		return nil, err
	}
	return []Spec{F32(in[0].Shape[0], f.width())}, nil
}

// Reference implements Op: split the columns, then RoPE's reference.
func (o RoPEQKV) Reference(in []*Host) ([]*Host, error) {
	x, pos := in[0], in[1]
	t, w := x.Shape[0], o.width()
	parts := []*Host{NewHost(F32(t, o.Heads*o.HeadDim)), NewHost(F32(t, o.KHeads*o.HeadDim)), NewHost(F32(t, o.VHeads*o.HeadDim))}
	for r := 0; r < t; r++ {
		c := 0
		for _, p := range parts {
			n := p.Shape[1]
			copy(p.Data[r*n:(r+1)*n], x.Data[r*w+c:r*w+c+n])
			c += n
		}
	}
	q, err := o.rope(o.Heads).Reference([]*Host{parts[0], pos})
	if err != nil {
		return nil, err
	}
	k, err := o.rope(o.KHeads).Reference([]*Host{parts[1], pos})
	if err != nil {
		return nil, err
	}
	return []*Host{q[0], k[0], parts[2]}, nil
}

// Reference implements Op: the inverse rotations, then the columns joined.
func (o RoPEQKVBackward) Reference(in []*Host) ([]*Host, error) {
	f := RoPEQKV(o)
	pos := in[3]
	inv := func(heads int, x *Host) (*Host, error) {
		r := f.rope(heads)
		r.Inverse = true
		y, err := r.Reference([]*Host{x, pos})
		if err != nil {
			return nil, err
		}
		return y[0], nil
	}
	dq, err := inv(o.Heads, in[0])
	if err != nil {
		return nil, err
	}
	dk, err := inv(o.KHeads, in[1])
	if err != nil {
		return nil, err
	}
	t, w := in[0].Shape[0], f.width()
	out := NewHost(F32(t, w))
	for r := 0; r < t; r++ {
		c := 0
		for _, p := range []*Host{dq, dk, in[2]} {
			n := p.Shape[1]
			copy(out.Data[r*w+c:r*w+c+n], p.Data[r*n:(r+1)*n])
			c += n
		}
	}
	return []*Host{out}, nil
}

// Encode implements Op.
func (o RoPEQKV) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	return o.rope(o.Heads).dispatch(dev, rec, "rope_qkv", 1, o.KHeads, o.VHeads, in[:2], out[:3])
}

// Encode implements Op.
func (o RoPEQKVBackward) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	f := RoPEQKV(o)
	return f.rope(o.Heads).dispatch(dev, rec, "rope_qkv_bwd", -1, o.KHeads, o.VHeads, in[:4], out[:1])
}

// Backward implements Differentiable: RoPEQKVBackward of the three output
// gradients (a missing one counts as zeros). Positions get no gradient.
func (o RoPEQKV) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	d := make([]*Tensor, 3)
	for i := range d {
		d[i] = dOut[i]
		if d[i] == nil {
			d[i] = g.Apply1(Zeros{Spec: n.Out[i].Spec})
		}
	}
	return []*Tensor{g.Apply1(RoPEQKVBackward(o), d[0], d[1], d[2], n.In[1]), nil}
}

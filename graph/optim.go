package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// AdamW is one optimizer step for one parameter tensor, with decoupled
// weight decay (Loshchilov & Hutter) and optional clipping by the global
// gradient norm (as torch.nn.utils.clip_grad_norm_). It is an InPlace op:
// it updates param, m and v and has no outputs, so graph.Apply returns an
// empty slice and the planner always keeps it.
//
// Inputs, in order:
//
//	0 param  (any shape) f32, updated
//	1 grad   (param's shape) f32
//	2 m      (param's shape) f32, first moment, updated
//	3 v      (param's shape) f32, second moment, updated
//	4 hyper  (4) f32: lr, 1−β1^t, 1−β2^t, decay flag (1 or 0); the host
//	         writes it before every step (see Hyper), so one recorded
//	         dispatch serves every step and every learning-rate schedule
//	5 gnorm2 (1) f32: Σ grad² over all parameters (sum of SumSquares)
//
// Per element:
//
//	clip = MaxGradNorm > 0 ? min(1, MaxGradNorm/(sqrt(gnorm2)+1e-6)) : 1
//	g = grad·clip
//	m = β1·m + (1−β1)·g
//	v = β2·v + (1−β2)·g²
//	p = p − lr·(decay·WeightDecay·p + (m/bc1)/(sqrt(v/bc2)+Eps))
type AdamW struct {
	Beta1, Beta2, Eps, WeightDecay float32
	// MaxGradNorm clips the global gradient norm to this value; 0 means
	// no clipping.
	MaxGradNorm float32
}

// Name implements Op.
func (AdamW) Name() string { return "adamw" }

// Updates implements InPlace: param, m and v.
func (AdamW) Updates() []int { return []int{0, 2, 3} }

// Hyper returns the hyper input for a step: lr, the bias corrections
// 1−β1^t and 1−β2^t for step t ≥ 1 (computed in float64), and the decay
// flag. Parameters excluded from weight decay (Tensor.NoDecay) get a hyper
// tensor with decay = false.
func (o AdamW) Hyper(lr float64, step int, decay bool) ([]float64, error) {
	if step < 1 {
		return nil, fmt.Errorf("adamw: step %d: steps count from 1", step)
	}
	d := 0.0
	if decay {
		d = 1
	}
	return []float64{lr,
		1 - math.Pow(float64(o.Beta1), float64(step)),
		1 - math.Pow(float64(o.Beta2), float64(step)), d}, nil
}

// Outputs implements Op: no outputs.
func (o AdamW) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 6); err != nil {
		return nil, err
	}
	for _, b := range []struct {
		name string
		v    float32
	}{{"beta1", o.Beta1}, {"beta2", o.Beta2}} {
		if !(b.v >= 0 && b.v < 1) {
			return nil, fmt.Errorf("%s %g: want 0 ≤ β < 1", b.name, b.v)
		}
	}
	for _, c := range []struct {
		name string
		v    float32
	}{{"eps", o.Eps}, {"weight decay", o.WeightDecay}, {"max grad norm", o.MaxGradNorm}} {
		if !(c.v >= 0) || math.IsInf(float64(c.v), 0) {
			return nil, fmt.Errorf("%s %g: want a finite value ≥ 0", c.name, c.v)
		}
	}
	if _, err := sameShape(in[:4], 0, "param", "grad", "m", "v"); err != nil {
		return nil, err
	}
	if in[4].DType != gpu.F32 || len(in[4].Shape) != 1 || in[4].Shape[0] != 4 {
		return nil, fmt.Errorf("hyper: want f32[4] (lr, 1−β1^t, 1−β2^t, decay), got %s", in[4])
	}
	if in[5].DType != gpu.F32 || in[5].Len() != 1 {
		return nil, fmt.Errorf("gnorm2: want a one-element f32, got %s", in[5])
	}
	return []Spec{}, nil
}

// adamwClip is the factor the gradient is scaled by.
func (o AdamW) adamwClip(gnorm2 float64) float64 {
	if o.MaxGradNorm <= 0 {
		return 1
	}
	return math.Min(1, float64(o.MaxGradNorm)/(math.Sqrt(gnorm2)+1e-6))
}

// Reference implements Op: it updates the param, m and v host tensors in
// place and returns no outputs.
func (o AdamW) Reference(in []*Host) ([]*Host, error) {
	p, gr, m, v, hy := in[0].Data, in[1].Data, in[2].Data, in[3].Data, in[4].Data
	lr, bc1, bc2, decay := hy[0], hy[1], hy[2], hy[3]
	b1, b2, eps, wd := float64(o.Beta1), float64(o.Beta2), float64(o.Eps), float64(o.WeightDecay)
	clip := o.adamwClip(in[5].Data[0])
	for i := range p {
		g := gr[i] * clip
		m[i] = b1*m[i] + (1-b1)*g
		v[i] = b2*v[i] + (1-b2)*g*g
		p[i] -= lr * (decay*wd*p[i] + (m[i]/bc1)/(math.Sqrt(v[i]/bc2)+eps))
	}
	return []*Host{}, nil
}

// optimWG is the workgroup size of the optimizer kernels (override WG).
const optimWG = 256

var optimConsts = map[string]string{"WG": fmt.Sprintf("%du", optimWG)}

// Encode implements Op: adamw_v4 over the whole vec4s, adamw_s over the
// n mod 4 tail.
func (o AdamW) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n := in[0].Len()
	bind := []gpu.Access{gpu.ReadWrite, gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.Read, gpu.Read}
	params := func(n, start int) []uint32 {
		return []uint32{uint32(n), uint32(start), math.Float32bits(o.Beta1), math.Float32bits(o.Beta2),
			math.Float32bits(o.Eps), math.Float32bits(o.WeightDecay), math.Float32bits(o.MaxGradNorm), 0}
	}
	start := 0
	if n4 := n / 4; n4 > 0 {
		k, err := kernel(dev, "optim", "adamw_v4", "adamw_v4", bind, true, optimConsts)
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n4, optimWG)), params(n4, 0), in...); err != nil {
			return err
		}
		start = 4 * n4
	}
	if start == n {
		return nil
	}
	k, err := kernel(dev, "optim", "adamw_s", "adamw_s", bind, true, optimConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(n-start, optimWG)), params(n, start), in...)
}

// SumSquares kernel variants, for SumSquares.Variant.
const (
	// SumSquaresAuto picks SumSquaresChunks on CPU adapters and
	// SumSquaresStrided elsewhere.
	SumSquaresAuto = 0
	// SumSquaresChunks has many invocations each sum a contiguous chunk of
	// x into its own partial sum (no barriers), then one workgroup adds
	// the partials: every core takes part and each streams its own
	// memory, which is what a CPU driver runs best (3–5× the others on
	// lavapipe).
	SumSquaresChunks = 1
	// SumSquaresStrided is SumSquaresChunks with invocation j summing
	// elements j, j+parts, …: adjacent invocations read adjacent memory,
	// the coalesced pattern of discrete GPUs.
	SumSquaresStrided = 2
	// SumSquaresWorkgroup has one workgroup stride over x and tree-reduce
	// in shared memory: one core on a CPU driver, one SM on a GPU.
	SumSquaresWorkgroup = 3
)

// sumsqMaxParts caps the partial sums of the many-invocation variants;
// sumsqPerPart is the fewest vec4s each partial covers before the cap is
// reached.
const (
	sumsqMaxParts = 4096
	sumsqPerPart  = 64
)

// SumSquares is y = Σ x² over an f32 tensor of any shape, giving shape (1):
// the squared gradient norm that global-norm clipping needs (summed over
// parameters with Add) and a building block for L2 penalties. The result
// is deterministic: the summation order depends only on the size of x.
type SumSquares struct {
	// Variant selects the kernel: SumSquaresAuto, SumSquaresChunks,
	// SumSquaresStrided or SumSquaresWorkgroup.
	Variant int
}

// Name implements Op.
func (SumSquares) Name() string { return "sum_squares" }

// Outputs implements Op.
func (SumSquares) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if in[0].DType != gpu.F32 {
		return nil, fmt.Errorf("x: want f32, got %s", in[0])
	}
	return []Spec{F32(1)}, nil
}

// Reference implements Op.
func (SumSquares) Reference(in []*Host) ([]*Host, error) {
	y := NewHost(F32(1))
	for _, v := range in[0].Data {
		y.Data[0] += v * v
	}
	return []*Host{y}, nil
}

// sumsqParts is the number of partial sums for n4 vec4s.
func sumsqParts(variant, n4 int) int {
	if n4 == 0 {
		return 0
	}
	if variant == SumSquaresWorkgroup {
		return 1
	}
	return min(sumsqMaxParts, gpu.CeilDiv(n4, sumsqPerPart))
}

// Encode implements Op: a partial-sum pass over the whole vec4s of x into
// a scratch buffer, then sumsq_final adds the partials and the tail.
func (o SumSquares) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	v := o.Variant
	switch v {
	case SumSquaresAuto:
		v = SumSquaresStrided
		if dev.Info.DeviceType == "cpu" {
			v = SumSquaresChunks
		}
	case SumSquaresChunks, SumSquaresStrided, SumSquaresWorkgroup:
	default:
		return fmt.Errorf("unknown variant %d (want %d, %d, %d or %d)", v,
			SumSquaresAuto, SumSquaresChunks, SumSquaresStrided, SumSquaresWorkgroup)
	}
	n := in[0].Len()
	n4 := n / 4
	parts := sumsqParts(v, n4)
	part, err := rec.Scratch("sum_squares.partials", gpu.F32, max(parts, 1))
	if err != nil {
		return err
	}
	params := []uint32{uint32(n4), uint32(n), uint32(parts), 0}
	if parts > 0 {
		entry, grid := "sumsq_part_chunk", dev.Grid1D(gpu.CeilDiv(parts, optimWG))
		switch v {
		case SumSquaresStrided:
			entry = "sumsq_part_strided"
		case SumSquaresWorkgroup:
			entry, grid = "sumsq_part_wg", [3]uint32{1, 1, 1}
		}
		k, err := kernel(dev, "optim", entry, entry, []gpu.Access{gpu.Read, gpu.ReadWrite}, true, optimConsts)
		if err != nil {
			return err
		}
		if err := rec.Dispatch(k, grid, params, in[0], part); err != nil {
			return err
		}
	}
	k, err := kernel(dev, "optim", "sumsq_final", "sumsq_final", []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, optimConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, [3]uint32{1, 1, 1}, params, part, in[0], out[0])
}

// Backward implements Differentiable: dx = 2·x·g, as MulScalar then Scale.
func (SumSquares) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	return []*Tensor{g.Apply1(Scale{Factor: 2}, g.Apply1(MulScalar{}, n.In[0], dOut[0]))}
}

// AdamWGroup is AdamW over many parameters at once: the same per-element
// update, in as few dispatches as their layout allows. It is a Packer: the
// GPU executor places the parameters, their gradients and both moments each
// in one buffer, in the same order and slots, so every run of neighbouring
// parameters with the same decay setting is one dispatch over one range
// (the zero padding between slots stays zero: g = m = v = p = 0 gives a
// zero update). Where tensors are not packed it falls back to one AdamW
// per parameter.
//
// Inputs, for N = len(Decay) parameters, in order:
//
//	[0, N)   params, updated
//	[N, 2N)  their gradients
//	[2N, 3N) first moments, updated
//	[3N, 4N) second moments, updated
//	4N       hyper (4) for parameters with weight decay (see AdamW.Hyper)
//	4N+1     hyper (4) for parameters without
//	4N+2     gnorm2 (1): Σ grad² over all parameters
type AdamWGroup struct {
	AdamW
	// Decay says, per parameter, which hyper input it takes: 4N (true) or
	// 4N+1 (false). Putting the decayed parameters first makes two runs,
	// which one dispatch updates where they are packed together.
	Decay []bool
	// SeparateDecayRuns updates each run of one decay setting in a dispatch
	// of its own: the same arithmetic (bit-identical), kept for checking.
	SeparateDecayRuns bool
}

// Name implements Op.
func (AdamWGroup) Name() string { return "adamw_group" }

// Updates implements InPlace: params and both moments.
func (o AdamWGroup) Updates() []int {
	n := len(o.Decay)
	out := seq(n)
	for i := 2 * n; i < 4*n; i++ {
		out = append(out, i)
	}
	return out
}

// Packs implements Packer: params, gradients, first and second moments.
func (o AdamWGroup) Packs(int) [][]int {
	n := len(o.Decay)
	out := make([][]int, 4)
	for j := range out {
		for i := 0; i < n; i++ {
			out[j] = append(out[j], j*n+i)
		}
	}
	return out
}

// Outputs implements Op: no outputs.
func (o AdamWGroup) Outputs(in []Spec) ([]Spec, error) {
	n := len(o.Decay)
	if n == 0 {
		return nil, fmt.Errorf("no parameters")
	}
	if err := wantInputs(in, 4*n+3); err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		for _, h := range []int{4 * n, 4*n + 1} {
			if _, err := o.AdamW.Outputs([]Spec{in[i], in[n+i], in[2*n+i], in[3*n+i], in[h], in[4*n+2]}); err != nil {
				return nil, fmt.Errorf("parameter %d: %w", i, err)
			}
		}
	}
	return []Spec{}, nil
}

// Reference implements Op: AdamW.Reference per parameter.
func (o AdamWGroup) Reference(in []*Host) ([]*Host, error) {
	n := len(o.Decay)
	for i, d := range o.Decay {
		h := in[4*n+1]
		if d {
			h = in[4*n]
		}
		if _, err := o.AdamW.Reference([]*Host{in[i], in[n+i], in[2*n+i], in[3*n+i], h, in[4*n+2]}); err != nil {
			return nil, err
		}
	}
	return []*Host{}, nil
}

// Encode implements Op: one dispatch per run of packed neighbours whose
// decay setting changes at most once (the trainer packs the decayed
// parameters first, so one in all), else one AdamW dispatch (two with an n
// mod 4 tail) per run of packed neighbours with the same decay setting
// (SeparateDecayRuns forces the latter, for checking).
func (o AdamWGroup) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	n := len(o.Decay)
	groups := [][]*gpu.Buffer{in[:n], in[n : 2*n], in[2*n : 3*n], in[3*n : 4*n]}
	hyper := func(i int) *gpu.Buffer {
		if o.Decay[i] {
			return in[4*n]
		}
		return in[4*n+1]
	}
	var rest [][2]int
	for _, r := range packedRuns(dev, groups, nil) {
		k := r[0]
		for k < r[1] && o.Decay[k] == o.Decay[r[0]] {
			k++
		}
		one := k < r[1] && !o.SeparateDecayRuns
		for j := k; one && j < r[1]; j++ {
			one = o.Decay[j] == o.Decay[k]
		}
		if one {
			done, err := o.encodeSplit(dev, rec, groups, r, k, hyper(r[0]), hyper(k), in[4*n+2])
			if err != nil {
				return err
			}
			if done {
				continue
			}
		}
		rest = append(rest, r)
	}
	for _, r := range packedRunsWithin(rest, func(i int) bool { return o.Decay[i] != o.Decay[i-1] }) {
		h := in[4*n+1]
		if o.Decay[r[0]] {
			h = in[4*n]
		}
		args := make([]*gpu.Buffer, 0, 6)
		for _, pad := range []bool{true, false} {
			args = args[:0]
			for _, g := range groups {
				s, err := packedSpan(dev, g[r[0]:r[1]], pad)
				if err != nil {
					return err
				}
				args = append(args, s)
			}
			if args[0].Len() == args[1].Len() && args[0].Len() == args[2].Len() && args[0].Len() == args[3].Len() {
				break
			}
		}
		if err := o.AdamW.Encode(dev, rec, append(args, h, in[4*n+2]), nil); err != nil {
			return err
		}
	}
	return nil
}

// packedRunsWithin splits each run where brk(i) says a new one starts.
func packedRunsWithin(runs [][2]int, brk func(i int) bool) [][2]int {
	var out [][2]int
	for _, r := range runs {
		start := r[0]
		for i := r[0] + 1; i < r[1]; i++ {
			if brk(i) {
				out = append(out, [2]int{start, i})
				start = i
			}
		}
		out = append(out, [2]int{start, r[1]})
	}
	return out
}

// encodeSplit records adamw_split_v4 over run r, whose tensors from k on
// take hyper-parameters hb and the earlier ones ha, when the run's packed
// spans are whole vec4s of one length; it reports whether it did.
func (o AdamWGroup) encodeSplit(dev *gpu.Device, rec *gpu.Recorder, groups [][]*gpu.Buffer, r [2]int, k int, ha, hb, gn2 *gpu.Buffer) (bool, error) {
	args := make([]*gpu.Buffer, 0, 7)
	for _, g := range groups {
		s, err := packedSpan(dev, g[r[0]:r[1]], true)
		if err != nil {
			return false, err
		}
		if s.Len()%4 != 0 || len(args) > 0 && s.Len() != args[0].Len() ||
			(g[k].Offset()-g[r[0]].Offset())%16 != 0 || g[k].Offset()-g[r[0]].Offset() != groups[0][k].Offset()-groups[0][r[0]].Offset() {
			return false, nil
		}
		args = append(args, s)
	}
	kern, err := kernel(dev, "optim", "adamw_split_v4", "adamw_split_v4",
		[]gpu.Access{gpu.ReadWrite, gpu.Read, gpu.ReadWrite, gpu.ReadWrite, gpu.Read, gpu.Read, gpu.Read}, true, optimConsts)
	if err != nil {
		return false, err
	}
	n4 := args[0].Len() / 4
	split := (groups[0][k].Offset() - groups[0][r[0]].Offset()) / 16
	a := o.AdamW
	params := []uint32{uint32(n4), 0, math.Float32bits(a.Beta1), math.Float32bits(a.Beta2),
		math.Float32bits(a.Eps), math.Float32bits(a.WeightDecay), math.Float32bits(a.MaxGradNorm), uint32(split)}
	return true, rec.Dispatch(kern, dev.Grid1D(gpu.CeilDiv(n4, optimWG)), params, append(args, ha, gn2, hb)...)
}

// SumSquaresGroup is y = Σ x² over all its inputs (f32, any shapes), shape
// (1): the squared global gradient norm in one pass where the executor
// packed the inputs into one buffer (it is a Packer; the zero padding
// between slots adds nothing), else one SumSquares per run of packed
// neighbours into scratch and a final sum of those.
type SumSquaresGroup struct {
	// Variant is SumSquares' kernel variant.
	Variant int
}

// Name implements Op.
func (SumSquaresGroup) Name() string { return "sum_squares_group" }

// Packs implements Packer: all inputs, in order.
func (SumSquaresGroup) Packs(inputs int) [][]int { return [][]int{seq(inputs)} }

// Outputs implements Op.
func (SumSquaresGroup) Outputs(in []Spec) ([]Spec, error) {
	if len(in) == 0 {
		return nil, fmt.Errorf("no inputs")
	}
	for i, s := range in {
		if s.DType != gpu.F32 {
			return nil, fmt.Errorf("input %d: want f32, got %s", i, s)
		}
	}
	return []Spec{F32(1)}, nil
}

// Reference implements Op.
func (SumSquaresGroup) Reference(in []*Host) ([]*Host, error) {
	y := NewHost(F32(1))
	for _, h := range in {
		for _, v := range h.Data {
			y.Data[0] += v * v
		}
	}
	return []*Host{y}, nil
}

// Encode implements Op.
func (o SumSquaresGroup) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	runs := packedRuns(dev, [][]*gpu.Buffer{in}, nil)
	ss := SumSquares{Variant: o.Variant}
	if len(runs) == 1 {
		s, err := packedSpan(dev, in, true)
		if err != nil {
			return err
		}
		return ss.Encode(dev, rec, []*gpu.Buffer{s}, out)
	}
	// One partial sum per run, each in its own aligned slot of a zeroed
	// scratch buffer, then sumsq_final adds the whole buffer (gaps are 0).
	stride := max(1, int(dev.Limits.MinStorageBufferOffsetAlignment)/4)
	slots, err := rec.Scratch("sum_squares_group.runs", gpu.F32, len(runs)*stride)
	if err != nil {
		return err
	}
	for i, r := range runs {
		s, err := packedSpan(dev, in[r[0]:r[1]], true)
		if err != nil {
			return err
		}
		y, err := slots.View("sum_squares_group.run", gpu.F32, uint64(i*stride*4), 1)
		if err != nil {
			return err
		}
		if err := ss.Encode(dev, rec, []*gpu.Buffer{s}, []*gpu.Buffer{y}); err != nil {
			return err
		}
	}
	k, err := kernel(dev, "optim", "sumsq_final", "sumsq_final", []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, optimConsts)
	if err != nil {
		return err
	}
	return rec.Dispatch(k, [3]uint32{1, 1, 1}, []uint32{0, 0, uint32(len(runs) * stride), 0}, slots, slots, out[0])
}

// packedRuns splits tensors 0…n−1 (the same count in every group) into
// maximal runs [a, b) where, in every group, each tensor starts where the
// previous one's slot ends: the same GPU buffer, at the previous view's
// end rounded up to the storage offset alignment, as GPU.pack places them,
// and the run within one storage binding. brk(i) true also starts a run
// at i. Padding between such views is zero only because pack allocated it
// so; other placements never put two persistent tensors at those offsets.
func packedRuns(dev *gpu.Device, groups [][]*gpu.Buffer, brk func(i int) bool) [][2]int {
	align := uint64(max(4, dev.Limits.MinStorageBufferOffsetAlignment))
	limit := dev.Limits.MaxStorageBufferBindingSize
	n := len(groups[0])
	var runs [][2]int
	start := 0
	for i := 1; i <= n; i++ {
		cont := i < n && (brk == nil || !brk(i))
		for _, g := range groups {
			if !cont {
				break
			}
			a, b := g[i-1], g[i]
			end := (a.Offset() + a.Bytes() + align - 1) / align * align
			cont = a.Root() == b.Root() && b.Offset() == end &&
				b.Offset()+b.Bytes()-g[start].Offset() <= limit
		}
		if !cont {
			runs = append(runs, [2]int{start, i})
			start = i
		}
	}
	return runs
}

// packedSpan is one f32 view over a run of packed views (see packedRuns),
// with pad through the last one's padding where its buffer has it (so the
// span is whole vec4s and AdamW needs no tail dispatch).
func packedSpan(dev *gpu.Device, run []*gpu.Buffer, pad bool) (*gpu.Buffer, error) {
	if len(run) == 1 && (!pad || run[0].Root() == run[0]) {
		return run[0], nil
	}
	align := uint64(max(4, dev.Limits.MinStorageBufferOffsetAlignment))
	first, last := run[0], run[len(run)-1]
	end := last.Offset() + last.Bytes()
	if padded := (end + align - 1) / align * align; pad && padded <= last.Root().Bytes() &&
		padded-first.Offset() <= dev.Limits.MaxStorageBufferBindingSize {
		end = padded
	}
	return last.Root().View(first.Name+"+", gpu.F32, first.Offset(), int(end-first.Offset())/4)
}

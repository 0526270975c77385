package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// Spec is the static type of a tensor: element type and shape.
type Spec struct {
	DType gpu.DType
	Shape []int
}

// F32 is shorthand for an f32 tensor spec.
func F32(shape ...int) Spec { return Spec{DType: gpu.F32, Shape: shape} }

// U32 is shorthand for a u32 tensor spec.
func U32(shape ...int) Spec { return Spec{DType: gpu.U32, Shape: shape} }

// Len is the element count.
func (s Spec) Len() int { return numel(s.Shape) }

func (s Spec) String() string { return fmt.Sprintf("%s%v", s.DType, s.Shape) }

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// Op is one computation with a shape rule, a CPU reference and a GPU
// encoding. Ops with several outputs (top-k: values and indices; RMSNorm:
// output and the saved inverse RMS) list them in order.
type Op interface {
	// Name identifies the op in errors and profiles.
	Name() string
	// Outputs checks input specs and returns the output specs.
	Outputs(in []Spec) ([]Spec, error)
	// Reference computes the outputs on the CPU in float64.
	Reference(in []*Host) ([]*Host, error)
	// Encode records the op's dispatches. in and out have the specs that
	// Outputs accepted and returned.
	Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error
}

// Accumulator is implemented by ops that can update output 0 in place
// (out += f(in)), as parameter gradients do. When Accumulates is true the
// op's last input is the previous value of output 0: the reference reads it
// as an ordinary input, while on the GPU Encode receives only the other
// inputs and output 0's buffer already holds the previous value.
type Accumulator interface {
	Accumulates() bool
}

func accumulates(op Op) bool {
	a, ok := op.(Accumulator)
	return ok && a.Accumulates()
}

// Host is a tensor in host memory, as the reference executor holds it.
// Integer tensors are kept as float64 too (exact below 2^53).
type Host struct {
	Spec
	Data []float64
}

// NewHost allocates a zeroed host tensor.
func NewHost(s Spec) *Host { return &Host{Spec: s, Data: make([]float64, s.Len())} }

// HostFrom wraps data with a spec, checking the length.
func HostFrom(s Spec, data []float64) (*Host, error) {
	if len(data) != s.Len() {
		return nil, fmt.Errorf("%d values for tensor %s", len(data), s)
	}
	return &Host{Spec: s, Data: data}, nil
}

// Upload copies a host tensor into a new GPU buffer of its spec.
func Upload(dev *gpu.Device, name string, h *Host) (*gpu.Buffer, error) {
	b, err := dev.NewBuffer(name, h.DType, h.Shape...)
	if err != nil {
		return nil, err
	}
	switch h.DType {
	case gpu.F32, gpu.F16:
		v := make([]float32, len(h.Data))
		for i, x := range h.Data {
			v[i] = float32(x)
		}
		err = b.Write(v)
	case gpu.U32:
		v := make([]uint32, len(h.Data))
		for i, x := range h.Data {
			v[i] = uint32(x)
		}
		err = b.Write(v)
	case gpu.I32:
		v := make([]int32, len(h.Data))
		for i, x := range h.Data {
			v[i] = int32(x)
		}
		err = b.Write(v)
	}
	if err != nil {
		b.Release()
		return nil, err
	}
	return b, nil
}

// Download reads GPU buffers back as host tensors in one batched readback.
func Download(dev *gpu.Device, bufs ...*gpu.Buffer) ([]*Host, error) {
	data, err := dev.Read(bufs...)
	if err != nil {
		return nil, err
	}
	out := make([]*Host, len(bufs))
	for i, d := range data {
		h := NewHost(Spec{DType: bufs[i].DType, Shape: bufs[i].Shape})
		switch d.DType {
		case gpu.U32:
			for j, x := range d.Uint32() {
				h.Data[j] = float64(x)
			}
		case gpu.I32:
			for j, x := range d.Int32() {
				h.Data[j] = float64(x)
			}
		default:
			for j, x := range d.Float32() {
				h.Data[j] = float64(x)
			}
		}
		out[i] = h
	}
	return out, nil
}

// Prepared is one op recorded on uploaded inputs: what RunOp, the bench
// and op benchmarks replay.
type Prepared struct {
	Rec     *gpu.Recorder
	In, Out []*gpu.Buffer
	bufs    []*gpu.Buffer
}

// Release frees the recording and the buffers.
func (p *Prepared) Release() {
	if p.Rec != nil {
		p.Rec.Release()
	}
	for _, b := range p.bufs {
		b.Release()
	}
	p.Rec, p.bufs = nil, nil
}

// Prepare uploads host inputs, allocates the outputs and records reps
// copies of op into one recorder. For an Accumulator the last input becomes
// output 0's starting value.
func Prepare(dev *gpu.Device, op Op, reps int, in ...*Host) (*Prepared, error) {
	specs := make([]Spec, len(in))
	for i, h := range in {
		specs[i] = h.Spec
	}
	outSpecs, err := op.Outputs(specs)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
	}
	p := &Prepared{}
	ok := false
	defer func() {
		if !ok {
			p.Release()
		}
	}()
	gpuIn := in
	if accumulates(op) {
		gpuIn = in[:len(in)-1]
	}
	for i, h := range gpuIn {
		b, err := Upload(dev, fmt.Sprintf("%s.in%d", op.Name(), i), h)
		if err != nil {
			return nil, err
		}
		p.bufs = append(p.bufs, b)
		p.In = append(p.In, b)
	}
	for i, s := range outSpecs {
		var b *gpu.Buffer
		var err error
		if i == 0 && accumulates(op) {
			prev := in[len(in)-1]
			if prev.DType != s.DType || numel(prev.Shape) != s.Len() {
				return nil, fmt.Errorf("%s: accumulator input %s does not match output %s", op.Name(), prev.Spec, s)
			}
			b, err = Upload(dev, op.Name()+".out0", &Host{Spec: s, Data: prev.Data})
		} else {
			b, err = dev.NewBuffer(fmt.Sprintf("%s.out%d", op.Name(), i), s.DType, s.Shape...)
		}
		if err != nil {
			return nil, err
		}
		p.bufs = append(p.bufs, b)
		p.Out = append(p.Out, b)
	}
	p.Rec = dev.NewRecorder()
	for r := 0; r < max(reps, 1); r++ {
		if err := op.Encode(dev, p.Rec, p.In, p.Out); err != nil {
			return nil, fmt.Errorf("%s: %w", op.Name(), err)
		}
	}
	ok = true
	return p, nil
}

// RunOp runs an op on the GPU on host inputs and returns host outputs: the
// path tests and one-off callers use. Graphs record many ops instead.
func RunOp(dev *gpu.Device, op Op, in ...*Host) ([]*Host, error) {
	p, err := Prepare(dev, op, 1, in...)
	if err != nil {
		return nil, err
	}
	defer p.Release()
	if err := p.Rec.Submit(); err != nil {
		return nil, err
	}
	return Download(dev, p.Out...)
}

// RunReference runs an op's CPU reference after checking shapes.
func RunReference(op Op, in ...*Host) ([]*Host, error) {
	specs := make([]Spec, len(in))
	for i, h := range in {
		specs[i] = h.Spec
	}
	if _, err := op.Outputs(specs); err != nil {
		return nil, fmt.Errorf("%s: %w", op.Name(), err)
	}
	return op.Reference(in)
}

// wantInputs checks the number of inputs.
func wantInputs(in []Spec, n int) error {
	if len(in) != n {
		return fmt.Errorf("want %d inputs, got %d", n, len(in))
	}
	return nil
}

// wantRank checks one input's rank and dtype.
func wantRank(what string, s Spec, rank int, t gpu.DType) error {
	if len(s.Shape) != rank {
		return fmt.Errorf("%s: want rank %d, got shape %v", what, rank, s.Shape)
	}
	if s.DType != t {
		return fmt.Errorf("%s: want %s, got %s", what, t, s.DType)
	}
	return nil
}

// kernelCache memoises the compile of one kernel spec per device (the
// device caches pipelines; this just builds the spec once).
func kernel(dev *gpu.Device, family, entry string, name string, bindings []gpu.Access, params bool, consts map[string]string) (*gpu.Kernel, error) {
	src, err := shaderSource(family)
	if err != nil {
		return nil, err
	}
	return dev.Kernel(gpu.KernelSpec{Name: name, Source: src, Entry: entry, Bindings: bindings, Params: params, Constants: consts})
}

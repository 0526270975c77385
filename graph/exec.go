package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/x448/float16"
)

// Executor runs a plan. The GPU executor and the pure-Go reference
// executor share it, so a trainer, a generator or a test can swap one for
// the other.
type Executor interface {
	// Set writes a persistent tensor (input, parameter, state).
	Set(t *Tensor, data []float64) error
	// Run executes the plan once.
	Run() error
	// Get reads tensors: outputs of the plan or persistent tensors.
	Get(ts ...*Tensor) ([][]float64, error)
	// Plan is what the executor runs.
	Plan() *Plan
	// Close releases resources.
	Close()
}

func checkSet(t *Tensor, data []float64) error {
	if !t.Kind.Persistent() {
		return fmt.Errorf("set %s: only inputs, parameters and state can be written, not %s tensors", t.Name, t.Kind)
	}
	if len(data) != t.Len() {
		return fmt.Errorf("set %s %s: %d values given", t.Name, t.Spec, len(data))
	}
	return nil
}

// Reference runs a plan in pure Go with float64 values: the oracle every
// GPU result is tested against.
type Reference struct {
	plan   *Plan
	values map[*Tensor]*Host
}

// NewReference prepares a reference executor; persistent tensors start at
// zero (constants at their value).
func NewReference(p *Plan) *Reference {
	r := &Reference{plan: p, values: map[*Tensor]*Host{}}
	for _, t := range p.Graph.Tensors {
		if t.Kind.Persistent() {
			if t.Kind == Const {
				r.values[t] = &Host{Spec: t.Spec, Data: append([]float64(nil), t.Value.Data...)}
			} else {
				r.values[t] = NewHost(t.Spec)
			}
		}
	}
	return r
}

// Plan implements Executor.
func (r *Reference) Plan() *Plan { return r.plan }

// Close implements Executor.
func (r *Reference) Close() {}

// Set implements Executor.
func (r *Reference) Set(t *Tensor, data []float64) error {
	if err := checkSet(t, data); err != nil {
		return err
	}
	dst := r.values[t].Data
	copy(dst, data)
	// f16 tensors hold what the GPU's would: values rounded to half
	// precision. f32 tensors keep float64 values, so finite differences
	// on the reference stay meaningful.
	if t.DType == gpu.F16 {
		for i, x := range dst {
			dst[i] = float64(float16.Fromfloat32(float32(x)).Float32())
		}
	}
	return nil
}

// Run implements Executor.
func (r *Reference) Run() error {
	for _, n := range r.plan.Nodes {
		in := make([]*Host, len(n.In))
		for i, t := range n.In {
			h, ok := r.values[t]
			if !ok {
				return fmt.Errorf("reference: %s reads %s before it is computed", n.Op.Name(), t.Name)
			}
			in[i] = h
		}
		out, err := n.Op.Reference(in)
		if err != nil {
			return fmt.Errorf("reference %s: %w", n.Op.Name(), err)
		}
		if len(out) != len(n.Out) {
			return fmt.Errorf("reference %s: %d outputs, want %d", n.Op.Name(), len(out), len(n.Out))
		}
		for i, t := range n.Out {
			out[i].Spec = t.Spec
			r.values[t] = out[i]
		}
	}
	return nil
}

// Get implements Executor.
func (r *Reference) Get(ts ...*Tensor) ([][]float64, error) {
	out := make([][]float64, len(ts))
	for i, t := range ts {
		h, ok := r.values[t]
		if !ok {
			return nil, fmt.Errorf("get %s: not computed", t.Name)
		}
		out[i] = append([]float64(nil), h.Data...)
	}
	return out, nil
}

// GPU runs a plan on a device: it allocates the activation arena and the
// persistent buffers once, records every node's dispatches once, and each
// Run replays them as one submission.
type GPU struct {
	dev    *gpu.Device
	plan   *Plan
	arena  *gpu.Buffer
	bufs   map[*Tensor]*gpu.Buffer
	owned  []*gpu.Buffer
	shared []*gpu.Buffer // created here and lent to other executors
	rec    *gpu.Recorder
}

// Buffers lets executors share parameters and state by name (a prefill
// plan and a one-token plan over the same weights and KV caches). Inputs
// and constants are never shared.
type Buffers map[string]*gpu.Buffer

// Workspace lends one activation arena and the recordings' scratch pools (gpu.Pools) to
// several executors that never run at the same time and keep nothing in their activations
// between runs, each run's outputs read (Get) before another of them runs: the graphs of one
// decoder, say, a prefill and one-token steps of fewer rows, run one after another. The arena
// is as large as the largest plan's (an executor whose plan needs more than the arena so far
// gets a new one, which later executors share), so memory is allocated, and first touched,
// once for all of them: on a CPU adapter a graph's first run otherwise pays for the pages its
// buffers map, zeroed one by one. Close frees the memory after the last executor that uses
// it is closed.
type Workspace struct {
	arena  *gpu.Buffer
	arenas []*gpu.Buffer
	pools  gpu.Pools
}

// Close frees the workspace's arenas and pools.
func (w *Workspace) Close() {
	for _, b := range w.arenas {
		b.Release()
	}
	w.pools.Release()
	w.arena, w.arenas = nil, nil
}

// NewGPU compiles a plan for dev. Parameters and state found by name in
// shared use those buffers (shapes must match); the others are allocated
// zeroed (constants at their value), and parameters and state are added to
// shared if it is not nil. A buffer in shared is freed by the executor
// that created it.
func NewGPU(dev *gpu.Device, p *Plan, shared Buffers) (*GPU, error) {
	return NewGPUIn(dev, p, shared, nil)
}

// NewGPUIn is NewGPU with the arena and scratch pools taken from ws (see Workspace); ws nil
// is NewGPU.
func NewGPUIn(dev *gpu.Device, p *Plan, shared Buffers, ws *Workspace) (*GPU, error) {
	e := &GPU{dev: dev, plan: p, bufs: map[*Tensor]*gpu.Buffer{}}
	ok := false
	defer func() {
		if !ok {
			// Buffers this executor lent to shared die with it: take them
			// back out so no other executor binds freed memory.
			for name, b := range shared {
				for _, mine := range e.shared {
					if b == mine {
						delete(shared, name)
					}
				}
			}
			e.Close()
		}
	}()
	arenaBytes := p.ArenaBytes
	if arenaBytes == 0 {
		arenaBytes = 256
	}
	if arenaBytes > dev.Limits.MaxBufferSize {
		return nil, fmt.Errorf("plan needs %d bytes of activations, over the adapter's %d-byte buffer limit: %w", arenaBytes, dev.Limits.MaxBufferSize, gpu.ErrUnsupported)
	}
	var arena *gpu.Buffer
	var err error
	if ws != nil && ws.arena != nil && ws.arena.Bytes() >= arenaBytes {
		arena = ws.arena
	} else {
		if arena, err = dev.NewBuffer("arena", gpu.U32, int(arenaBytes/4)); err != nil {
			return nil, err
		}
		if ws != nil {
			ws.arena, ws.arenas = arena, append(ws.arenas, arena)
		} else {
			e.owned = append(e.owned, arena)
		}
	}
	e.arena = arena
	if err := e.pack(p, shared); err != nil {
		return nil, err
	}
	for _, t := range p.Graph.Tensors {
		if !t.Kind.Persistent() || e.bufs[t] != nil {
			continue
		}
		share := t.Kind == Param || t.Kind == State
		if b, ok := shared[t.Name]; ok && share {
			if b.DType != t.DType || b.Len() != t.Len() {
				return nil, fmt.Errorf("shared buffer %s is %s%v, tensor is %s", t.Name, b.DType, b.Shape, t.Spec)
			}
			e.bufs[t] = b
			continue
		}
		var b *gpu.Buffer
		if t.Kind == Const {
			b, err = Upload(dev, t.Name, t.Value)
		} else {
			b, err = dev.NewBuffer(t.Name, t.DType, t.Shape...)
		}
		if err != nil {
			return nil, err
		}
		e.bufs[t] = b
		if shared != nil && share {
			shared[t.Name] = b
			e.shared = append(e.shared, b)
		} else {
			e.owned = append(e.owned, b)
		}
	}
	for t, root := range p.Own {
		if t != root || e.bufs[t] != nil {
			continue
		}
		b, err := dev.NewBuffer(t.Name, t.DType, t.Shape...)
		if err != nil {
			return nil, err
		}
		e.bufs[t] = b
		e.owned = append(e.owned, b)
	}
	for t, root := range p.Own {
		if t != root {
			v, err := e.bufs[root].View(t.Name, t.DType, 0, t.Shape...)
			if err != nil {
				return nil, fmt.Errorf("place %s: %w", t.Name, err)
			}
			e.bufs[t] = v
		}
	}
	for t, off := range p.Offset {
		v, err := arena.View(t.Name, t.DType, off, t.Shape...)
		if err != nil {
			return nil, fmt.Errorf("place %s: %w", t.Name, err)
		}
		e.bufs[t] = v
	}
	e.rec = dev.NewRecorder()
	if ws != nil {
		e.rec.UsePools(&ws.pools)
	}
	// New kernels compile on every core while the rest is recorded.
	err = dev.CompileInBackground(func() error {
		for _, n := range p.Nodes {
			ins := n.In
			if accumulates(n.Op) {
				ins = ins[:len(ins)-1]
			}
			inB := make([]*gpu.Buffer, len(ins))
			for i, t := range ins {
				inB[i] = e.bufs[t]
			}
			outB := make([]*gpu.Buffer, len(n.Out))
			for i, t := range n.Out {
				outB[i] = e.bufs[t]
			}
			if err := n.Op.Encode(dev, e.rec, inB, outB); err != nil {
				return fmt.Errorf("%s (node %d): %w", n.Op.Name(), n.ID, err)
			}
		}
		return nil
	})
	if err == nil {
		err = e.rec.Ready()
	}
	if err != nil {
		return nil, err
	}
	ok = true
	return e, nil
}

// pack lays out the plan's Packs (see Packer): each group's tensors one
// after another in buffers of their own, every slot rounded up to the
// storage offset alignment (the padding stays zero), each buffer within one
// storage binding. A gradient (an activation kept outside the arena) is
// packed through the tensor that owns its storage. A group is left to the
// ordinary one-buffer-per-tensor placement when one of its tensors is
// already packed elsewhere, lives in the arena, or (with shared buffers) is
// a parameter or state another executor may lend; a tensor larger than one
// binding keeps a buffer of its own.
func (e *GPU) pack(p *Plan, shared Buffers) error {
	align := uint64(max(4, e.dev.Limits.MinStorageBufferOffsetAlignment))
	limit := min(e.dev.Limits.MaxStorageBufferBindingSize, e.dev.Limits.MaxBufferSize)
	packed := map[*Tensor]bool{}
	for gi, grp := range p.Packs {
		keys := make([]*Tensor, 0, len(grp))
		seen := map[*Tensor]bool{}
		ok := len(grp) > 0
		for _, t := range grp {
			k := t
			switch t.Kind {
			case Param, State:
				ok = ok && shared == nil
			case Activation:
				r, own := p.Own[t]
				ok = ok && own
				k = r
			default:
				ok = false
			}
			ok = ok && k != nil && !packed[k] && !seen[k]
			seen[k] = true
			keys = append(keys, k)
		}
		if !ok {
			continue
		}
		type slot struct {
			t   *Tensor
			off uint64
		}
		var chunk []slot
		var size uint64
		flush := func() error {
			if len(chunk) == 0 {
				return nil
			}
			b, err := e.dev.NewBuffer(fmt.Sprintf("pack%d.%s", gi, chunk[0].t.Name), gpu.U32, int(size/4))
			if err != nil {
				return err
			}
			e.owned = append(e.owned, b)
			for _, s := range chunk {
				v, err := b.View(s.t.Name, s.t.DType, s.off, s.t.Shape...)
				if err != nil {
					return fmt.Errorf("pack %s: %w", s.t.Name, err)
				}
				e.bufs[s.t] = v
				packed[s.t] = true
			}
			chunk, size = nil, 0
			return nil
		}
		for _, k := range keys {
			sz := alignUp(uint64(k.Len()*k.DType.Size()), align)
			if sz > limit {
				continue
			}
			if size+sz > limit {
				if err := flush(); err != nil {
					return err
				}
			}
			chunk = append(chunk, slot{k, size})
			size += sz
		}
		if err := flush(); err != nil {
			return err
		}
	}
	return nil
}

// Plan implements Executor.
func (e *GPU) Plan() *Plan { return e.plan }

// ScratchBytes is memory the recorded kernels allocated for themselves,
// outside the plan (transposed operands, block sums): it is not part of
// Plan.ArenaBytes or Plan.OwnBytes.
func (e *GPU) ScratchBytes() uint64 { return e.rec.ScratchBytes() }

// Dispatches is the number of kernel launches one Run submits.
func (e *GPU) Dispatches() int { return e.rec.Len() }

// Buffer returns the GPU buffer holding a tensor.
func (e *GPU) Buffer(t *Tensor) *gpu.Buffer { return e.bufs[t] }

// Set implements Executor.
func (e *GPU) Set(t *Tensor, data []float64) error {
	if err := checkSet(t, data); err != nil {
		return err
	}
	b, ok := e.bufs[t]
	if !ok {
		return fmt.Errorf("set %s: not part of this plan", t.Name)
	}
	switch t.DType {
	case gpu.U32:
		v := make([]uint32, len(data))
		for i, x := range data {
			v[i] = uint32(x)
		}
		return b.Write(v)
	case gpu.I32:
		v := make([]int32, len(data))
		for i, x := range data {
			v[i] = int32(x)
		}
		return b.Write(v)
	}
	v := make([]float32, len(data))
	for i, x := range data {
		v[i] = float32(x)
	}
	return b.Write(v)
}

// Run implements Executor: one submission.
func (e *GPU) Run() error {
	if e.rec == nil {
		return fmt.Errorf("run: the executor was closed")
	}
	return e.rec.Submit()
}

// Get implements Executor: one batched readback.
func (e *GPU) Get(ts ...*Tensor) ([][]float64, error) {
	bufs := make([]*gpu.Buffer, len(ts))
	for i, t := range ts {
		b, ok := e.bufs[t]
		if !ok {
			return nil, fmt.Errorf("get %s: not part of this plan", t.Name)
		}
		bufs[i] = b
	}
	hs, err := Download(e.dev, bufs...)
	if err != nil {
		return nil, err
	}
	out := make([][]float64, len(ts))
	for i, h := range hs {
		out[i] = h.Data
	}
	return out, nil
}

// Close implements Executor. Buffers this executor created and lent through
// Buffers are freed too: close the executors that borrow them first.
func (e *GPU) Close() {
	if e.rec != nil {
		e.rec.Release()
	}
	for _, b := range e.owned {
		b.Release()
	}
	for _, b := range e.shared {
		b.Release()
	}
	e.owned, e.shared, e.rec, e.bufs = nil, nil, nil, nil
}

// Profile runs the recorded step once more, timing every dispatch (see
// gpu.Recorder.Profile). It executes the whole step, optimizer updates
// included, so callers profile after saving what they need.
func (e *GPU) Profile() ([]gpu.KernelTime, string, error) { return e.rec.Profile() }

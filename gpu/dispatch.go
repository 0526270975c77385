package gpu

import (
	"fmt"
	"strings"

	"github.com/cogentcore/webgpu/wgpu"
)

// Dispatch is one prepared command of a recording, created once and
// replayed any number of times: a kernel launch (pipeline, bind group,
// uniform parameters and grid), or a buffer-to-buffer copy (Kernel nil; see
// Recorder.Copy).
type Dispatch struct {
	Kernel *Kernel
	Grid   [3]uint32
	group  *wgpu.BindGroup
	params *wgpu.Buffer
	copy   *bufferCopy
}

// bufferCopy is a copy step: size bytes from src at byte srcOffset into dst at dstOffset (offsets
// relative to the views).
type bufferCopy struct {
	src, dst                   *Buffer
	srcOffset, dstOffset, size uint64
}

// encode records the copy on enc, outside any compute pass.
func (c *bufferCopy) encode(enc *wgpu.CommandEncoder) error {
	if c.src.alive() != nil || c.dst.alive() != nil {
		return fmt.Errorf("copy %s → %s: a buffer was released", c.src.Name, c.dst.Name)
	}
	if err := enc.CopyBufferToBuffer(c.src.buf, c.src.offset+c.srcOffset, c.dst.buf, c.dst.offset+c.dstOffset, c.size); err != nil {
		return fmt.Errorf("copy %s → %s: %w", c.src.Name, c.dst.Name, err)
	}
	return nil
}

// CopyName is the name a copy step reports (profiles sum it under copies).
const CopyName = "copy_buffer"

// Name is the kernel's name, or CopyName for a copy.
func (p *Dispatch) Name() string {
	if p.copy != nil {
		return CopyName
	}
	return p.Kernel.Spec.Name
}

// Release frees the bind group and parameter buffer (not the pipeline, which
// the device caches).
func (p *Dispatch) Release() {
	if p.group != nil {
		p.group.Release()
		p.group = nil
	}
	if p.params != nil {
		p.params.Release()
		p.params = nil
	}
}

// Grid1D folds n workgroups into a grid no dimension of which exceeds the
// adapter's maxComputeWorkgroupsPerDimension. Kernels recover the linear
// index as wid.x + wid.y * num_workgroups.x and skip indices ≥ n.
func (d *Device) Grid1D(n int) [3]uint32 {
	max := int(d.Limits.MaxComputeWorkgroupsPerDimension)
	if n <= 0 {
		return [3]uint32{0, 1, 1}
	}
	if n <= max {
		return [3]uint32{uint32(n), 1, 1}
	}
	y := (n + max - 1) / max
	x := (n + y - 1) / y
	return [3]uint32{uint32(x), uint32(y), 1}
}

// CeilDiv is ⌈a/b⌉ for grid arithmetic.
func CeilDiv(a, b int) int { return (a + b - 1) / b }

// NewDispatch binds buffers (in the kernel's binding order) and parameters
// to a kernel. It checks every limit WebGPU would otherwise reject at submit
// time, naming the kernel: binding count and kinds, binding size, grid size.
func (d *Device) NewDispatch(k *Kernel, grid [3]uint32, params []uint32, bufs ...*Buffer) (*Dispatch, error) {
	name := k.Spec.Name
	if len(bufs) != len(k.Spec.Bindings) {
		return nil, fmt.Errorf("kernel %s: %d buffers given, kernel binds %d", name, len(bufs), len(k.Spec.Bindings))
	}
	if k.Spec.Params != (params != nil) {
		return nil, fmt.Errorf("kernel %s: parameters given=%v, kernel takes parameters=%v", name, params != nil, k.Spec.Params)
	}
	for i, g := range grid {
		if g > d.Limits.MaxComputeWorkgroupsPerDimension {
			return nil, fmt.Errorf("kernel %s: grid %v: dimension %d exceeds maxComputeWorkgroupsPerDimension %d (fold the grid with Grid1D): %w",
				name, grid, i, d.Limits.MaxComputeWorkgroupsPerDimension, ErrUnsupported)
		}
	}
	entries := make([]wgpu.BindGroupEntry, 0, len(bufs)+1)
	for i, b := range bufs {
		if b == nil || b.buf == nil {
			return nil, fmt.Errorf("kernel %s: binding %d is nil or released", name, i)
		}
		if b.dev != d {
			return nil, fmt.Errorf("kernel %s: buffer %s belongs to another device", name, b.Name)
		}
		if k.Spec.Bindings[i] == Uniform {
			if b.size > d.Limits.MaxUniformBufferBindingSize {
				return nil, fmt.Errorf("kernel %s: uniform binding %d (%s) is %d bytes, over the adapter's %d-byte uniform binding limit: %w",
					name, i, b.Name, b.size, d.Limits.MaxUniformBufferBindingSize, ErrUnsupported)
			}
			if a := uint64(d.Limits.MinUniformBufferOffsetAlignment); a > 0 && b.offset%a != 0 {
				return nil, fmt.Errorf("kernel %s: uniform binding %d (%s) at offset %d is not %d-byte aligned", name, i, b.Name, b.offset, a)
			}
		} else if b.size > d.Limits.MaxStorageBufferBindingSize {
			return nil, fmt.Errorf("kernel %s: buffer %s %v is %d bytes, over the adapter's %d-byte storage binding limit; split the tensor: %w",
				name, b.Name, b.Shape, b.size, d.Limits.MaxStorageBufferBindingSize, ErrUnsupported)
		}
		if b.parent != nil && b.parent.buf == nil {
			return nil, fmt.Errorf("kernel %s: binding %d (%s) views a released buffer", name, i, b.Name)
		}
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i), Buffer: b.buf, Offset: b.offset, Size: b.size})
	}
	for i := range bufs {
		for j := i + 1; j < len(bufs); j++ {
			if bufs[i].overlaps(bufs[j]) && (k.Spec.Bindings[i] == ReadWrite || k.Spec.Bindings[j] == ReadWrite) {
				return nil, fmt.Errorf("kernel %s: buffers %s and %s overlap and one is written (bindings %d and %d)", name, bufs[i].Name, bufs[j].Name, i, j)
			}
		}
	}
	for i := range bufs {
		for j := range bufs {
			if k.Spec.Bindings[i] == Uniform && k.Spec.Bindings[j] != Uniform && bufs[i].buf == bufs[j].buf {
				return nil, fmt.Errorf("kernel %s: %s is bound as uniform and %s as storage, but they share one GPU buffer, which WebGPU forbids in one dispatch", name, bufs[i].Name, bufs[j].Name)
			}
		}
	}
	p := &Dispatch{Kernel: k, Grid: grid}
	if params != nil {
		raw := bytesOf(params)
		for len(raw)%16 != 0 || len(raw) == 0 {
			raw = append(raw, 0)
		}
		pb, err := d.dev.CreateBufferInit(&wgpu.BufferInitDescriptor{
			Label:    name + ".params",
			Contents: raw,
			Usage:    wgpu.BufferUsageUniform | wgpu.BufferUsageCopyDst,
		})
		if err != nil {
			return nil, fmt.Errorf("kernel %s: params: %w", name, err)
		}
		p.params = pb
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(len(bufs)), Buffer: pb, Size: uint64(len(raw))})
	}
	g, err := d.dev.CreateBindGroup(&wgpu.BindGroupDescriptor{Label: name, Layout: k.layout, Entries: entries})
	if err != nil {
		p.Release()
		return nil, fmt.Errorf("kernel %s: bind: %w", name, err)
	}
	p.group = g
	return p, nil
}

// Recorder collects dispatches and submits them as one compute pass in one
// submission. A recorder may be submitted again: the same commands replay.
type Recorder struct {
	dev     *Device
	steps   []*Dispatch
	owned   []*Dispatch
	scratch []*Buffer
	pools   map[string]*Buffer // the newest buffer of each Shared pool
	lent    *Pools             // pools of the caller's (UsePools), or nil
}

// Pools are Shared pools that several recordings take in turn (UsePools): recordings whose
// submissions never overlap in time, such as the graphs of one decoder, which run one after
// another. Each pool's memory is then allocated, and first touched, once for all of them;
// on a CPU adapter the first touch of new memory (the pages zeroed as they are mapped) is a
// good part of a graph's first run. The zero value is ready to use; Release frees the buffers
// after the last recording that uses them is released.
type Pools struct {
	newest map[string]*Buffer
	all    []*Buffer
}

// Release frees every buffer of the pools.
func (p *Pools) Release() {
	for _, b := range p.all {
		b.Release()
	}
	p.newest, p.all = nil, nil
}

// UsePools makes Shared take its pools from p (which must outlive the recording) instead of
// the recording's own: the buffers Shared allocates are then p's, and Release leaves them.
// Call it before the first Shared.
func (r *Recorder) UsePools(p *Pools) {
	if p.newest == nil {
		p.newest = map[string]*Buffer{}
	}
	r.lent, r.pools = p, p.newest
}

// Scratch allocates a temporary buffer that lives as long as the recording
// (for example the block sums of a multi-pass scan) and is freed by Release.
func (r *Recorder) Scratch(name string, t DType, shape ...int) (*Buffer, error) {
	b, err := r.dev.NewBuffer(name, t, shape...)
	if err != nil {
		return nil, err
	}
	r.scratch = append(r.scratch, b)
	return b, nil
}

// Shared returns a view of a scratch buffer that every call naming the same
// pool shares, for a temporary that one dispatch writes and the next ones
// read before the pool's next user records its own (a transposed operand,
// say): dispatches run in recording order, so one buffer serves them all
// instead of one buffer each. A request larger than the pool's buffer
// allocates a larger one, which later requests share; earlier views keep
// theirs. Everything is freed by Release. Views start at offset 0.
func (r *Recorder) Shared(pool, name string, t DType, shape ...int) (*Buffer, error) {
	need := paddedBytes(t, numel(shape))
	b := r.pools[pool]
	if b == nil || b.size < need {
		nb, err := r.dev.NewBuffer(pool, U32, int(need/4))
		if err != nil {
			return nil, err
		}
		if r.pools == nil {
			r.pools = map[string]*Buffer{}
		}
		r.pools[pool] = nb
		if r.lent != nil {
			r.lent.all = append(r.lent.all, nb)
		} else {
			r.scratch = append(r.scratch, nb)
		}
		b = nb
	}
	return b.View(name, t, 0, shape...)
}

// NewRecorder starts an empty recording.
func (d *Device) NewRecorder() *Recorder { return &Recorder{dev: d} }

// Add appends prepared dispatches; the caller keeps ownership.
func (r *Recorder) Add(ps ...*Dispatch) { r.steps = append(r.steps, ps...) }

// Copy appends a copy of src's bytes into dst (a copyBufferToBuffer
// between compute passes): the two must be the same size, a multiple of 4
// bytes, and live in different GPU buffers (WebGPU copies never within one
// buffer). On a CPU driver this is a memcpy, several times faster than a
// copy kernel, whose per-invocation loads are scalar loops there.
func (r *Recorder) Copy(src, dst *Buffer) error {
	if src.alive() == nil && dst.alive() == nil && src.size != dst.size {
		return fmt.Errorf("copy %s → %s: %d bytes into %d", src.Name, dst.Name, src.size, dst.size)
	}
	return r.CopyRegion(src, 0, dst, 0, src.size)
}

// CopyRegion appends a copy of size bytes of src, from byte srcOffset of it, into dst at byte
// dstOffset (offsets relative to the two views; unlike a view's, they need no storage
// alignment). Offsets and size must be multiples of 4 bytes, both ranges inside their
// buffers, and src and dst must live in different GPU buffers, as for Copy.
func (r *Recorder) CopyRegion(src *Buffer, srcOffset uint64, dst *Buffer, dstOffset, size uint64) error {
	for _, b := range []*Buffer{src, dst} {
		if err := b.alive(); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if b.dev != r.dev {
			return fmt.Errorf("copy: buffer %s belongs to another device", b.Name)
		}
	}
	switch {
	case srcOffset+size > src.size || dstOffset+size > dst.size:
		return fmt.Errorf("copy %s → %s: %d bytes from byte %d into byte %d overrun %d or %d bytes", src.Name, dst.Name, size, srcOffset, dstOffset, src.size, dst.size)
	case size%4 != 0 || (src.offset+srcOffset)%4 != 0 || (dst.offset+dstOffset)%4 != 0:
		return fmt.Errorf("copy %s → %s: sizes and offsets must be multiples of 4 bytes (size %d, offsets %d and %d)", src.Name, dst.Name, size, src.offset+srcOffset, dst.offset+dstOffset)
	case src.buf == dst.buf:
		return fmt.Errorf("copy %s → %s: both live in one GPU buffer, which a WebGPU copy cannot do", src.Name, dst.Name)
	}
	p := &Dispatch{Grid: [3]uint32{1, 1, 1}, copy: &bufferCopy{src: src, dst: dst, srcOffset: srcOffset, dstOffset: dstOffset, size: size}}
	r.steps = append(r.steps, p)
	r.owned = append(r.owned, p)
	return nil
}

// Dispatch prepares and appends a dispatch that the recorder owns.
func (r *Recorder) Dispatch(k *Kernel, grid [3]uint32, params []uint32, bufs ...*Buffer) error {
	p, err := r.dev.NewDispatch(k, grid, params, bufs...)
	if err != nil {
		return err
	}
	r.steps = append(r.steps, p)
	r.owned = append(r.owned, p)
	return nil
}

// Ready waits until every kernel the recording dispatches is compiled (see
// Device.CompileInBackground) and returns the first compile error.
func (r *Recorder) Ready() error {
	for _, p := range r.steps {
		if p.Kernel == nil {
			continue // a copy
		}
		if err := p.Kernel.Wait(); err != nil {
			return err
		}
	}
	return nil
}

// ScratchBytes is the memory the recording's scratch buffers hold.
func (r *Recorder) ScratchBytes() uint64 {
	var n uint64
	for _, b := range r.scratch {
		n += b.size
	}
	return n
}

// Len is the number of recorded dispatches.
func (r *Recorder) Len() int { return len(r.steps) }

// Steps lists the recorded dispatches in order.
func (r *Recorder) Steps() []*Dispatch { return r.steps }

// Submit encodes every dispatch into one compute pass and submits it. It
// does not wait; Device.Read or Device.Wait does.
func (r *Recorder) Submit() error {
	return r.dev.submit(r.steps)
}

// Release frees the dispatches the recorder owns.
func (r *Recorder) Release() {
	for _, p := range r.owned {
		p.Release()
	}
	for _, b := range r.scratch {
		b.Release()
	}
	r.owned, r.steps, r.scratch, r.pools, r.lent = nil, nil, nil, nil, nil
}

func (d *Device) submit(steps []*Dispatch) error {
	if err := d.err(); err != nil {
		return err
	}
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	var pass *wgpu.ComputePassEncoder // open compute pass, nil between copies
	endPass := func() error {
		if pass == nil {
			return nil
		}
		err := pass.End()
		pass.Release()
		pass = nil
		return err
	}
	fail := func(err error) error {
		endPass()
		enc.Release()
		return err
	}
	for _, p := range steps {
		if c := p.copy; c != nil {
			if err := endPass(); err != nil {
				return fail(fmt.Errorf("record %s: %w", names(steps), err))
			}
			if err := c.encode(enc); err != nil {
				return fail(err)
			}
			continue
		}
		if p.group == nil {
			return fail(fmt.Errorf("kernel %s: dispatch was released", p.Name()))
		}
		if p.Grid[0] == 0 || p.Grid[1] == 0 || p.Grid[2] == 0 {
			continue // nothing to do (empty tensor)
		}
		if err := p.Kernel.Wait(); err != nil {
			return fail(err)
		}
		if pass == nil {
			pass = enc.BeginComputePass(nil)
		}
		pass.SetPipeline(p.Kernel.pipeline)
		pass.SetBindGroup(0, p.group, nil)
		pass.DispatchWorkgroups(p.Grid[0], p.Grid[1], p.Grid[2])
	}
	if err := endPass(); err != nil {
		enc.Release()
		return fmt.Errorf("record %s: %w", names(steps), err)
	}
	cmd, err := enc.Finish(nil)
	enc.Release()
	if err != nil {
		return fmt.Errorf("record %s: %w", names(steps), err)
	}
	d.queue.Submit(cmd)
	cmd.Release()
	return nil
}

func names(steps []*Dispatch) string {
	var s []string
	for i, p := range steps {
		if i == 8 {
			s = append(s, fmt.Sprintf("… (%d kernels)", len(steps)))
			break
		}
		s = append(s, p.Name())
	}
	return strings.Join(s, ", ")
}

// Run prepares, submits and releases a single dispatch: the convenience
// path for one-off kernels and tests.
func (d *Device) Run(k *Kernel, grid [3]uint32, params []uint32, bufs ...*Buffer) error {
	p, err := d.NewDispatch(k, grid, params, bufs...)
	if err != nil {
		return err
	}
	defer p.Release()
	return d.submit([]*Dispatch{p})
}

// CeilDiv32 is CeilDiv for grid dimensions.
func CeilDiv32(a, b int) uint32 { return uint32(CeilDiv(a, b)) }

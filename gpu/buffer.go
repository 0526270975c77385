package gpu

import (
	"fmt"
	"unsafe"

	"github.com/cogentcore/webgpu/wgpu"
	"github.com/x448/float16"
)

// DType is the element type of a storage buffer.
type DType int

// Element types kernels read and write.
const (
	F32 DType = iota
	F16
	U32
	I32
)

func (t DType) String() string {
	return [...]string{"f32", "f16", "u32", "i32"}[t]
}

// Size is the element size in bytes.
func (t DType) Size() int {
	if t == F16 {
		return 2
	}
	return 4
}

// Buffer is a typed storage buffer with a shape. Its bytes are padded up to
// a multiple of 4 (f16 with an odd count) and to at least 4 bytes, so that
// empty tensors are still valid bindings.
type Buffer struct {
	Name  string
	DType DType
	Shape []int

	dev    *Device
	buf    *wgpu.Buffer
	size   uint64
	offset uint64  // byte offset into buf (views into an arena)
	parent *Buffer // the owning buffer, for views
}

// View returns a typed window into b starting at offsetBytes, sharing its
// memory: how a memory planner places many tensors in one arena. The offset
// must respect the adapter's minStorageBufferOffsetAlignment. Releasing a
// view does nothing; the parent owns the memory.
func (b *Buffer) View(name string, t DType, offsetBytes uint64, shape ...int) (*Buffer, error) {
	if err := b.alive(); err != nil {
		return nil, err
	}
	if b.parent != nil {
		// A view of a view stays inside the outer view.
		if size := paddedBytes(t, numel(shape)); offsetBytes+size > b.size {
			return nil, fmt.Errorf("view %s %v %s: bytes [%d, %d) exceed %s's %d bytes", name, shape, t, offsetBytes, offsetBytes+size, b.Name, b.size)
		}
		return b.parent.View(name, t, b.offset+offsetBytes, shape...)
	}
	align := uint64(b.dev.Limits.MinStorageBufferOffsetAlignment)
	if align > 0 && offsetBytes%align != 0 {
		return nil, fmt.Errorf("view %s: offset %d is not a multiple of the adapter's %d-byte storage offset alignment", name, offsetBytes, align)
	}
	size := paddedBytes(t, numel(shape))
	if offsetBytes+size > b.size {
		return nil, fmt.Errorf("view %s %v %s: bytes [%d, %d) exceed %s's %d bytes", name, shape, t, offsetBytes, offsetBytes+size, b.Name, b.size)
	}
	return &Buffer{Name: name, DType: t, Shape: append([]int(nil), shape...), dev: b.dev, buf: b.buf, size: size, offset: offsetBytes, parent: b}, nil
}

// alive reports an error for a released buffer or a view of one: the
// binding would crash on it.
func (b *Buffer) alive() error {
	if b == nil || b.buf == nil || (b.parent != nil && b.parent.buf == nil) {
		name := "<nil>"
		if b != nil {
			name = b.Name
		}
		return fmt.Errorf("buffer %s was released", name)
	}
	return nil
}

// Offset is the view's byte offset into its GPU buffer (0 for a buffer of
// its own).
func (b *Buffer) Offset() uint64 { return b.offset }

// Root is the buffer that owns a view's memory (b itself when b is not a
// view): the base for a view spanning several adjacent views, as the
// optimizer binds all parameters packed into one buffer.
func (b *Buffer) Root() *Buffer {
	if b.parent != nil {
		return b.parent
	}
	return b
}

// overlaps reports whether two buffers share bytes.
func (b *Buffer) overlaps(o *Buffer) bool {
	if b.buf != o.buf {
		return false
	}
	return b.offset < o.offset+o.size && o.offset < b.offset+b.size
}

// Len is the number of elements.
func (b *Buffer) Len() int { return numel(b.Shape) }

// Bytes is the allocated size in bytes.
func (b *Buffer) Bytes() uint64 { return b.size }

func numel(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}

func paddedBytes(t DType, n int) uint64 {
	b := uint64(n * t.Size())
	b = (b + 3) &^ 3
	if b < 4 {
		b = 4
	}
	return b
}

// NewBuffer allocates a zeroed storage buffer. It refuses sizes over the
// adapter's maxBufferSize with an error that says so.
func (d *Device) NewBuffer(name string, t DType, shape ...int) (*Buffer, error) {
	for _, s := range shape {
		if s < 0 {
			return nil, fmt.Errorf("buffer %s: negative dimension in shape %v", name, shape)
		}
	}
	size := paddedBytes(t, numel(shape))
	if size > d.Limits.MaxBufferSize {
		return nil, fmt.Errorf("buffer %s %v %s: %d bytes exceeds the adapter's maxBufferSize %d: %w",
			name, shape, t, size, d.Limits.MaxBufferSize, ErrUnsupported)
	}
	buf, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{
		Label: name,
		Size:  size,
		Usage: wgpu.BufferUsageStorage | wgpu.BufferUsageUniform | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst,
	})
	if err != nil {
		return nil, fmt.Errorf("buffer %s %v: %w", name, shape, err)
	}
	return &Buffer{Name: name, DType: t, Shape: append([]int(nil), shape...), dev: d, buf: buf, size: size}, nil
}

// Release frees the GPU memory.
func (b *Buffer) Release() {
	if b != nil && b.parent != nil {
		return
	}
	if b != nil && b.buf != nil {
		b.buf.Release()
		b.buf = nil
	}
}

// Write uploads host data. The slice type must match the buffer: []float32
// for F32 and F16 (converted to half precision, round to nearest even),
// []uint32 for U32, []int32 for I32.
func (b *Buffer) Write(data any) error {
	if err := b.alive(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	raw, n, err := encode(b.DType, data)
	if err != nil {
		return fmt.Errorf("write %s: %w", b.Name, err)
	}
	if n != b.Len() {
		return fmt.Errorf("write %s: %d elements given, buffer %v holds %d", b.Name, n, b.Shape, b.Len())
	}
	if len(raw) == 0 {
		return nil
	}
	if pad := len(raw) % 4; pad != 0 {
		raw = append(raw, make([]byte, 4-pad)...)
	}
	return b.dev.queue.WriteBuffer(b.buf, b.offset, raw)
}

func encode(t DType, data any) ([]byte, int, error) {
	switch v := data.(type) {
	case []float32:
		switch t {
		case F32:
			return bytesOf(v), len(v), nil
		case F16:
			h := make([]uint16, len(v))
			for i, x := range v {
				h[i] = uint16(float16.Fromfloat32(x))
			}
			return bytesOf(h), len(v), nil
		}
	case []uint32:
		if t == U32 {
			return bytesOf(v), len(v), nil
		}
	case []int32:
		if t == I32 {
			return bytesOf(v), len(v), nil
		}
	}
	return nil, 0, fmt.Errorf("cannot write %T into a %s buffer", data, t)
}

// bytesOf views s's memory as bytes, without a copy (the callers hand the bytes to WebGPU,
// which copies them before returning, and never append within the view: its capacity is its
// length). A copy cost as much as the write: on a VM where each new 4 KiB page costs a fault,
// the 10 MiB of a 256-line OCR prefill's pixels took 2 560 faults (about 25 ms) a write.
func bytesOf[E any](s []E) []byte {
	if len(s) == 0 {
		return nil
	}
	var e E
	return unsafe.Slice((*byte)(unsafe.Pointer(&s[0])), len(s)*int(unsafe.Sizeof(e)))
}

func sliceOf[E any](b []byte, n int) []E {
	out := make([]E, n)
	if n > 0 {
		var e E
		dst := unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), n*int(unsafe.Sizeof(e)))
		copy(dst, b) // b may carry padding past n elements; copy stops at dst's end
	}
	return out
}

// Data is read-back content of one buffer.
type Data struct {
	DType DType
	raw   []byte
	n     int
}

// Float32 returns the elements as float32 (F16 widened exactly).
func (d Data) Float32() []float32 {
	switch d.DType {
	case F32:
		return sliceOf[float32](d.raw, d.n)
	case F16:
		h := sliceOf[uint16](d.raw, d.n)
		out := make([]float32, d.n)
		for i, x := range h {
			out[i] = float16.Frombits(x).Float32()
		}
		return out
	case U32:
		u := sliceOf[uint32](d.raw, d.n)
		out := make([]float32, d.n)
		for i, x := range u {
			out[i] = float32(x)
		}
		return out
	}
	s := sliceOf[int32](d.raw, d.n)
	out := make([]float32, d.n)
	for i, x := range s {
		out[i] = float32(x)
	}
	return out
}

// Uint32 returns U32 (or I32, reinterpreted) elements.
func (d Data) Uint32() []uint32 { return sliceOf[uint32](d.raw, d.n) }

// Int32 returns I32 (or U32, reinterpreted) elements.
func (d Data) Int32() []int32 { return sliceOf[int32](d.raw, d.n) }

// Read copies buffers back to the host in one submission: every buffer is
// copied into its own staging buffer by one command encoder, then all are
// mapped together. This is the only place the CPU waits for the GPU.
func (d *Device) Read(bufs ...*Buffer) ([]Data, error) {
	for _, b := range bufs {
		if err := b.alive(); err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
	}
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	// Staging buffers are reused between reads (a training step reads its
	// loss every step); after a failed read they are dropped instead.
	staging := make([]*wgpu.Buffer, len(bufs))
	ok := false
	defer func() {
		for i, s := range staging {
			if s == nil {
				continue
			}
			if ok {
				d.putStaging(bufs[i].size, s)
			} else {
				s.Release()
			}
		}
	}()
	for i, b := range bufs {
		s, err := d.takeStaging(b.size)
		if err != nil {
			enc.Release()
			return nil, fmt.Errorf("read %s: %w", b.Name, err)
		}
		staging[i] = s
		if err := enc.CopyBufferToBuffer(b.buf, b.offset, s, 0, b.size); err != nil {
			enc.Release()
			return nil, fmt.Errorf("read %s: %w", b.Name, err)
		}
	}
	cmd, err := enc.Finish(nil)
	enc.Release()
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	d.queue.Submit(cmd)
	cmd.Release()

	status := make([]wgpu.BufferMapAsyncStatus, len(bufs))
	done := 0
	for i, s := range staging {
		i := i
		if err := s.MapAsync(wgpu.MapModeRead, 0, bufs[i].size, func(st wgpu.BufferMapAsyncStatus) {
			status[i] = st
			done++
		}); err != nil {
			return nil, fmt.Errorf("read %s: %w", bufs[i].Name, err)
		}
	}
	if err := d.pollUntil(func() bool { return done == len(bufs) }); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	out := make([]Data, len(bufs))
	for i, s := range staging {
		if status[i] != wgpu.BufferMapAsyncStatusSuccess {
			return nil, fmt.Errorf("read %s: map failed (%s)", bufs[i].Name, status[i])
		}
		raw := s.GetMappedRange(0, uint(bufs[i].size))
		out[i] = Data{DType: bufs[i].DType, raw: append([]byte(nil), raw...), n: bufs[i].Len()}
		s.Unmap()
	}
	ok = true
	return out, d.err()
}

// stagingPerSize bounds the staging buffers kept per size.
const stagingPerSize = 4

func (d *Device) takeStaging(size uint64) (*wgpu.Buffer, error) {
	d.mu.Lock()
	if free := d.staging[size]; len(free) > 0 {
		s := free[len(free)-1]
		d.staging[size] = free[:len(free)-1]
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	return d.dev.CreateBuffer(&wgpu.BufferDescriptor{
		Label: "staging",
		Size:  size,
		Usage: wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst,
	})
}

func (d *Device) putStaging(size uint64, s *wgpu.Buffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.staging == nil || len(d.staging[size]) >= stagingPerSize {
		s.Release()
		return
	}
	d.staging[size] = append(d.staging[size], s)
}

// ReadFloat32 reads one buffer as float32.
func (d *Device) ReadFloat32(b *Buffer) ([]float32, error) {
	data, err := d.Read(b)
	if err != nil {
		return nil, err
	}
	return data[0].Float32(), nil
}

// SameMemory reports whether two buffers are views of one GPU buffer (an
// arena): WebGPU then forbids binding one as uniform and the other as
// writable storage in the same dispatch.
func (b *Buffer) SameMemory(o *Buffer) bool { return b.buf == o.buf }

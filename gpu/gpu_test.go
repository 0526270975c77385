package gpu_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/gputest"
)

const fillSrc = `
override WG: u32 = 64u;
struct Params { n: u32, value: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<storage, read_write> y: array<u32>;  // (n) output
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let i = (wid.x + wid.y * nwg.x) * WG + lid;
  if (i < p.n) { y[i] = p.value + i; }
}
@compute @workgroup_size(WG)
fn addone(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { y[g.x] = y[g.x] + 1u; }
}
`

// u32Buffer is a u32 buffer "y" of n elements, released when the test ends.
func u32Buffer(t *testing.T, dev *gpu.Device, n int) *gpu.Buffer {
	t.Helper()
	y, err := dev.NewBuffer("y", gpu.U32, n)
	require.NoError(t, err)
	t.Cleanup(y.Release)
	return y
}

func fillKernel(t *testing.T, dev *gpu.Device, entry string, wg string) *gpu.Kernel {
	t.Helper()
	k, err := dev.Kernel(gpu.KernelSpec{Name: entry, Source: fillSrc, Entry: entry,
		Bindings: []gpu.Access{gpu.ReadWrite}, Params: true, Constants: map[string]string{"WG": wg}})
	require.NoError(t, err)
	return k
}

func TestBuffersRoundTripEveryDType(t *testing.T) {
	dev := gputest.Device(t)
	f, err := dev.NewBuffer("f", gpu.F32, 3)
	require.NoError(t, err)
	defer f.Release()
	h, err := dev.NewBuffer("h", gpu.F16, 3) // odd count: padded to 4 bytes
	require.NoError(t, err)
	defer h.Release()
	u, err := dev.NewBuffer("u", gpu.U32, 2)
	require.NoError(t, err)
	defer u.Release()
	i, err := dev.NewBuffer("i", gpu.I32, 2)
	require.NoError(t, err)
	defer i.Release()
	require.NoError(t, f.Write([]float32{1.5, -2, 3e-8}))
	require.NoError(t, h.Write([]float32{1.5, -2, 65504}))
	require.NoError(t, u.Write([]uint32{7, 1 << 31}))
	require.NoError(t, i.Write([]int32{-7, 9}))
	data, err := dev.Read(f, h, u, i) // one batched readback
	require.NoError(t, err)
	require.Equal(t, []float32{1.5, -2, 3e-8}, data[0].Float32())
	require.Equal(t, []float32{1.5, -2, 65504}, data[1].Float32())
	require.Equal(t, []uint32{7, 1 << 31}, data[2].Uint32())
	require.Equal(t, []int32{-7, 9}, data[3].Int32())
}

func TestBufferWriteRejectsWrongLengthAndType(t *testing.T) {
	dev := gputest.Device(t)
	b, err := dev.NewBuffer("b", gpu.F32, 4)
	require.NoError(t, err)
	defer b.Release()
	require.ErrorContains(t, b.Write([]float32{1, 2}), "2 elements given")
	require.ErrorContains(t, b.Write([]uint32{1, 2, 3, 4}), "cannot write []uint32 into a f32 buffer")
	_, err = dev.NewBuffer("neg", gpu.F32, -1)
	require.Error(t, err)
}

func TestRecorderPutsManyDispatchesInOneSubmissionAndReplays(t *testing.T) {
	dev := gputest.Device(t)
	const n = 1000
	y := u32Buffer(t, dev, n)
	fill := fillKernel(t, dev, "fill", "64u")
	add := fillKernel(t, dev, "addone", "64u")
	rec := dev.NewRecorder()
	defer rec.Release()
	require.NoError(t, rec.Dispatch(fill, dev.Grid1D(gpu.CeilDiv(n, 64)), []uint32{n, 10, 0, 0}, y))
	for r := 0; r < 5; r++ {
		require.NoError(t, rec.Dispatch(add, [3]uint32{gpu.CeilDiv32(n, 64), 1, 1}, []uint32{n, 0, 0, 0}, y))
	}
	require.Equal(t, 6, rec.Len())
	for replay := 0; replay < 2; replay++ { // dispatches run in order, each replay from scratch
		require.NoError(t, rec.Submit())
		data, err := dev.Read(y)
		require.NoError(t, err)
		got := data[0].Uint32()
		for i := range got {
			require.Equal(t, uint32(10+i+5), got[i], "element %d after replay %d", i, replay)
		}
	}
}

func TestPipelineCacheCompilesEachSpecialisationOnce(t *testing.T) {
	dev := gputest.Device(t)
	before := dev.CachedKernels()
	a := fillKernel(t, dev, "fill", "32u")
	b := fillKernel(t, dev, "fill", "32u")
	c := fillKernel(t, dev, "fill", "16u")
	require.Same(t, a, b)
	require.NotSame(t, a, c)
	require.Equal(t, before+2, dev.CachedKernels())
}

func TestGrid1DFoldsLargeGridsAndKernelsCoverEveryElement(t *testing.T) {
	dev := gputest.Device(t)
	max := int(dev.Limits.MaxComputeWorkgroupsPerDimension)
	n := (max + 100) * 16 // more workgroups of 16 than one dimension allows
	grid := dev.Grid1D(gpu.CeilDiv(n, 16))
	require.Greater(t, grid[1], uint32(1))
	require.LessOrEqual(t, int(grid[0]), max)
	y := u32Buffer(t, dev, n)
	require.NoError(t, dev.Run(fillKernel(t, dev, "fill", "16u"), grid, []uint32{uint32(n), 3, 0, 0}, y))
	data, err := dev.Read(y)
	require.NoError(t, err)
	got := data[0].Uint32()
	for _, i := range []int{0, 1, n / 2, n - 1} {
		require.Equal(t, uint32(3+i), got[i])
	}
	_, err = dev.NewDispatch(fillKernel(t, dev, "fill", "16u"), [3]uint32{uint32(max + 1), 1, 1}, []uint32{1, 0, 0, 0}, y)
	require.ErrorIs(t, err, gpu.ErrUnsupported)
	require.ErrorContains(t, err, "kernel fill")
}

func TestBindingOverTheLimitIsAnErrorNamingTheKernel(t *testing.T) {
	dev := gputest.Device(t)
	n := int(dev.Limits.MaxStorageBufferBindingSize/4) + 1
	big, err := dev.NewBuffer("big", gpu.U32, n)
	require.NoError(t, err)
	defer big.Release()
	err = dev.Run(fillKernel(t, dev, "fill", "64u"), [3]uint32{1, 1, 1}, []uint32{1, 0, 0, 0}, big)
	require.ErrorIs(t, err, gpu.ErrUnsupported)
	require.ErrorContains(t, err, "kernel fill")
	require.ErrorContains(t, err, "storage binding limit")
}

func TestShaderErrorsNameTheKernel(t *testing.T) {
	dev := gputest.Device(t)
	_, err := dev.Kernel(gpu.KernelSpec{Name: "broken_kernel", Source: "fn main( {", Entry: "main"})
	require.Error(t, err)
	require.Contains(t, err.Error(), "broken_kernel")
	_, err = dev.Kernel(gpu.KernelSpec{Name: "fill", Source: fillSrc, Entry: "fill",
		Bindings: []gpu.Access{gpu.ReadWrite}, Params: true, Constants: map[string]string{"NOPE": "1u"}})
	require.ErrorContains(t, err, "constant NOPE is not an override")
}

func TestDispatchRejectsMismatchedBindings(t *testing.T) {
	dev := gputest.Device(t)
	k := fillKernel(t, dev, "fill", "64u")
	y := u32Buffer(t, dev, 4)
	_, err := dev.NewDispatch(k, [3]uint32{1, 1, 1}, []uint32{4, 0, 0, 0}, y, y)
	require.ErrorContains(t, err, "2 buffers given, kernel binds 1")
	_, err = dev.NewDispatch(k, [3]uint32{1, 1, 1}, nil, y)
	require.ErrorContains(t, err, "parameters")
}

func TestTooManyStorageBuffersIsUnsupported(t *testing.T) {
	dev := gputest.Device(t)
	n := int(dev.Limits.MaxStorageBuffersPerShaderStage) + 1
	_, err := dev.Kernel(gpu.KernelSpec{Name: "wide", Source: fillSrc, Entry: "fill", Bindings: make([]gpu.Access, n)})
	require.True(t, errors.Is(err, gpu.ErrUnsupported), "got %v", err)
}

func TestSpecialiseRewritesOverrides(t *testing.T) {
	out, err := gpu.Specialise("override A: u32 = 4u;\noverride B = 2.0;\n", map[string]string{"A": "8u"})
	require.NoError(t, err)
	require.True(t, strings.Contains(out, "const A: u32 = 8u;"), out)
	require.True(t, strings.Contains(out, "const B = 2.0;"), out)
}

func TestParseBackendAndAdapterChoice(t *testing.T) {
	for in, want := range map[string]gpu.Backend{"": gpu.Auto, "Vulkan": gpu.Vulkan, "gles": gpu.GL, "metal": gpu.Metal, "dx12": gpu.DX12} {
		got, err := gpu.ParseBackend(in)
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	_, err := gpu.ParseBackend("cuda")
	require.ErrorContains(t, err, "unknown backend")
	gputest.Device(t)
	_, err = gpu.Open(gpu.Options{Adapter: "99"})
	require.ErrorContains(t, err, "out of range")
	_, err = gpu.Open(gpu.Options{Adapter: "no-such-gpu"})
	require.ErrorContains(t, err, "no adapter named")
}

func TestScratchBuffersLiveWithTheRecorder(t *testing.T) {
	dev := gputest.Device(t)
	rec := dev.NewRecorder()
	s, err := rec.Scratch("tmp", gpu.U32, 8)
	require.NoError(t, err)
	require.NoError(t, rec.Dispatch(fillKernel(t, dev, "fill", "64u"), [3]uint32{1, 1, 1}, []uint32{8, 1, 0, 0}, s))
	require.NoError(t, rec.Submit())
	data, err := dev.Read(s)
	require.NoError(t, err)
	require.Equal(t, uint32(8), data[0].Uint32()[7])
	rec.Release()
	_, err = dev.NewDispatch(fillKernel(t, dev, "fill", "64u"), [3]uint32{1, 1, 1}, []uint32{8, 1, 0, 0}, s)
	require.ErrorContains(t, err, "released")
}

func TestViewsPlaceTensorsInOneArena(t *testing.T) {
	dev := gputest.Device(t)
	align := int(dev.Limits.MinStorageBufferOffsetAlignment)
	arena, err := dev.NewBuffer("arena", gpu.U32, 4*align)
	require.NoError(t, err)
	defer arena.Release()
	a, err := arena.View("a", gpu.U32, 0, 5)
	require.NoError(t, err)
	b, err := arena.View("b", gpu.U32, uint64(align), 5)
	require.NoError(t, err)
	k := fillKernel(t, dev, "fill", "64u")
	require.NoError(t, dev.Run(k, [3]uint32{1, 1, 1}, []uint32{5, 100, 0, 0}, a))
	require.NoError(t, dev.Run(k, [3]uint32{1, 1, 1}, []uint32{5, 200, 0, 0}, b))
	require.NoError(t, b.Write([]uint32{9, 9, 9, 9, 9}))
	data, err := dev.Read(a, b)
	require.NoError(t, err)
	require.Equal(t, []uint32{100, 101, 102, 103, 104}, data[0].Uint32())
	require.Equal(t, []uint32{9, 9, 9, 9, 9}, data[1].Uint32())
	_, err = arena.View("bad", gpu.U32, 4, 1)
	require.ErrorContains(t, err, "alignment")
	_, err = arena.View("big", gpu.U32, uint64(align), 4*align)
	require.ErrorContains(t, err, "exceed")
	_, err = dev.NewDispatch(k, [3]uint32{1, 1, 1}, []uint32{1, 0, 0, 0}, a)
	require.NoError(t, err)
}

func TestProfileTimesEveryDispatch(t *testing.T) {
	dev := gputest.Device(t)
	const n = 1 << 16
	y := u32Buffer(t, dev, n)
	rec := dev.NewRecorder()
	defer rec.Release()
	require.NoError(t, rec.Dispatch(fillKernel(t, dev, "fill", "64u"), dev.Grid1D(n/64), []uint32{n, 1, 0, 0}, y))
	require.NoError(t, rec.Dispatch(fillKernel(t, dev, "addone", "64u"), [3]uint32{n / 64, 1, 1}, []uint32{n, 0, 0, 0}, y))
	times, source, err := rec.Profile()
	require.NoError(t, err)
	require.Len(t, times, 2)
	require.Equal(t, "fill", times[0].Name)
	require.Equal(t, "addone", times[1].Name)
	for _, k := range times {
		require.Greater(t, k.Seconds, 0.0, k.Name)
		require.Less(t, k.Seconds, 10.0, k.Name)
	}
	if dev.HasTimestamps() {
		t.Logf("profiled with %s: %+v", source, times)
	} else {
		require.Equal(t, "wall-clock", source)
	}
}

func TestReleasedBuffersAndViewsAreErrorsNotCrashes(t *testing.T) {
	dev := gputest.Device(t)
	arena, err := dev.NewBuffer("arena", gpu.F32, 128)
	require.NoError(t, err)
	v, err := arena.View("v", gpu.F32, 0, 4)
	require.NoError(t, err)
	_, err = v.View("vv", gpu.F32, 0, 64) // larger than its outer view
	require.ErrorContains(t, err, "exceed")
	arena.Release()
	require.ErrorContains(t, v.Write([]float32{1, 2, 3, 4}), "released")
	_, err = dev.Read(v)
	require.ErrorContains(t, err, "released")
	_, err = dev.Read(arena)
	require.ErrorContains(t, err, "released")
}

// Readback reuses staging buffers: every read must still see the data of
// its own moment.
func TestRepeatedReadsSeeFreshData(t *testing.T) {
	dev := gputest.Device(t)
	a, err := dev.NewBuffer("a", gpu.U32, 3)
	require.NoError(t, err)
	defer a.Release()
	b, err := dev.NewBuffer("b", gpu.U32, 3)
	require.NoError(t, err)
	defer b.Release()
	for i := uint32(0); i < 6; i++ {
		require.NoError(t, a.Write([]uint32{i, i + 1, i + 2}))
		require.NoError(t, b.Write([]uint32{10 * i, 0, 7}))
		data, err := dev.Read(a, b) // two staging buffers of one size at once
		require.NoError(t, err)
		require.Equal(t, []uint32{i, i + 1, i + 2}, data[0].Uint32())
		require.Equal(t, []uint32{10 * i, 0, 7}, data[1].Uint32())
	}
}

const mixSrc = `
struct Params { n: u32, iters: u32, _a: u32, _b: u32 }
@group(0) @binding(0) var<storage, read_write> y: array<u32>;  // (n) state, one xorshift chain per element
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(64)
fn mix(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x >= p.n) { return; }
  var x = y[g.x];
  for (var i = 0u; i < p.iters; i++) {
    x ^= x << 13u; x ^= x >> 17u; x ^= x << 5u;
  }
  y[g.x] = x;
}
`

// xorshift32 is mixSrc's step on the CPU.
func xorshift32(x uint32, iters int) uint32 {
	for i := 0; i < iters; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
	}
	return x
}

// Wait and Read must return only once a submission that outlasts
// wgpu-native's 5 s blocking wait has finished: a blocking poll that times
// out treats the work as done and frees its command buffers while the
// driver still executes them (gfx-rs/wgpu#4589; lavapipe then crashes or
// runs garbage). The workload is sized from a timed run so that it takes
// about 7 s on any adapter.
func TestWaitAndReadOutlastLongSubmissions(t *testing.T) {
	dev := gputest.Device(t)
	const n, iters = 1 << 16, 4000
	y := u32Buffer(t, dev, n)
	k, err := dev.Kernel(gpu.KernelSpec{Name: "mix", Source: mixSrc, Entry: "mix",
		Bindings: []gpu.Access{gpu.ReadWrite}, Params: true})
	require.NoError(t, err)
	seed := make([]uint32, n)
	for i := range seed {
		seed[i] = uint32(i)*2654435761 + 1
	}
	require.NoError(t, y.Write(seed))
	grid := [3]uint32{gpu.CeilDiv32(n, 64), 1, 1}
	params := []uint32{n, iters, 0, 0}

	one := dev.NewRecorder()
	defer one.Release()
	require.NoError(t, one.Dispatch(k, grid, params, y))
	require.NoError(t, one.Submit()) // compiles and warms up
	require.NoError(t, dev.Wait())
	t0 := time.Now()
	require.NoError(t, one.Submit())
	require.NoError(t, dev.Wait())
	per := time.Since(t0)
	reps := int(min(4000, max(2, math.Ceil(float64(7*time.Second)/float64(per)))))

	require.NoError(t, y.Write(seed))
	rec := dev.NewRecorder()
	defer rec.Release()
	for r := 0; r < reps; r++ {
		require.NoError(t, rec.Dispatch(k, grid, params, y))
	}
	t0 = time.Now()
	require.NoError(t, rec.Submit())
	require.NoError(t, dev.Wait())
	waited := time.Since(t0)
	// A second submission reuses what the first one's completion freed; had
	// Wait returned early, the driver would still be executing it.
	require.NoError(t, one.Submit())
	data, err := dev.Read(y)
	require.NoError(t, err)
	took := time.Since(t0)
	require.GreaterOrEqual(t, took, waited)
	got := data[0].Uint32()
	for _, i := range []int{0, 1, 4097, n / 2, n - 1} {
		require.Equal(t, xorshift32(seed[i], (reps+1)*iters), got[i],
			"element %d after %d dispatches (%.1f s; one took %v)", i, reps, took.Seconds(), per)
	}
	t.Logf("%d dispatches read back after %.1f s (one: %v)", reps, took.Seconds(), per)
}

// A copy step runs in recording order between kernels (fill y, copy a view
// of y into z at an offset, add one to y, then to z), replays, is profiled
// under its own name, and refuses what WebGPU cannot copy.
func TestRecorderCopiesBetweenDispatchesInOrder(t *testing.T) {
	dev := gputest.Device(t)
	const n = 1000
	y := u32Buffer(t, dev, n)
	z, err := dev.NewBuffer("z", gpu.U32, n+64)
	require.NoError(t, err)
	defer z.Release()
	src, err := y.View("y.tail", gpu.U32, 256, 500) // elements 64 … 563
	require.NoError(t, err)
	dst, err := z.View("z.mid", gpu.U32, 256, 500) // elements 64 … 563 of z
	require.NoError(t, err)
	zero := make([]uint32, n+64)
	require.NoError(t, z.Write(zero))
	fill, add := fillKernel(t, dev, "fill", "64u"), fillKernel(t, dev, "addone", "64u")
	rec := dev.NewRecorder()
	defer rec.Release()
	require.NoError(t, rec.Dispatch(fill, dev.Grid1D(gpu.CeilDiv(n, 64)), []uint32{n, 7, 0, 0}, y))
	require.NoError(t, rec.Copy(src, dst))
	require.NoError(t, rec.Dispatch(add, [3]uint32{gpu.CeilDiv32(n, 64), 1, 1}, []uint32{n, 0, 0, 0}, y))
	require.NoError(t, rec.Dispatch(add, [3]uint32{gpu.CeilDiv32(n+64, 64), 1, 1}, []uint32{n + 64, 0, 0, 0}, z))
	for replay := 0; replay < 2; replay++ {
		require.NoError(t, z.Write(zero))
		require.NoError(t, rec.Submit())
		data, err := dev.Read(y, z)
		require.NoError(t, err)
		gy, gz := data[0].Uint32(), data[1].Uint32()
		for i := range gy {
			require.Equal(t, uint32(7+i+1), gy[i], "y[%d]", i)
		}
		for i := range gz {
			want := uint32(1) // zero plus one
			if i >= 64 && i < 564 {
				want = uint32(7+i) + 1 // y before its add, plus z's
			}
			require.Equal(t, want, gz[i], "z[%d] after replay %d", i, replay)
		}
	}
	times, _, err := rec.Profile()
	require.NoError(t, err)
	require.Len(t, times, 4)
	require.Equal(t, gpu.CopyName, times[1].Name)

	small, err := z.View("z.small", gpu.U32, 0, 10)
	require.NoError(t, err)
	require.ErrorContains(t, rec.Copy(src, small), "2000 bytes into 40")
	other, err := y.View("y.head", gpu.U32, 0, 500)
	require.NoError(t, err)
	require.ErrorContains(t, rec.Copy(src, other), "one GPU buffer")
}

// CopyRegion copies byte ranges at offsets no storage binding could start at (4-byte aligned
// only), into and out of views, and refuses ranges that overrun either buffer or are not
// 4-byte aligned.
func TestRecorderCopiesRegionsAtUnalignedOffsets(t *testing.T) {
	dev := gputest.Device(t)
	const n = 300
	y := u32Buffer(t, dev, n)
	z, err := dev.NewBuffer("z", gpu.U32, n)
	require.NoError(t, err)
	defer z.Release()
	src := make([]uint32, n)
	for i := range src {
		src[i] = uint32(1000 + i)
	}
	require.NoError(t, y.Write(src))
	require.NoError(t, z.Write(make([]uint32, n)))
	zv, err := z.View("z.tail", gpu.U32, 256, n-64) // elements 64 …
	require.NoError(t, err)
	rec := dev.NewRecorder()
	defer rec.Release()
	// y[5:12] → z[64+3 : 64+10], and y[200:203] → z[1:4].
	require.NoError(t, rec.CopyRegion(y, 5*4, zv, 3*4, 7*4))
	require.NoError(t, rec.CopyRegion(y, 200*4, z, 1*4, 3*4))
	require.NoError(t, rec.Submit())
	data, err := dev.Read(z)
	require.NoError(t, err)
	got := data[0].Uint32()
	for i, v := range got {
		want := uint32(0)
		switch {
		case i >= 67 && i < 74:
			want = src[i-67+5]
		case i >= 1 && i < 4:
			want = src[i-1+200]
		}
		require.Equal(t, want, v, "z[%d]", i)
	}
	require.ErrorContains(t, rec.CopyRegion(y, 4*(n-2), z, 0, 12), "overrun")
	require.ErrorContains(t, rec.CopyRegion(y, 0, zv, 4*(n-64-1), 8), "overrun")
	require.ErrorContains(t, rec.CopyRegion(y, 2, z, 0, 8), "multiples of 4")
	require.ErrorContains(t, rec.CopyRegion(y, 0, z, 0, 6), "multiples of 4")
	yv, err := y.View("y.tail", gpu.U32, 256, 10)
	require.NoError(t, err)
	require.ErrorContains(t, rec.CopyRegion(y, 0, yv, 0, 8), "one GPU buffer")
}

// Recordings that take the same Pools share each pool's buffer; a larger request gets a new
// one, which later requests share; releasing a recording leaves the pools' buffers, and
// Pools.Release frees them.
func TestRecordingsSharePoolsLentToThem(t *testing.T) {
	dev := gputest.Device(t)
	var pools gpu.Pools
	a, b := dev.NewRecorder(), dev.NewRecorder()
	a.UsePools(&pools)
	b.UsePools(&pools)
	va, err := a.Shared("p", "va", gpu.F32, 64)
	require.NoError(t, err)
	vb, err := b.Shared("p", "vb", gpu.F32, 32)
	require.NoError(t, err)
	require.True(t, va.SameMemory(vb), "a smaller request shares the pool's buffer")
	big, err := b.Shared("p", "big", gpu.F32, 128)
	require.NoError(t, err)
	require.False(t, big.SameMemory(va), "a larger request gets a buffer of its own")
	vc, err := a.Shared("p", "vc", gpu.F32, 100)
	require.NoError(t, err)
	require.True(t, vc.SameMemory(big), "later requests share the newest buffer")
	a.Release()
	b.Release()
	require.NoError(t, va.Write(make([]float32, 64)), "the recordings' release leaves the pools")
	require.NoError(t, big.Write(make([]float32, 128)))
	pools.Release()
	require.ErrorContains(t, va.Write(make([]float32, 64)), "released")
	require.ErrorContains(t, big.Write(make([]float32, 128)), "released")

	// A recording with pools of its own frees them with itself.
	own := dev.NewRecorder()
	v, err := own.Shared("p", "v", gpu.F32, 16)
	require.NoError(t, err)
	own.Release()
	require.ErrorContains(t, v.Write(make([]float32, 16)), "released")
}

// Kernels asked for inside CompileInBackground compile on other threads while the dispatches
// that use them are recorded; Recorder.Ready and a submission wait for them, the results are
// those of kernels compiled in the foreground, and the cache holds one kernel per
// specialisation either way. A kernel whose shader does not compile is an error naming it from
// Ready and from Submit, and leaves the cache, so asking for it again reports the error.
func TestKernelsCompileInTheBackground(t *testing.T) {
	dev := gputest.Device(t)
	const n = 300
	y := u32Buffer(t, dev, n)
	rec := dev.NewRecorder()
	defer rec.Release()
	wgs := []string{"8u", "24u", "40u", "56u"} // specialisations no other test compiles
	var ks []*gpu.Kernel
	err := dev.CompileInBackground(func() error {
		for i, wg := range wgs {
			k := fillKernel(t, dev, "fill", wg)
			ks = append(ks, k)
			if err := rec.Dispatch(k, [3]uint32{n, 1, 1}, []uint32{n, uint32(100 * (i + 1)), 0, 0}, y); err != nil {
				return err
			}
		}
		return nil
	})
	require.NoError(t, err)
	require.NoError(t, rec.Ready())
	for i, k := range ks {
		require.NoError(t, k.Wait())
		require.Same(t, k, fillKernel(t, dev, "fill", wgs[i]), "one kernel per specialisation")
	}
	require.NoError(t, rec.Submit())
	data, err := dev.Read(y)
	require.NoError(t, err)
	for i, v := range data[0].Uint32() {
		require.Equal(t, uint32(400+i), v, "element %d: the last fill's value", i)
	}

	spec := gpu.KernelSpec{Name: "broken_in_background", Source: fillSrc + "\nfn broken( {", Entry: "fill",
		Bindings: []gpu.Access{gpu.ReadWrite}, Params: true}
	bad := dev.NewRecorder()
	defer bad.Release()
	err = dev.CompileInBackground(func() error {
		k, err := dev.Kernel(spec)
		if err != nil {
			return err
		}
		return bad.Dispatch(k, [3]uint32{1, 1, 1}, []uint32{1, 0, 0, 0}, y)
	})
	require.NoError(t, err, "the layouts are made at once; the shader compiles later")
	require.ErrorContains(t, bad.Ready(), "broken_in_background")
	require.ErrorContains(t, bad.Submit(), "broken_in_background")
	_, err = dev.Kernel(spec)
	require.ErrorContains(t, err, "broken_in_background")
}

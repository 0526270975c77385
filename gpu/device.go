package gpu

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

// Options choose an adapter. The zero value takes the first adapter of any
// backend.
type Options struct {
	Backend Backend // vulkan, metal, dx12, gl or auto
	Adapter string  // index ("1") or a substring of the adapter name
}

// Device is an open WebGPU device with the adapter's own limits, a queue,
// and a pipeline cache. A Device is safe for use by one goroutine at a time
// for recording; its caches are guarded.
type Device struct {
	Info   AdapterInfo
	Limits Limits

	adapter *wgpu.Adapter
	dev     *wgpu.Device
	queue   *wgpu.Queue

	f16        bool
	timestamps bool

	native *nativeState

	mu        sync.Mutex
	pipelines map[string]*Kernel
	// background counts the CompileInBackground calls running; compiling,
	// the kernels compiling in the background.
	background atomic.Int32
	compiling  sync.WaitGroup
	failed     []*Kernel                 // kernels that failed to compile in the background, released on Close
	staging    map[uint64][]*wgpu.Buffer // readback buffers by size, for reuse
}

// Open opens a device on the chosen adapter, requesting the adapter's own
// limits (WebGPU's defaults are far lower: 128 MiB bindings need asking for)
// and the optional features this runtime can use.
func Open(opt Options) (*Device, error) {
	if opt.Backend == "" {
		opt.Backend = Auto
	}
	a, info, err := pick(opt.Backend, opt.Adapter)
	if err != nil {
		return nil, err
	}
	return openAdapter(a, info)
}

// openAdapter opens a device on a picked adapter, which it owns from then on.
func openAdapter(a *wgpu.Adapter, info AdapterInfo) (*Device, error) {
	var want []wgpu.FeatureName
	d := &Device{Info: info, Limits: info.Limits, adapter: a, pipelines: map[string]*Kernel{}, staging: map[uint64][]*wgpu.Buffer{}}
	if a.HasFeature(wgpu.FeatureNameShaderF16) {
		want = append(want, wgpu.FeatureNameShaderF16)
		d.f16 = true
	}
	if a.HasFeature(wgpu.FeatureNameTimestampQuery) {
		want = append(want, wgpu.FeatureNameTimestampQuery)
		d.timestamps = true
	}
	dev, native, err := requestDevice(a, want)
	if err != nil {
		a.Release()
		return nil, fmt.Errorf("open %s: %w", info.Label(), err)
	}
	d.native = native
	d.dev = dev
	d.queue = dev.GetQueue()
	return d, nil
}

// HasF16 reports whether kernels may use f16 storage (shader-f16).
func (d *Device) HasF16() bool { return d.f16 }

// HasTimestamps reports whether GPU timestamp queries are available.
func (d *Device) HasTimestamps() bool { return d.timestamps }

// Close releases the device and everything cached on it.
func (d *Device) Close() {
	if d == nil || d.dev == nil {
		return
	}
	d.compiling.Wait()
	d.mu.Lock()
	for _, k := range d.pipelines {
		k.release()
	}
	for _, k := range d.failed {
		k.release()
	}
	d.failed = nil
	for _, free := range d.staging {
		for _, s := range free {
			s.Release()
		}
	}
	d.pipelines, d.staging = nil, nil
	d.mu.Unlock()
	d.queue.Release()
	d.dev.Release()
	d.adapter.Release()
	d.dev = nil
}

// Wait blocks until all submitted work has finished, or returns the
// device's error (a lost device, say).
func (d *Device) Wait() error {
	return d.pollUntil(nil)
}

// pollUntil polls the device until done reports true (or, with a nil done,
// until the queue is empty), sleeping between polls from 20 µs up to 1 ms.
// It never makes a blocking poll: wgpu-native's blocking poll gives up after
// 5 s and then treats the submissions still running as finished, firing
// their map callbacks on data not yet written and freeing their command
// buffers while the driver executes them (gfx-rs/wgpu#4589, fixed only in
// wgpu 25). A training step on a CPU adapter can run longer than that.
func (d *Device) pollUntil(done func() bool) error {
	pause := 20 * time.Microsecond
	for {
		empty := d.dev.Poll(false, nil)
		if err := d.err(); err != nil {
			return err
		}
		if (done == nil && empty) || (done != nil && done()) {
			return nil
		}
		time.Sleep(pause)
		pause = min(2*pause, time.Millisecond)
	}
}

// err reports the first GPU error raised outside an error scope (at submit
// time, for example) since the last call, or the device's loss.
func (d *Device) err() error {
	return d.native.takeError()
}

// ErrUnsupported marks a request the adapter cannot serve (a missing feature
// or a limit exceeded). Callers may test for it with errors.Is and fall back.
var ErrUnsupported = errors.New("unsupported on this adapter")

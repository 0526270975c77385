package gpu

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

// KernelTime is the measured time of one recorded dispatch.
type KernelTime struct {
	Name    string
	Seconds float64
}

// Profile times every dispatch of a recording separately. With the
// timestamp-query feature each dispatch runs in its own compute pass
// between two GPU timestamps, all in one submission; without it (the GL
// adapter) each dispatch is submitted alone and timed by the wall clock,
// which includes submission overhead. The source returned says which.
// Timestamps are taken to be nanoseconds, as WebGPU specifies; if their
// total disagrees with the wall clock by more than 4× (a driver with
// another tick), the wall-clock times are returned instead.
func (r *Recorder) Profile() ([]KernelTime, string, error) {
	if err := r.Submit(); err != nil { // warm up: first-use costs out of the way
		return nil, "", err
	}
	if err := r.dev.Wait(); err != nil {
		return nil, "", err
	}
	if r.dev.timestamps {
		start := time.Now()
		ts, err := r.profileTimestamps()
		wall := time.Since(start).Seconds()
		if err == nil {
			total := 0.0
			for _, k := range ts {
				total += k.Seconds
			}
			if total > 0 && total < 4*wall && total > wall/4/float64(len(ts)+1) {
				return ts, "timestamp", nil
			}
		}
	}
	ts, err := r.profileWallClock()
	return ts, "wall-clock", err
}

func (r *Recorder) profileWallClock() ([]KernelTime, error) {
	out := make([]KernelTime, len(r.steps))
	for i, p := range r.steps {
		start := time.Now()
		if err := r.dev.submit([]*Dispatch{p}); err != nil {
			return nil, err
		}
		if err := r.dev.Wait(); err != nil {
			return nil, err
		}
		out[i] = KernelTime{Name: p.Name(), Seconds: time.Since(start).Seconds()}
	}
	return out, nil
}

func (r *Recorder) profileTimestamps() ([]KernelTime, error) {
	d := r.dev
	n := uint32(2 * len(r.steps))
	if n == 0 {
		return nil, nil
	}
	qs, err := d.dev.CreateQuerySet(&wgpu.QuerySetDescriptor{Label: "profile", Type: wgpu.QueryTypeTimestamp, Count: n})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	defer qs.Release()
	size := uint64(n) * 8
	resolve, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{Label: "profile.resolve", Size: size,
		Usage: wgpu.BufferUsageQueryResolve | wgpu.BufferUsageCopySrc})
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	defer resolve.Release()
	staging := &Buffer{Name: "profile.timestamps", DType: U32, Shape: []int{int(n) * 2}, dev: d, size: size}
	if staging.buf, err = d.dev.CreateBuffer(&wgpu.BufferDescriptor{Label: "profile.copy", Size: size,
		Usage: wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst}); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	defer staging.Release()
	enc, err := d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	defer enc.Release()
	for i, p := range r.steps {
		if err := enc.WriteTimestamp(qs, uint32(2*i)); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
		if c := p.copy; c != nil {
			if err := c.encode(enc); err != nil {
				return nil, fmt.Errorf("profile: %w", err)
			}
		} else {
			pass := enc.BeginComputePass(nil)
			if p.Grid[0] > 0 && p.Grid[1] > 0 && p.Grid[2] > 0 {
				pass.SetPipeline(p.Kernel.pipeline)
				pass.SetBindGroup(0, p.group, nil)
				pass.DispatchWorkgroups(p.Grid[0], p.Grid[1], p.Grid[2])
			}
			err := pass.End()
			pass.Release()
			if err != nil {
				return nil, fmt.Errorf("profile %s: %w", p.Name(), err)
			}
		}
		if err := enc.WriteTimestamp(qs, uint32(2*i+1)); err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	if err := enc.ResolveQuerySet(qs, 0, n, resolve, 0); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	if err := enc.CopyBufferToBuffer(resolve, 0, staging.buf, 0, size); err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	d.queue.Submit(cmd)
	cmd.Release()
	data, err := d.Read(staging)
	if err != nil {
		return nil, err
	}
	raw := data[0].raw
	out := make([]KernelTime, len(r.steps))
	for i, p := range r.steps {
		t0 := binary.LittleEndian.Uint64(raw[16*i:])
		t1 := binary.LittleEndian.Uint64(raw[16*i+8:])
		sec := 0.0
		if t1 > t0 {
			sec = float64(t1-t0) * 1e-9
		}
		out[i] = KernelTime{Name: p.Name(), Seconds: sec}
	}
	return out, nil
}

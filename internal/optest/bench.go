package optest

import (
	"errors"
	"syscall"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// BenchOp records op once on uploaded inputs and times replaying the
// submission b.N times. It reports ms per op and the process's CPU ms per
// op (lavapipe's worker threads do the GPU work, and on a shared machine
// CPU time is steadier than wall time), and returns seconds per op for
// the caller to turn into GB/s or GFLOP/s. A variant the adapter cannot run
// (gpu.ErrUnsupported) skips the benchmark.
func BenchOp(b *testing.B, dev *gpu.Device, op graph.Op, in ...*graph.Host) float64 {
	b.Helper()
	p, err := graph.Prepare(dev, op, 1, in...)
	if err != nil {
		if errors.Is(err, gpu.ErrUnsupported) {
			b.Skip(err)
		}
		b.Fatal(err)
	}
	defer p.Release()
	run := func() {
		if err := p.Rec.Submit(); err != nil {
			b.Fatal(err)
		}
		if err := dev.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	run() // compile and warm up
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		run()
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms")
	b.ReportMetric((cpuSeconds()-cpu0)*1e3/float64(b.N), "cpu-ms")
	return sec
}

// cpuSeconds is the process's user + system CPU time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

package bench_test

import (
	"fmt"
	"testing"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/shaders"
)

// BenchmarkLaneLoads measures how fast invocations load data at per-lane
// addresses from a storage buffer and from a uniform buffer, in scalars per
// second: on a CPU driver this, not the FMA rate, bounds the matmuls.
//
//	go test ./bench/ -run '^$' -bench LaneLoads
func BenchmarkLaneLoads(b *testing.B) {
	dev := gputest.Device(b)
	const groups, loads = 256, 2000
	src, err := dev.NewBuffer("src", gpu.F32, 4*4096)
	if err != nil {
		b.Fatal(err)
	}
	defer src.Release()
	dst, err := dev.NewBuffer("dst", gpu.F32, 4*64*groups)
	if err != nil {
		b.Fatal(err)
	}
	defer dst.Release()
	for _, c := range []struct {
		entry  string
		access gpu.Access
	}{{"load_storage", gpu.Read}, {"load_uniform", gpu.Uniform}} {
		b.Run(c.entry, func(b *testing.B) {
			k, err := dev.Kernel(gpu.KernelSpec{Name: c.entry, Source: shaders.MustSource("peak"), Entry: c.entry,
				Bindings: []gpu.Access{c.access, gpu.ReadWrite}, Params: true, Constants: map[string]string{"LOADS": fmt.Sprintf("%du", loads)}})
			if err != nil {
				b.Fatal(err)
			}
			rec := dev.NewRecorder()
			defer rec.Release()
			if err := rec.Dispatch(k, [3]uint32{groups, 1, 1}, []uint32{0, 0, 0, 0}, src, dst); err != nil {
				b.Fatal(err)
			}
			run := func() {
				if err := rec.Submit(); err != nil {
					b.Fatal(err)
				}
				if err := dev.Wait(); err != nil {
					b.Fatal(err)
				}
			}
			run()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				run()
			}
			scalars := float64(groups*64) * loads * 4 // each vec4 load is 4 scalars
			b.ReportMetric(scalars*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gscalars/s")
		})
	}
}

package gpu_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/gputest"
)

// What one load costs a kernel on this adapter: each invocation runs 2048
// iterations of 16 independent multiply-add chains, each fed by one load of
// the named kind (or none), and the benchmark reports nanoseconds per lane
// and multiply-add. "uniform" indexes the same element in every invocation
// (constant: a compile-time constant); "lane" a different one per
// invocation. go test ./gpu -run '^$' -bench LoadCosts -benchtime 3x
func BenchmarkLoadCosts(b *testing.B) {
	dev := gputest.Device(b)
	kinds := []struct{ name, expr string }{
		{"none", "f32(it)"},
		{"uniform_buffer/constant", "u[j * 5u].y"},
		{"uniform_buffer/uniform", "u[(it * 16u + j) & 1023u].y"},
		{"uniform_buffer/lane", "u[(it * 16u + j + lid.x * 17u) & 1023u].y"},
		{"storage/uniform", "s[(it * 16u + j) & 4095u]"},
		{"storage/lane", "s[(it * 16u + j + lid.x * 17u) & 4095u]"},
		{"workgroup/lane", "sh[(it * 16u + j + lid.x * 17u) & 1023u]"},
	}
	const iters, groups = 2048, 256
	u, _ := dev.NewBuffer("u", gpu.F32, 4096)
	s, _ := dev.NewBuffer("s", gpu.F32, 4096)
	o, _ := dev.NewBuffer("o", gpu.F32, groups*64)
	defer u.Release()
	defer s.Release()
	defer o.Release()
	for _, k := range kinds {
		b.Run(k.name, func(b *testing.B) {
			body := ""
			for j := 0; j < 16; j++ {
				body += fmt.Sprintf("    { let j = %du; acc[j] = fma(%s, acc[j], 1e-7); }\n", j, k.expr)
			}
			src := `@group(0) @binding(0) var<uniform> u: array<vec4<f32>, 1024>;
@group(0) @binding(1) var<storage, read> s: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
var<workgroup> sh: array<f32, 1024>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  var acc: array<f32, 16>;
  for (var it = 0u; it < ` + fmt.Sprint(iters) + `u; it++) {
` + body + `  }
  var t = 0.0;
  for (var j = 0u; j < 16u; j++) { t += acc[j]; }
  o[gid.x] = t;
}`
			kern, err := dev.Kernel(gpu.KernelSpec{Name: "load_cost_" + k.name, Source: src, Entry: "main",
				Bindings: []gpu.Access{gpu.Uniform, gpu.Read, gpu.ReadWrite}})
			if err != nil {
				b.Fatal(err)
			}
			rec := dev.NewRecorder()
			defer rec.Release()
			if err := rec.Dispatch(kern, [3]uint32{groups, 1, 1}, nil, u, s, o); err != nil {
				b.Fatal(err)
			}
			per := submitEach(b, dev, rec) / (groups * 64 * iters * 16)
			b.ReportMetric(per*1e9, "ns/lane-op")
		})
	}
}

// What a dispatch costs of its own: 500 dispatches of a kernel that touches
// 64 floats, in one submission. go test ./gpu -run '^$' -bench DispatchCost -benchtime 5x
func BenchmarkDispatchCost(b *testing.B) {
	dev := gputest.Device(b)
	src := `@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x < arrayLength(&a)) { a[g.x] = a[g.x] * 0.5 + 1.0; } }`
	kern, err := dev.Kernel(gpu.KernelSpec{Name: "dispatch_cost", Source: src, Entry: "main", Bindings: []gpu.Access{gpu.ReadWrite}})
	if err != nil {
		b.Fatal(err)
	}
	a, _ := dev.NewBuffer("a", gpu.F32, 64)
	defer a.Release()
	rec := dev.NewRecorder()
	defer rec.Release()
	const n = 500
	for i := 0; i < n; i++ {
		if err := rec.Dispatch(kern, [3]uint32{1, 1, 1}, nil, a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(submitEach(b, dev, rec)/n*1e6, "µs/dispatch")
}

// submitEach submits rec and waits for it b.N times and returns the seconds
// one submission took.
func submitEach(b *testing.B, dev *gpu.Device, rec *gpu.Recorder) float64 {
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if err := rec.Submit(); err != nil {
			b.Fatal(err)
		}
		if err := dev.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start).Seconds() / float64(b.N)
}

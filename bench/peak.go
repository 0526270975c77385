package bench

import (
	"fmt"
	"math"
	"os"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/shaders"
)

// Peak is the adapter's measured roofline.
type Peak struct {
	FMAGflops float64 `json:"fma_gflops"`
	CopyGBps  float64 `json:"copy_gbps"`
}

// MeasurePeak times the FMA and copy microkernels in shaders/peak.wgsl.
// FMA: the fastest of several chain counts, enough invocations to fill
// every core. Copy: a 64 MiB vec4 copy, counting bytes read plus written.
func MeasurePeak(dev *gpu.Device, minTime time.Duration) (Peak, error) {
	src := shaders.MustSource("peak")
	const wg = 256
	const iters = 4096
	nInv := 64 * 1024
	n4 := 4 << 20 // 4 Mi vec4 = 64 MiB
	a, err := dev.NewBuffer("peak.src", gpu.F32, 4*n4)
	if err != nil {
		return Peak{}, err
	}
	defer a.Release()
	b, err := dev.NewBuffer("peak.dst", gpu.F32, 4*n4)
	if err != nil {
		return Peak{}, err
	}
	defer b.Release()
	var p Peak
	for _, ch := range []int{1, 2, 4, 8} {
		consts := map[string]string{"WG": "256u", "ITERS": "4096u", "CH": fmt.Sprintf("%du", ch)}
		fk, err := dev.Kernel(gpu.KernelSpec{Name: fmt.Sprintf("fma_peak_ch%d", ch), Source: src, Entry: "fma_peak",
			Bindings: []gpu.Access{gpu.Read, gpu.ReadWrite}, Params: true, Constants: consts})
		if err != nil {
			return Peak{}, err
		}
		rec := dev.NewRecorder()
		if err := rec.Dispatch(fk, dev.Grid1D(nInv/wg), []uint32{uint32(nInv), math.Float32bits(0.5), 0, 0}, a, b); err != nil {
			rec.Release()
			return Peak{}, err
		}
		sec, err := timeRecorder(dev, rec, minTime)
		rec.Release()
		if err != nil {
			return Peak{}, err
		}
		flops := float64(nInv) * iters * 8 * float64(ch)
		p.FMAGflops = math.Max(p.FMAGflops, flops/sec/1e9)
		if debugPeak {
			fmt.Printf("fma CH=%d: %.1f GFLOP/s\n", ch, flops/sec/1e9)
		}
	}

	ck, err := dev.Kernel(gpu.KernelSpec{Name: "copy4", Source: src, Entry: "copy4",
		Bindings: []gpu.Access{gpu.Read, gpu.ReadWrite}, Params: true, Constants: map[string]string{"WG": "256u"}})
	if err != nil {
		return Peak{}, err
	}
	crec := dev.NewRecorder()
	defer crec.Release()
	if err := crec.Dispatch(ck, dev.Grid1D(gpu.CeilDiv(n4, wg)), []uint32{uint32(n4), 0, 0, 0}, a, b); err != nil {
		return Peak{}, err
	}
	sec, err := timeRecorder(dev, crec, minTime)
	if err != nil {
		return Peak{}, err
	}
	p.CopyGBps = float64(n4*16*2) / sec / 1e9
	return p, nil
}

var debugPeak = os.Getenv("MOEGPU_DEBUG_PEAK") != ""

package bench

import (
	"fmt"
	"math"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// timeRecorder runs rec once to warm up (pipelines, page faults), then
// submits it repeatedly, at least three times and for at least minTime,
// and returns the fastest submission in seconds: the best of several runs
// is the least disturbed by other work on the machine.
func timeRecorder(dev *gpu.Device, rec *gpu.Recorder, minTime time.Duration) (float64, error) {
	if err := rec.Submit(); err != nil {
		return 0, err
	}
	if err := dev.Wait(); err != nil {
		return 0, err
	}
	best := math.Inf(1)
	start := time.Now()
	for n := 1; ; n++ {
		t0 := time.Now()
		if err := rec.Submit(); err != nil {
			return 0, err
		}
		if err := dev.Wait(); err != nil {
			return 0, err
		}
		best = math.Min(best, time.Since(t0).Seconds())
		el := time.Since(start)
		if n >= 3 && el >= minTime {
			return best, nil
		}
	}
}

// timeOp records `reps` back-to-back copies of an op on random-free zeroed
// inputs of the given specs (timing does not depend on values, except for
// ops that skip work on zeros, which take explicit inputs) and returns
// seconds per op.
func timeOp(dev *gpu.Device, op graph.Op, in []*graph.Host, reps int, minTime time.Duration) (float64, error) {
	specs := make([]graph.Spec, len(in))
	for i, h := range in {
		specs[i] = h.Spec
	}
	outs, err := op.Outputs(specs)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op.Name(), err)
	}
	var bufs []*gpu.Buffer
	defer func() {
		for _, b := range bufs {
			b.Release()
		}
	}()
	gpuIn := in
	if a, ok := op.(graph.Accumulator); ok && a.Accumulates() {
		gpuIn = in[:len(in)-1]
	}
	inB := make([]*gpu.Buffer, len(gpuIn))
	for i, h := range gpuIn {
		b, err := graph.Upload(dev, fmt.Sprintf("bench.in%d", i), h)
		if err != nil {
			return 0, err
		}
		inB[i], bufs = b, append(bufs, b)
	}
	outB := make([]*gpu.Buffer, len(outs))
	for i, s := range outs {
		b, err := dev.NewBuffer(fmt.Sprintf("bench.out%d", i), s.DType, s.Shape...)
		if err != nil {
			return 0, err
		}
		outB[i], bufs = b, append(bufs, b)
	}
	rec := dev.NewRecorder()
	defer rec.Release()
	for r := 0; r < reps; r++ {
		if err := op.Encode(dev, rec, inB, outB); err != nil {
			return 0, fmt.Errorf("%s: %w", op.Name(), err)
		}
	}
	s, err := timeRecorder(dev, rec, minTime)
	return s / float64(reps), err
}

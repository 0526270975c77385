package bench

import (
	"fmt"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
)

// timeRecorder runs rec once to warm up (pipelines, page faults), then
// submits it repeatedly until at least minTime has passed, and returns the
// mean seconds per submission.
func timeRecorder(dev *gpu.Device, rec *gpu.Recorder, minTime time.Duration) (float64, error) {
	if err := rec.Submit(); err != nil {
		return 0, err
	}
	if err := dev.Wait(); err != nil {
		return 0, err
	}
	n := 0
	start := time.Now()
	for {
		if err := rec.Submit(); err != nil {
			return 0, err
		}
		if err := dev.Wait(); err != nil {
			return 0, err
		}
		n++
		if el := time.Since(start); el >= minTime || (n >= 2 && el*time.Duration(n+1)/time.Duration(n) > 4*minTime) {
			return el.Seconds() / float64(n), nil
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

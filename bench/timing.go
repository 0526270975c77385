package bench

import (
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

// timeOp records `reps` back-to-back copies of an op (amortising the
// submission for small ops) and returns seconds per op.
func timeOp(dev *gpu.Device, op graph.Op, in []*graph.Host, reps int, minTime time.Duration) (float64, error) {
	p, err := graph.Prepare(dev, op, reps, in...)
	if err != nil {
		return 0, err
	}
	defer p.Release()
	s, err := timeRecorder(dev, p.Rec, minTime)
	return s / float64(max(reps, 1)), err
}

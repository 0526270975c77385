package ablate

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/moegpu/moegpu/runtime/metrics"
)

// RunEstimate is one run's measured cost, from a short trial.
type RunEstimate struct {
	Run string
	// StepMs is the median step time of the trial's second half; FixedSeconds what the trial
	// spent outside the steps (building, compiling, saving); EvalSeconds its scoring time.
	StepMs, FixedSeconds, EvalSeconds float64
	// Seeds and Steps are the full run's; Minutes its estimate over all seeds.
	Seeds, Steps int
	Minutes      float64
}

// EstimateSpec trains each run's first seed for trialSteps steps in dir (one subdirectory
// per run, replaced if present), scores it as the real run would be scored, and estimates
// every run as its seeds × (fixed cost + steps × step time + scoring). It returns the
// per-run figures and the Estimate to put in the spec.
func EstimateSpec(s *Spec, dir string, trialSteps int, h Hooks, log io.Writer) ([]RunEstimate, *Estimate, error) {
	if log == nil {
		log = io.Discard
	}
	if h.Train == nil || h.Score == nil {
		return nil, nil, fmt.Errorf("ablate: estimate: needs both a Train and a Score hook")
	}
	if trialSteps < 2 {
		return nil, nil, fmt.Errorf("ablate: estimate: %d trial steps; want at least 2", trialSteps)
	}
	plan, jobs, err := s.Resolve(dir)
	if err != nil {
		return nil, nil, err
	}
	est := &Estimate{StepMs: map[string]float64{}, EvalSeconds: map[string]float64{}}
	var out []RunEstimate
	done := map[string]bool{}
	for _, j := range jobs {
		if done[j.Run] {
			continue
		}
		done[j.Run] = true
		var rp RunPlan
		for _, p := range plan.Runs {
			if p.Name == j.Run {
				rp = p
			}
		}
		trial := j
		trial.Steps = trialSteps
		trial.Dir = filepath.Join(dir, "estimate", j.Run)
		if err := os.RemoveAll(trial.Dir); err != nil {
			return nil, nil, fmt.Errorf("ablate: estimate: %w", err)
		}
		if err := claim(trial); err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(log, "estimate: %s: %d steps of %s\n", j.Run, trialSteps, j.Task)
		start := time.Now()
		if err := h.Train(trial); err != nil {
			return nil, nil, fmt.Errorf("ablate: estimate: run %s: %w", j.Run, err)
		}
		trainWall := time.Since(start).Seconds()
		r := &Result{Run: j.Run, Seed: j.Seed, Task: j.Task, Steps: trialSteps}
		if r.Train, err = Summarize(filepath.Join(trial.Dir, metrics.FileName)); err != nil {
			return nil, nil, err
		}
		evalStart := time.Now()
		if err := h.Score(trial, r); err != nil {
			return nil, nil, fmt.Errorf("ablate: estimate: run %s: scoring: %w", j.Run, err)
		}
		e := RunEstimate{Run: j.Run, StepMs: r.Train.StepMs, EvalSeconds: time.Since(evalStart).Seconds(),
			Seeds: len(rp.Seeds), Steps: rp.Steps}
		e.FixedSeconds = max(0, trainWall-r.Train.TrainSeconds)
		perSeed := e.FixedSeconds + float64(e.Steps)*e.StepMs/1000 + e.EvalSeconds
		e.Minutes = perSeed * float64(e.Seeds) / 60
		est.StepMs[j.Run] = round1(e.StepMs)
		est.EvalSeconds[j.Run] = round1(e.EvalSeconds)
		est.Minutes += e.Minutes
		out = append(out, e)
		fmt.Fprintf(log, "estimate: %s: %.1f ms/step, %.0f s fixed, %.1f s scoring: %.1f min for %d seeds × %d steps\n",
			j.Run, e.StepMs, e.FixedSeconds, e.EvalSeconds, e.Minutes, e.Seeds, e.Steps)
	}
	est.Minutes = float64(int(est.Minutes + 0.999))
	est.How = fmt.Sprintf("moegpu ablate --estimate: %d trial steps of each run's first seed, each run taken as seeds × (fixed cost + steps × median step time + scoring)", trialSteps)
	return out, est, nil
}

func round1(x float64) float64 { return float64(int(x*10+0.5)) / 10 }

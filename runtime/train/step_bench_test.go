package train_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/bench"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/config"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrdata"
	"github.com/moegpu/moegpu/runtime/tasks"
	"github.com/moegpu/moegpu/runtime/train"
)

// BenchmarkTrainStep times whole training steps of every shipped config on
// the test adapter and records the dispatches one step submits
// (dispatches/step), the step time (ms/step, the same as ns/op), tokens/s
// and model GFLOP/s (bench.TrainFlops over the step time), with the flat
// optimizer (group) and the per-parameter one it replaced (per_param), so a
// regression in either shows up:
//
//	GODEBUG=asyncpreemptoff=1 go test ./runtime/train -run '^$' -bench TrainStep -benchtime 10x -v | tee new.txt
//	moegpu bench compare old.txt new.txt
//
// (bench compare and bench report read this output as a model report, one
// row per config/optimizer; -v prints the adapter line they name it by.)
// tiny configs train on reverse, small-dense on add (as the README's runs), OCR configs on ocr.
func BenchmarkTrainStep(b *testing.B) {
	dev := gputest.Device(b)
	b.Logf("adapter: %s", dev.Info.Label())
	for _, name := range assets.Configs() {
		name = strings.TrimSuffix(name, ".json")
		raw, ok := assets.Config(name)
		require.True(b, ok, name)
		cfg, err := config.Parse(raw)
		require.NoError(b, err)
		taskName := "reverse"
		if strings.HasPrefix(name, "small") {
			taskName = "add"
		}
		var task train.Source
		if cfg.HasImage() {
			task, err = ocr.NewTask(cfg, ocrdata.Train)
		} else {
			task, err = tasks.ByName(taskName)
		}
		require.NoError(b, err)
		for _, o := range []struct {
			name string
			opt  train.Options
		}{{"group", train.Options{}}, {"per_param", train.Options{PerParameterOptimizer: true}}} {
			b.Run(name+"/"+o.name, func(b *testing.B) {
				tr, err := train.NewWith(cfg, task, train.GPU, dev, 1000, o.opt)
				require.NoError(b, err)
				defer tr.Close()
				require.NoError(b, tr.Init())
				_, err = tr.StepOnce() // first-use costs (pipelines, staging) out of the way
				require.NoError(b, err)
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := tr.StepOnce(); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(tr.Exec.(*graph.GPU).Dispatches()), "dispatches/step")
				b.ReportMetric(float64(cfg.Training.BatchSize*cfg.Training.SeqLen)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
				b.ReportMetric(b.Elapsed().Seconds()*1e3/float64(b.N), "ms/step")
				flops := bench.TrainFlops(cfg, cfg.Training.BatchSize, cfg.Training.SeqLen).Total
				b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "model-GFLOP/s")
			})
		}
	}
}

package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/train"
)

// A recorded training step, submitted again and again, keeps the process's memory flat: a
// kernel the driver keeps memory for on every dispatch (lavapipe did for two of ours, ~3 MB
// a step of ocr-small: gigabytes over an OCR training) shows here whichever op it is in.
// The configs cover dense and MoE layers, the copy expert, MTP heads, attention sinks,
// sliding windows and the OCR patch embedding; 30 steps grow by well under 1 MB when
// nothing leaks.
func TestTrainingStepsKeepMemoryFlat(t *testing.T) {
	dev := gputest.Device(t)
	for _, c := range []struct{ config, task string }{{"tiny-moe-mtp", "sort"}, {"ocr-small", "ocr"}} {
		t.Run(c.config, func(t *testing.T) {
			cfg, err := loadConfig(c.config)
			require.NoError(t, err)
			src, err := trainSource(c.task, cfg)
			require.NoError(t, err)
			tr, err := train.New(cfg, src, "gpu", dev, 100)
			require.NoError(t, err)
			defer tr.Close()
			_, err = tr.StepOnce() // compile
			require.NoError(t, err)
			grew := gputest.MemoryGrowth(t, 2, 30, func() {
				require.NoError(t, tr.Exec.Run())
				require.NoError(t, dev.Wait())
			})
			t.Logf("resident memory grew %.2f MB over 30 steps", grew)
			require.Less(t, grew, 4.0, "a kernel of the step keeps memory per dispatch (%.2f MB a step)", grew/30)
		})
	}
}

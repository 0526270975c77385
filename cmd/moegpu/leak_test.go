package main

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/train"
)

// residentBytes is the process's resident memory (VmRSS in /proc/self/status, Linux).
func residentBytes() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}

// A recorded training step, submitted again and again, keeps the process's memory flat: a
// kernel the driver keeps memory for on every dispatch (lavapipe did for two of ours, ~3 MB
// a step of ocr-small: gigabytes over an OCR training) shows here whichever op it is in.
// The configs cover dense and MoE layers, the copy expert, MTP heads, attention sinks,
// sliding windows and the OCR patch embedding; 30 steps grow by well under 1 MB when
// nothing leaks.
func TestTrainingStepsKeepMemoryFlat(t *testing.T) {
	dev := gputest.Device(t)
	if _, ok := residentBytes(); !ok {
		if gputest.Required() {
			t.Fatal("MOEGPU_REQUIRE_GPU=1 but /proc/self/status gives no VmRSS: the leak check reads resident memory there (Linux)")
		}
		t.Skip("resident memory is read from /proc/self/status (Linux only)")
	}
	for _, c := range []struct{ config, task string }{{"tiny-moe-mtp", "sort"}, {"ocr-small", "ocr"}} {
		t.Run(c.config, func(t *testing.T) {
			cfg, err := loadConfig(c.config)
			require.NoError(t, err)
			src, err := trainSource(c.task, cfg)
			require.NoError(t, err)
			tr, err := train.New(cfg, src, "gpu", dev, 100)
			require.NoError(t, err)
			defer tr.Close()
			for i := 0; i < 3; i++ { // compile, warm up the driver's pools
				_, err := tr.StepOnce()
				require.NoError(t, err)
			}
			before, _ := residentBytes()
			for i := 0; i < 30; i++ {
				require.NoError(t, tr.Exec.Run())
				require.NoError(t, dev.Wait())
			}
			after, _ := residentBytes()
			grew := float64(after-before) / (1 << 20)
			t.Logf("resident memory grew %.2f MB over 30 steps", grew)
			require.Less(t, grew, 4.0, "a kernel of the step keeps memory per dispatch (%.2f MB a step)", grew/30)
		})
	}
}

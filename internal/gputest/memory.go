package gputest

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// residentBytes is the process's resident memory in bytes, from /proc/self/status (Linux);
// ok is false elsewhere.
func residentBytes() (bytes int64, ok bool) {
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

// MemoryGrowth calls run warm times (compiling, warming the driver's pools), then n times,
// and returns how many MiB the process's resident memory grew over the n calls: the check
// for kernels a driver keeps memory for on every dispatch (lavapipe, Mesa 22.3, does for
// scratch memory and for some dispatch layouts, and never frees it). Resident memory is read
// from /proc/self/status, so the test skips elsewhere, or fails under MOEGPU_REQUIRE_GPU=1.
func MemoryGrowth(t testing.TB, warm, n int, run func()) float64 {
	t.Helper()
	if _, ok := residentBytes(); !ok {
		if Required() {
			t.Fatal("MOEGPU_REQUIRE_GPU=1 but /proc/self/status gives no VmRSS: the leak check reads resident memory there (Linux)")
		}
		t.Skip("resident memory is read from /proc/self/status (Linux only)")
	}
	for i := 0; i < warm; i++ {
		run()
	}
	before, _ := residentBytes()
	for i := 0; i < n; i++ {
		run()
	}
	after, _ := residentBytes()
	return float64(after-before) / (1 << 20)
}

// Package gputest opens the WebGPU device tests run on. Without an adapter
// tests skip, unless MOEGPU_REQUIRE_GPU=1 (set by CI), when they fail: a
// suite that silently ran nothing must not pass.
package gputest

import (
	"os"

	"github.com/moegpu/moegpu/internal/procenv"
	"sync"
	"testing"

	"github.com/moegpu/moegpu/gpu"
)

var (
	once sync.Once
	dev  *gpu.Device
	err  error
)

// Options reads MOEGPU_BACKEND and MOEGPU_ADAPTER so the whole suite can be
// pointed at another adapter (e.g. MOEGPU_BACKEND=gl).
func Options() gpu.Options {
	b, _ := gpu.ParseBackend(os.Getenv("MOEGPU_BACKEND"))
	return gpu.Options{Backend: b, Adapter: os.Getenv("MOEGPU_ADAPTER")}
}

// Required reports whether MOEGPU_REQUIRE_GPU=1: a GPU test must then fail,
// not skip, when something it needs is missing.
func Required() bool { return os.Getenv("MOEGPU_REQUIRE_GPU") == "1" }

// Device returns the shared test device, opened once per test binary.
func Device(t testing.TB) *gpu.Device {
	t.Helper()
	once.Do(func() { dev, err = gpu.Open(Options()) })
	if err != nil {
		if Required() {
			t.Fatalf("MOEGPU_REQUIRE_GPU=1 but no WebGPU device: %v", err)
		}
		t.Skipf("no WebGPU device: %v", err)
	}
	return dev
}

// Main runs a GPU test binary's tests in the CLI's process environment
// (package procenv: Go's asynchronous preemption off, since a preemption
// signal during a long lavapipe submission can kill the process, and
// glibc's malloc on transparent huge pages). Use it as the package's
// TestMain, or call procenv.Restart first in a TestMain of its own.
func Main(m *testing.M) {
	procenv.Restart()
	os.Exit(m.Run())
}

package main

import (
	"os"
	"strings"
	"syscall"
)

// avoidAsyncPreemption restarts the process once with Go's asynchronous
// preemption off (GODEBUG=asyncpreemptoff=1). Go preempts long-running
// goroutines by signalling their threads; with Mesa's lavapipe driver a
// preemption signal that lands while the driver is executing a long
// submission can kill the process with SIGSEGV (reproduced here: a d=512
// FFN forward + backward, `moegpu bench kernels --filter dense_ffn`, died
// within seconds every run, and completed with preemption off). The runtime
// has no goroutine that needs asynchronous preemption, so the restart costs
// nothing but an exec. Set MOEGPU_KEEP_PREEMPTION=1 to skip it.
func avoidAsyncPreemption() {
	if os.Getenv("MOEGPU_KEEP_PREEMPTION") == "1" || strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	env := os.Environ()
	godebug := "asyncpreemptoff=1"
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
			if v != "" {
				godebug = v + "," + godebug
			}
			env = append(env[:i], env[i+1:]...)
			break
		}
	}
	env = append(env, "GODEBUG="+godebug)
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure: carry on as we are
}

// Package preempt turns off Go's asynchronous preemption for the process
// by restarting it once with GODEBUG=asyncpreemptoff=1. Go preempts
// long-running goroutines by signalling their threads; with Mesa's
// lavapipe driver a preemption signal that lands while the driver executes
// a long submission can kill the process with SIGSEGV (reproduced: a d=512
// FFN forward + backward died within seconds on every run, and completed
// with preemption off). The runtime has no goroutine that needs
// asynchronous preemption. The CLI and every GPU test binary call Disable
// first thing.
package preempt

import (
	"os"
	"strings"
	"syscall"
)

// KeepEnv, set to 1, skips the restart.
const KeepEnv = "MOEGPU_KEEP_PREEMPTION"

// Disable restarts the process with asynchronous preemption off, unless
// it already is or KeepEnv is set. The restart is an exec of the same
// binary with the same arguments (same process id); if it fails, the
// process carries on as it is.
func Disable() {
	if os.Getenv(KeepEnv) == "1" || strings.Contains(os.Getenv("GODEBUG"), "asyncpreemptoff=1") {
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
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure
}

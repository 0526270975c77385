package main

import "github.com/moegpu/moegpu/internal/preempt"

// avoidAsyncPreemption restarts the CLI with Go's asynchronous preemption
// off (see package preempt: a preemption signal during a long lavapipe
// submission can kill the process). Set MOEGPU_KEEP_PREEMPTION=1 to skip it.
func avoidAsyncPreemption() { preempt.Disable() }

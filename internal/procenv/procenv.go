// Package procenv restarts the process once, at start-up, with the
// environment the runtime wants from Go and from the C library under the
// WebGPU driver. Both settings are read only when a process starts, so
// they cannot be made later:
//
//   - GODEBUG=asyncpreemptoff=1 turns off Go's asynchronous preemption. Go
//     preempts long-running goroutines by signalling their threads; with
//     Mesa's lavapipe driver a preemption signal that lands while the
//     driver executes a long submission can kill the process with SIGSEGV
//     (reproduced: a d=512 FFN forward + backward died within seconds on
//     every run, and completed with preemption off). The runtime has no
//     goroutine that needs asynchronous preemption.
//   - GLIBC_TUNABLES=glibc.malloc.hugetlb=1 makes glibc's malloc ask for
//     transparent huge pages (madvise) on the large blocks it maps. A CPU
//     driver (lavapipe, llvmpipe) keeps GPU buffers in such blocks, and
//     each 4 KiB page costs a page fault when first written: on a 2-core VM
//     the first prefill of a 256-line OCR batch took 43 000 faults and
//     about 0.6 s more than the next, against 6 000 with huge pages. A GPU
//     driver's own memory, the Go heap and other C libraries are unchanged;
//     where transparent huge pages are off (never) or the C library is not
//     glibc, the setting does nothing.
//
// The CLI and every GPU test binary call Restart first thing.
package procenv

import (
	"os"
	"slices"
	"strings"
	"syscall"
)

// Environment variables that opt out of one setting each.
const (
	// KeepPreemptionEnv, set to 1, keeps Go's asynchronous preemption on.
	KeepPreemptionEnv = "MOEGPU_KEEP_PREEMPTION"
	// HugePagesEnv, set to 0, leaves glibc's malloc as it is.
	HugePagesEnv = "MOEGPU_HUGEPAGES"
	// AddedEnv names the variables the restart added a setting to
	// (comma-separated), so Undo can take them out again.
	AddedEnv = "MOEGPU_RESTART_ADDED"
)

// settings are the restart's additions: each a name=value entry of a
// variable's sep-separated list, with the opt-out variable and value that
// leave it out.
var settings = []struct {
	key, setting, sep   string
	optOut, optOutValue string
}{
	{"GODEBUG", "asyncpreemptoff=1", ",", KeepPreemptionEnv, "1"},
	{"GLIBC_TUNABLES", "glibc.malloc.hugetlb=1", ":", HugePagesEnv, "0"},
}

// Restart execs the same binary with the same arguments (same process id)
// and the settings above added to GODEBUG and GLIBC_TUNABLES, unless
// every setting is already there or opted out of. If the exec fails, the
// process carries on as it is.
func Restart() {
	env, changed := Environ(os.Environ())
	if !changed {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env) // returns only on failure
}

// Environ returns env with the settings added (each to its variable's
// list: GODEBUG's is comma-separated, GLIBC_TUNABLES's colon-separated,
// with any setting already there kept, and the variables changed named in
// AddedEnv) and whether anything was added.
// A variable that already names the setting (with any value: the user's
// choice stands), or whose opt-out is set, is left as it is.
func Environ(env []string) ([]string, bool) {
	get := func(key string) (string, int) {
		for i, kv := range env {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				return v, i
			}
		}
		return "", -1
	}
	out := append([]string(nil), env...)
	add := func(key, setting, sep string) bool {
		v, i := get(key)
		name, _, _ := strings.Cut(setting, "=")
		for _, s := range strings.Split(v, sep) {
			if n, _, _ := strings.Cut(s, "="); n == name {
				return false // set already, to this value or to the user's own
			}
		}
		if v != "" {
			setting = v + sep + setting
		}
		if i >= 0 {
			out[i] = key + "=" + setting
		} else {
			out = append(out, key+"="+setting)
		}
		return true
	}
	var added []string
	for _, st := range settings {
		if v, _ := get(st.optOut); v != st.optOutValue && add(st.key, st.setting, st.sep) {
			added = append(added, st.key)
		}
	}
	if len(added) == 0 {
		return out, false
	}
	if _, i := get(AddedEnv); i < 0 {
		out = append(out, AddedEnv+"="+strings.Join(added, ","))
	}
	return out, true
}

// Undo returns env without the settings a restart added to it (named in
// AddedEnv), and without AddedEnv: the environment the user started the
// process with, for a program the process runs whose timing is compared
// with its own (Tesseract in `moegpu bench ocr`).
func Undo(env []string) []string {
	var added []string
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, AddedEnv+"="); ok {
			added = strings.Split(v, ",")
		}
	}
	var out []string
	for _, kv := range env {
		key, v, _ := strings.Cut(kv, "=")
		if key == AddedEnv {
			continue
		}
		if slices.Contains(added, key) {
			for _, st := range settings {
				if st.key == key {
					v = drop(v, st.setting, st.sep)
				}
			}
			if v == "" {
				continue
			}
			kv = key + "=" + v
		}
		out = append(out, kv)
	}
	return out
}

// drop removes setting from the sep-separated list v.
func drop(v, setting, sep string) string {
	var keep []string
	for _, s := range strings.Split(v, sep) {
		if s != setting {
			keep = append(keep, s)
		}
	}
	return strings.Join(keep, sep)
}

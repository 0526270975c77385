// Command moegpu trains, runs and benchmarks Mixture-of-Experts
// transformers on any GPU through WebGPU.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/pkg/profile"

	"github.com/moegpu/moegpu/internal/procenv"
)

// command is one subcommand: its flags are parsed by run itself so that
// each gets its own --help.
type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

var commands = []command{
	{"train", "train a model on a synthetic task or on OCR; writes metrics, a loss plot and a checkpoint", runTrain},
	{"generate", "continue a prompt with a trained checkpoint (KV-cache decoding)", runGenerate},
	{"eval", "exact-match accuracy of a checkpoint on held-out task examples", runEval},
	{"ocr", "read the text of images (screenshots, scans, photos of print) with the OCR model; --eval DIR scores a folder", runOCR},
	{"info", "list every WebGPU adapter with its backend, driver, limits and features", runInfo},
	{"bench", "benchmark kernels and whole models against the adapter's measured peak, print the op support table, report and compare results, time MTP speculative decoding and OCR against Tesseract (moegpu bench kernels|model|support|report|compare|speculative|ocr)", runBench},
	{"logits", "write every position's logits (and optionally gradients) of a checkpoint, to compare implementations", runLogits},
	{"ablate", "train and score a spec's runs one after another (resumable), then report tables and plots over seeds", runAblate},
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `moegpu: train, run and benchmark small Mixture-of-Experts transformers on any GPU
through WebGPU (Vulkan, Metal, DX12, OpenGL ES).

Usage:
  moegpu <command> [flags]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Run "moegpu <command> --help" for a command's flags.

Environment:
  MOEGPU_WGPU_LOG=warn|info|debug   show the WebGPU driver's log (hidden by default)
  MOEGPU_OCR_MODEL=DIR              the OCR model ocr and bench ocr read when --model is not given
  MOEGPU_KEEP_PREEMPTION=1          keep Go's asynchronous preemption (turned off at start-up:
                                    its signals can crash Mesa's lavapipe mid-submission)
  MOEGPU_HUGEPAGES=0                leave glibc's malloc on 4 KiB pages (by default moegpu restarts
                                    with GLIBC_TUNABLES=glibc.malloc.hugetlb=1: CPU drivers keep GPU
                                    buffers in malloc'd memory, and huge pages cut their page faults)
`)
}

func main() {
	// Restart once with Go's asynchronous preemption off and glibc's malloc on transparent huge
	// pages (package procenv; MOEGPU_KEEP_PREEMPTION=1 and MOEGPU_HUGEPAGES=0 opt out).
	procenv.Restart()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			err := c.run(args[1:], stdout, stderr)
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			if err != nil && isFlagError(err) {
				fmt.Fprintf(stderr, "moegpu %s: %v (moegpu %s --help lists the flags)\n", c.name, err, c.name)
				return 2
			}
			if err != nil {
				// A package's own prefix that repeats the command's name is said once.
				fmt.Fprintf(stderr, "moegpu %s: %s\n", c.name, strings.TrimPrefix(err.Error(), c.name+": "))
				return 1
			}
			return 0
		}
	}
	var names []string
	for _, c := range commands {
		names = append(names, c.name)
	}
	sort.Strings(names)
	fmt.Fprintf(stderr, "moegpu: unknown command %q (have: %s)\n", args[0], strings.Join(names, ", "))
	return 2
}

// newFlags makes a flag set whose --help prints the summary and defaults.
func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("moegpu "+name, flag.ContinueOnError)
	setHelp(fs, stderr, func(w io.Writer) { fmt.Fprintf(w, "Usage: moegpu %s\n\n", synopsis) })
	return fs
}

// setHelp makes --help print head and then fs's flags to stderr, and a mistyped flag or bad
// value an error of one line that points to --help (run prints it) instead of the error
// followed by every flag. The flag package writes a parse error to fs.Output() before it
// calls Usage, and calls Usage alone for --help; Output is a buffer that tells the two apart.
func setHelp(fs *flag.FlagSet, stderr io.Writer, head func(w io.Writer)) {
	var pending bytes.Buffer
	fs.SetOutput(&pending)
	fs.Usage = func() {
		if pending.Len() > 0 { // a parse error, returned to the caller
			pending.Reset()
			return
		}
		fs.SetOutput(stderr)
		defer fs.SetOutput(&pending)
		head(stderr)
		fs.PrintDefaults()
	}
}

// flagErrors are the starts of the flag package's parse errors.
var flagErrors = []string{"flag provided but not defined: ", "flag needs an argument: ", "bad flag syntax: ", "invalid value ", "invalid boolean value "}

// isFlagError says whether err is the flag package's parse error.
func isFlagError(err error) bool {
	for _, p := range flagErrors {
		if strings.HasPrefix(err.Error(), p) {
			return true
		}
	}
	return false
}

// profiling adds --cpuprofile/--memprofile; the returned func stops it.
type profiling struct{ cpu, mem string }

func (p *profiling) register(fs *flag.FlagSet) {
	fs.StringVar(&p.cpu, "cpuprofile", "", "write a CPU profile (pprof) into this directory")
	fs.StringVar(&p.mem, "memprofile", "", "write a heap profile (pprof) into this directory")
}

func (p *profiling) start() func() {
	switch {
	case p.cpu != "":
		return profile.Start(profile.CPUProfile, profile.ProfilePath(p.cpu), profile.Quiet).Stop
	case p.mem != "":
		return profile.Start(profile.MemProfile, profile.ProfilePath(p.mem), profile.Quiet).Stop
	}
	return func() {}
}

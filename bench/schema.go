package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/atomicfile"
)

// The result file format that `moegpu bench kernels`, `bench model` and
// `bench support` write and `bench report` and `bench compare` read: one
// JSON object, a Report. Its top-level keys:
//
//	schema          "moegpu-bench" (a file without it is read as version 1, see below)
//	schema_version  2
//	suite           "kernels", "model" or "support": what the file holds
//	smoke           true when --quick made it (small shapes, few steps: not a measurement)
//	moegpu          the build that measured: {version, source, revision, time, modified, go}
//	command         the command line, argv[0] first
//	host            {hostname, machine, os, arch, cpus, cpu_model, load_start, load_end}
//	date            RFC 3339, UTC
//	adapter         {name, backend, device_type, driver, vendor, features, limits}: limits are
//	                the device's (gpu.Limits, bytes and counts under WebGPU's names)
//	peak            {fma_gflops, copy_gbps}: the adapter's measured roofline (zero in a
//	                support-only file)
//	kernels         []Kernel: one op at one shape (ms per op, GFLOP/s or GB/s, % of peak,
//	                flops and bytes per op for the roofline)
//	models          []Model: one config's training step, decoding and memory
//	support         []Support: one op variant's status on the adapter
//
// Version 1 is what `bench kernels --json` wrote before the schema had a
// version: adapter {name, backend, device_type, driver}, peak, kernels
// (without flops and bytes) and date. ReadReport reads it and upgrades it in
// memory (SchemaVersion 1 stays recorded, so a reader can tell); a version
// newer than SchemaVersion, or another schema name, is an error naming both.
const (
	SchemaName    = "moegpu-bench"
	SchemaVersion = 2
)

// Suite names say what a result file holds.
const (
	SuiteKernels = "kernels"
	SuiteModel   = "model"
	SuiteSupport = "support"
)

// Report is one benchmark result file (see SchemaName for the layout). The
// kernel suite (Run), the model suite (RunModels) and the support table
// (RunSupport) each fill their own rows; every file carries the adapter,
// build and host so files from different machines can be compared.
type Report struct {
	Schema        string    `json:"schema"`
	SchemaVersion int       `json:"schema_version"`
	Suite         string    `json:"suite,omitempty"`
	Smoke         bool      `json:"smoke,omitempty"`
	Moegpu        Build     `json:"moegpu"`
	Command       []string  `json:"command,omitempty"`
	Host          Host      `json:"host"`
	Date          time.Time `json:"date"`
	Adapter       Adapter   `json:"adapter"`
	Peak          Peak      `json:"peak"`
	Kernels       []Kernel  `json:"kernels,omitempty"`
	Models        []Model   `json:"models,omitempty"`
	Support       []Support `json:"support,omitempty"`
	// Path is the file the report was read from (not written).
	Path string `json:"-"`
}

// Adapter names the adapter a report was measured on, with what limits
// and features it offered (Vendor, Features and Limits are absent from
// version 1 files).
type Adapter struct {
	Name       string      `json:"name"`
	Backend    string      `json:"backend"`
	DeviceType string      `json:"device_type"`
	Driver     string      `json:"driver"`
	Vendor     string      `json:"vendor,omitempty"`
	Features   []string    `json:"features,omitempty"`
	Limits     *gpu.Limits `json:"limits,omitempty"`
}

// Label is how tables and plots name the adapter: "llvmpipe (LLVM 15.0.6,
// 256 bits) [vulkan]".
func (a Adapter) Label() string { return fmt.Sprintf("%s [%s]", a.Name, a.Backend) }

// Build identifies the moegpu that wrote a report. Version is `git
// describe --always --dirty` when the binary was built with
//
//	go build -ldflags "-X github.com/moegpu/moegpu/bench.Version=$(git describe --always --dirty)" ./cmd/moegpu
//
// (Source "ldflags"); otherwise it is what the Go toolchain stamped into the
// binary (Source "buildinfo": debug.ReadBuildInfo's module version, e.g.
// v0.0.0-20261130074400-88c41c3abcde+dirty for `go build` in a git checkout,
// with the VCS revision, commit time and modified flag); "unknown" when
// neither exists (go run, go test).
type Build struct {
	Version  string `json:"version"`
	Source   string `json:"source"`
	Revision string `json:"revision,omitempty"`
	Time     string `json:"time,omitempty"`
	Modified bool   `json:"modified,omitempty"`
	Go       string `json:"go"`
}

// Version is set at link time to `git describe --always --dirty` (see
// Build); empty otherwise.
var Version string

// CurrentBuild describes the running binary (see Build).
func CurrentBuild() Build {
	b := Build{Version: "unknown", Source: "unknown", Go: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if ok {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Revision = s.Value
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true"
			}
		}
		if v := info.Main.Version; v != "" && v != "(devel)" {
			b.Version, b.Source = v, "buildinfo"
		} else if b.Revision != "" {
			b.Version, b.Source = shortRev(b.Revision), "buildinfo"
			if b.Modified {
				b.Version += "-dirty"
			}
		}
	}
	if Version != "" {
		b.Version, b.Source = Version, "ldflags"
	}
	return b
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// Host describes the machine a report was measured on. Machine is a short
// name chosen by whoever ran the bench (--machine), used in file names and
// table headers; it defaults to the hostname.
type Host struct {
	Hostname string `json:"hostname,omitempty"`
	Machine  string `json:"machine,omitempty"`
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
	// LoadStart and LoadEnd are the machine's 1-minute load average when
	// the suite started and when its report was stamped (Linux only; 0
	// elsewhere): on a CPU driver anything else running shares the
	// "GPU", and a load above the CPU count says the figures are
	// disturbed.
	LoadStart float64 `json:"load_start,omitempty"`
	LoadEnd   float64 `json:"load_end,omitempty"`
}

// loadAverage is the 1-minute load average, 0 where /proc/loadavg is
// missing.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// CurrentHost describes this machine; machine "" means the hostname.
func CurrentHost(machine string) Host {
	h := Host{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(), Machine: machine, LoadStart: loadAverage()}
	h.Hostname, _ = os.Hostname()
	if h.Machine == "" {
		h.Machine = h.Hostname
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return h
}

// AdapterOf describes dev's adapter with the device's limits.
func AdapterOf(dev *gpu.Device) Adapter {
	lim := dev.Limits
	return Adapter{Name: dev.Info.Name, Backend: string(dev.Info.Backend), DeviceType: dev.Info.DeviceType,
		Driver: dev.Info.Driver, Vendor: dev.Info.Vendor, Features: dev.Info.Features, Limits: &lim}
}

// NewReport starts a report of a suite measured on dev (nil: no adapter
// fields), stamped with this build, this host and the time.
func NewReport(dev *gpu.Device, suite string) *Report {
	r := &Report{Schema: SchemaName, SchemaVersion: SchemaVersion, Suite: suite, Moegpu: CurrentBuild(),
		Host: CurrentHost(""), Date: time.Now().UTC()}
	if dev != nil {
		r.Adapter = AdapterOf(dev)
	}
	return r
}

// Stamp records the command line, the machine name (empty: keep the
// hostname) and the load average now in a report before it is written.
func (r *Report) Stamp(command []string, machine string) {
	r.Command = append([]string(nil), command...)
	r.Host.LoadEnd = loadAverage()
	if machine != "" {
		r.Host.Machine = machine
	}
}

// WriteJSON writes the report atomically (temp file, then rename), as the
// current schema version.
func (r *Report) WriteJSON(path string) error {
	r.Schema, r.SchemaVersion = SchemaName, SchemaVersion
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(data, '\n'))
}

// ErrSchema marks a file that is not a moegpu bench result this build can
// read: another schema, or a newer version.
var ErrSchema = errors.New("not a readable moegpu bench result")

// ReadReport reads a result file of any version up to SchemaVersion and
// returns it in the current layout (see SchemaName for how version 1 is
// upgraded). Unknown keys are ignored, so a file with extra fields from a
// later minor addition still reads; an unknown version does not. A text
// file of `go test -bench TrainStep` output is read with ParseGoBench.
func ReadReport(path string) (*Report, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r *Report
	if looksLikeGoBench(raw) {
		r, err = ParseGoBench(raw)
	} else {
		r, err = DecodeReport(raw)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	r.Path = path
	return r, nil
}

// DecodeReport is ReadReport on bytes.
func DecodeReport(raw []byte) (*Report, error) {
	var head struct {
		Schema  *string         `json:"schema"`
		Version *int            `json:"schema_version"`
		Adapter json.RawMessage `json:"adapter"`
		Kernels json.RawMessage `json:"kernels"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	version := 1
	switch {
	case head.Schema == nil && head.Version == nil:
		if head.Adapter == nil || head.Kernels == nil {
			return nil, fmt.Errorf("%w: no schema field and not a version 1 kernels file (it needs adapter and kernels)", ErrSchema)
		}
	case head.Schema == nil || *head.Schema != SchemaName:
		got := "none"
		if head.Schema != nil {
			got = fmt.Sprintf("%q", *head.Schema)
		}
		return nil, fmt.Errorf("%w: schema %s, want %q", ErrSchema, got, SchemaName)
	case head.Version == nil:
		return nil, fmt.Errorf("%w: schema %q without schema_version", ErrSchema, SchemaName)
	default:
		version = *head.Version
	}
	if version < 1 || version > SchemaVersion {
		return nil, fmt.Errorf("%w: schema_version %d; this moegpu reads versions 1 to %d (a newer moegpu wrote it?)", ErrSchema, version, SchemaVersion)
	}
	var r Report
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: version %d: %v", ErrSchema, version, err)
	}
	if version == 1 {
		r.Schema, r.SchemaVersion, r.Suite = SchemaName, 1, SuiteKernels
		if r.Moegpu.Version == "" {
			r.Moegpu = Build{Version: "unknown", Source: "schema version 1 file"}
		}
	}
	return &r, nil
}

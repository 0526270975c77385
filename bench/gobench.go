package bench

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"strings"
)

// SuiteGoBench marks a report read from `go test -bench` output.
const SuiteGoBench = "go test -bench"

// ParseGoBench reads the text output of the training-step benchmark,
//
//	go test ./runtime/train -run '^$' -bench TrainStep -v
//
// as a model report, so `bench compare` and `bench report` put Go
// benchmark runs side by side (and beside `bench model` rows): one Model
// row per sub-benchmark, named by its config for the default flat
// optimizer ("tiny-dense") and "<config>/<optimizer>" otherwise
// ("tiny-dense/per_param"), StepMs from ns/op, and dispatches/step,
// tokens/s and model-GFLOP/s where the benchmark reported them. The
// "adapter: NAME [backend]" line the benchmark logs (shown with -v) names
// the adapter, "cpu:" the machine's CPU. Lines of other benchmarks, and
// anything that is not a result line, are skipped; no result line at all
// is an error.
func ParseGoBench(raw []byte) (*Report, error) {
	r := &Report{Schema: SchemaName, SchemaVersion: SchemaVersion, Suite: SuiteGoBench,
		Moegpu: Build{Version: "unknown", Source: "go test -bench output"}}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "goos:"):
			r.Host.OS = strings.TrimSpace(strings.TrimPrefix(line, "goos:"))
		case strings.HasPrefix(line, "goarch:"):
			r.Host.Arch = strings.TrimSpace(strings.TrimPrefix(line, "goarch:"))
		case strings.HasPrefix(line, "cpu:"):
			r.Host.CPUModel = strings.TrimSpace(strings.TrimPrefix(line, "cpu:"))
		case strings.Contains(line, "adapter: "):
			label := line[strings.Index(line, "adapter: ")+len("adapter: "):]
			if i := strings.LastIndex(label, " ["); i > 0 && strings.HasSuffix(label, "]") {
				r.Adapter.Name, r.Adapter.Backend = label[:i], label[i+2:len(label)-1]
			} else {
				r.Adapter.Name = label
			}
		case strings.HasPrefix(line, "BenchmarkTrainStep/"):
			m, ok := parseBenchLine(line)
			if ok {
				r.Models = append(r.Models, m)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(r.Models) == 0 {
		return nil, errors.New("no BenchmarkTrainStep result lines (run go test -bench TrainStep -v and save its output)")
	}
	if r.Adapter.Name == "" {
		r.Adapter.Name = "unknown adapter (run the benchmark with -v to log it)"
	}
	r.Host.Machine = r.Host.CPUModel
	return r, nil
}

// parseBenchLine reads "BenchmarkTrainStep/tiny-dense/group-2  10
// 66000000 ns/op  96.00 dispatches/step  …".
func parseBenchLine(line string) (Model, bool) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return Model{}, false
	}
	name := strings.TrimPrefix(f[0], "BenchmarkTrainStep/")
	if i := strings.LastIndexByte(name, '-'); i > 0 { // the GOMAXPROCS suffix
		if _, err := strconv.Atoi(name[i+1:]); err == nil {
			name = name[:i]
		}
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return Model{}, false
	}
	m := Model{Config: strings.TrimSuffix(name, "/group"), Task: "go test -bench", Steps: n}
	for i := 2; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return Model{}, false
		}
		switch f[i+1] {
		case "ns/op":
			m.StepMs, m.StepMsMin = v/1e6, v/1e6
		case "dispatches/step":
			m.Dispatches = int(v)
		case "tokens/s":
			m.TokensPerS = v
		case "model-GFLOP/s":
			m.GFlops = v
		}
	}
	return m, m.StepMs > 0
}

// looksLikeGoBench reports whether a result file is Go benchmark text
// rather than JSON.
func looksLikeGoBench(raw []byte) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] != '{' && bytes.Contains(t, []byte("Benchmark"))
}

package bench

import (
	"fmt"
	"io"
	"strings"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/optest"
)

// Support is one op variant's row of the support table on one adapter:
// "supported" (ran and matched the CPU reference within the tolerance its
// tests state), "unsupported" (the adapter refused it; Detail names the
// limit or missing feature) or "failing" (ran and disagreed, or failed
// otherwise; Detail says how).
type Support struct {
	Op      string  `json:"op"`
	Variant string  `json:"variant"`
	Shape   string  `json:"shape"`
	Status  string  `json:"status"`
	Detail  string  `json:"detail,omitempty"`
	Ms      float64 `json:"ms"` // time to build, run and check the case
}

// RunSupport checks every case of the op test suite (optest.Suite) on dev
// and returns the support report; progress goes to log (nil: none).
func RunSupport(dev *gpu.Device, log io.Writer) *Report {
	r := NewReport(dev, SuiteSupport)
	cases := optest.Suite()
	for i, c := range cases {
		res := c.Run(dev)
		s := Support{Op: res.Op, Variant: res.Variant, Shape: res.Shape, Status: string(res.Status), Detail: res.Detail, Ms: res.Seconds * 1e3}
		r.Support = append(r.Support, s)
		if log != nil {
			fmt.Fprintf(log, "  [%3d/%d] %-26s %-44s %s\n", i+1, len(cases), s.Op, s.Variant, s.Status)
		}
	}
	return r
}

// SupportCounts tallies a support table by status.
func SupportCounts(rows []Support) map[string]int {
	n := map[string]int{}
	for _, s := range rows {
		n[s.Status]++
	}
	return n
}

// shortDetail is the part of an error that names the limit: without the
// op-name prefixes and the trailing "unsupported on this adapter".
func shortDetail(s string) string {
	if i := strings.LastIndex(s, " gpu: "); i >= 0 {
		s = s[i+len(" gpu: "):]
	}
	s = strings.TrimSuffix(s, ": "+gpu.ErrUnsupported.Error())
	if op, rest, ok := strings.Cut(s, ": "); ok && !strings.Contains(op, " ") {
		s = rest
	}
	return s
}

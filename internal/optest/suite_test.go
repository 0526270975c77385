package optest_test

import (
	"testing"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// TestMain runs the tests with Go's asynchronous preemption off (see
// gputest.Main).
func TestMain(m *testing.M) { gputest.Main(m) }

// Every case of the support table runs on the test adapter and either
// matches its reference or is refused with gpu.ErrUnsupported (which must
// name the limit): the table can never show "failing" for an adapter the
// tests pass on.
func TestEverySuiteCaseMatchesItsReferenceOrIsRefused(t *testing.T) {
	dev := gputest.Device(t)
	seen := map[string]bool{}
	for _, c := range optest.Suite() {
		key := c.Op + "|" + c.Variant + "|" + c.Shape
		if seen[key] {
			t.Errorf("suite lists %s twice", key)
		}
		seen[key] = true
		t.Run(c.Op+"/"+c.Variant, func(t *testing.T) {
			r := c.Run(dev)
			switch r.Status {
			case optest.Supported:
			case optest.Unsupported:
				t.Logf("unsupported on %s: %s", dev.Info.Label(), r.Detail)
			default:
				t.Fatalf("%s %s %s: %s", c.Op, c.Variant, c.Shape, r.Detail)
			}
		})
	}
}

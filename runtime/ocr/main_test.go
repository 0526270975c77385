package ocr

import (
	"testing"

	"github.com/moegpu/moegpu/internal/gputest"
)

// TestMain runs the tests with Go's asynchronous preemption off (see gputest.Main).
func TestMain(m *testing.M) { gputest.Main(m) }

package graph

import (
	"fmt"
	"strings"

	"github.com/moegpu/moegpu/gpu"
)

// llvmpipeLoopBudget is how many loop iterations, all loops of a kernel
// together, one invocation may run on llvmpipe (lavapipe, and llvmpipe
// behind GL): gallivm ends every loop once LP_MAX_TGSI_LOOP_ITERATIONS
// (65535) iterations have run in the shader, silently, leaving later work
// undone. Kernels whose per-invocation trip count grows with a tensor
// dimension pick variants that stay under this budget there, or refuse.
const llvmpipeLoopBudget = 60000

// loopBudget returns the per-invocation loop budget of the device's
// compiler, or 0 when it has none. Every CPU adapter is treated as
// llvmpipe: the only cost is a variant choice.
func loopBudget(dev *gpu.Device) int {
	if strings.EqualFold(dev.Info.DeviceType, "cpu") {
		return llvmpipeLoopBudget
	}
	return 0
}

// overBudget wraps ErrUnsupported for a variant whose worst-case loop trip
// count exceeds the device's budget.
func overBudget(dev *gpu.Device, what string, iters int) error {
	return fmt.Errorf("%s: up to %d loop iterations per invocation; %s stops loops after %d: %w",
		what, iters, dev.Info.Label(), llvmpipeLoopBudget, gpu.ErrUnsupported)
}

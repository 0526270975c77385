package graph

import (
	"fmt"
	"math"
	"sort"

	"github.com/moegpu/moegpu/gpu"
)

// TopK selects, per row, the K largest values: the routing step of a
// mixture of experts (gate logits → chosen experts). Input x (rows, n) f32;
// outputs values (rows, K) f32, sorted descending, and indices (rows, K)
// u32, the column of each value. Ties go to the lower index. NaN ranks
// below every number (−inf included; NaNs among themselves by index) and
// −0 ranks equal to +0; values are copied from x unchanged.
//
// TopK has no backward: selection is not differentiable; the gate values
// are gathered by index and differentiated through that gather.
type TopK struct {
	K int
	// Variant picks the kernel: 0 automatic (5 for K ≤ 16, else 4 or 2
	// for rows up to 1024, else 3), 1 one invocation per row inserting into
	// a dynamically indexed private array (K ≤ 256), 2 one invocation per
	// row making K selection passes, 3 one workgroup per row making K
	// selection passes (long rows), 4 as 2 with vec4 loads (n % 4 == 0,
	// else 2), 5 one invocation per row bubbling candidates through a
	// register array of exactly K (K ≤ 64). On llvmpipe a variant whose
	// worst-case loop count exceeds llvmpipeLoopBudget is refused
	// (ErrUnsupported) and never chosen automatically.
	Variant int
}

// topkInsertMax is the largest K the insertion kernel's private arrays
// take (sized to the next power of two ≥ K, one pipeline per size).
const topkInsertMax = 256

// topkBubbleMax is the largest K of the register-array kernel (one
// pipeline per K).
const topkBubbleMax = 64

// Name implements Op.
func (t TopK) Name() string { return fmt.Sprintf("topk%d", t.K) }

// Outputs implements Op.
func (t TopK) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := wantRank("x", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	rows, n := in[0].Shape[0], in[0].Shape[1]
	if t.K < 1 || t.K > n {
		return nil, fmt.Errorf("K = %d: need 1 ≤ K ≤ row length %d", t.K, n)
	}
	return []Spec{F32(rows, t.K), U32(rows, t.K)}, nil
}

// topkBefore is the ranking: a ranks before b (a descending order with NaN
// last). Equal values (−0 and +0 included) are not before each other, so a
// stable sort keeps them in index order.
func topkBefore(a, b float64) bool {
	if math.IsNaN(a) {
		return false
	}
	if math.IsNaN(b) {
		return true
	}
	return a > b
}

// Reference implements Op.
func (t TopK) Reference(in []*Host) ([]*Host, error) {
	outs, err := t.Outputs([]Spec{in[0].Spec})
	if err != nil {
		return nil, err
	}
	vals, idx := NewHost(outs[0]), NewHost(outs[1])
	rows, n := in[0].Shape[0], in[0].Shape[1]
	order := make([]int, n)
	for r := 0; r < rows; r++ {
		row := in[0].Data[r*n : (r+1)*n]
		for j := range order {
			order[j] = j
		}
		sort.SliceStable(order, func(a, b int) bool { return topkBefore(row[order[a]], row[order[b]]) })
		for k := 0; k < t.K; k++ {
			vals.Data[r*t.K+k] = row[order[k]]
			idx.Data[r*t.K+k] = float64(order[k])
		}
	}
	return []*Host{vals, idx}, nil
}

// topkTrips is the worst-case loop iterations per invocation of each
// variant (insertion: every element shifting K entries).
func topkTrips(variant, n, k, twg int) int {
	switch variant {
	case 1:
		return n*(k+1) + k
	case 2:
		return k * (n + 1)
	case 4:
		return k * (n/4 + 1)
	case 5: // the slot loops may stay loops if not unrolled
		return n*(k+1) + 2*k
	}
	lg := 0
	for w := twg; w > 1; w /= 2 {
		lg++
	}
	return k * (gpu.CeilDiv(n, twg) + lg + 1)
}

// Encode implements Op.
func (t TopK) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	const wg, twg = 64, 64
	rows, n := in[0].Shape[0], in[0].Shape[1]
	budget := loopBudget(dev)
	fits := func(v int) bool { return budget == 0 || topkTrips(v, n, t.K, twg) <= budget }
	variant := t.Variant
	if variant == 4 && n%4 != 0 {
		variant = 2
	}
	if variant == 0 {
		switch {
		case t.K <= 16 && fits(5):
			variant = 5
		case n <= 1024 && n%4 == 0 && fits(4):
			variant = 4
		case n <= 1024 && fits(2):
			variant = 2
		default:
			variant = 3
		}
	}
	if !fits(variant) {
		return overBudget(dev, fmt.Sprintf("topk variant %d, n=%d, K=%d", variant, n, t.K), topkTrips(variant, n, t.K, twg))
	}
	acc := []gpu.Access{gpu.Read, gpu.ReadWrite, gpu.ReadWrite}
	params := []uint32{uint32(rows), uint32(n), uint32(t.K), 0}
	var k *gpu.Kernel
	var err error
	grid := dev.Grid1D(gpu.CeilDiv(rows, wg))
	switch variant {
	case 1:
		if t.K > topkInsertMax {
			return fmt.Errorf("variant 1 takes K ≤ %d, got %d", topkInsertMax, t.K)
		}
		kmax := 8
		for kmax < t.K {
			kmax *= 2
		}
		name := fmt.Sprintf("topk_insert_k%d", kmax)
		k, err = kernel(dev, "topk", "topk_insert", name, acc, true, map[string]string{"KMAX": fmt.Sprintf("%du", kmax)})
	case 2:
		k, err = kernel(dev, "topk", "topk_select", "topk_select", acc, true, nil)
	case 4:
		k, err = kernel(dev, "topk", "topk_select_vec4", "topk_select_vec4", acc, true, nil)
	case 5:
		if t.K > topkBubbleMax {
			return fmt.Errorf("variant 5 takes K ≤ %d, got %d", topkBubbleMax, t.K)
		}
		name := fmt.Sprintf("topk_bubble_k%d", t.K)
		k, err = kernel(dev, "topk", "topk_bubble", name, acc, true, map[string]string{"KMAX": fmt.Sprintf("%du", t.K)})
	case 3:
		k, err = kernel(dev, "topk", "topk_select_wg", "topk_select_wg", acc, true, map[string]string{"TWG": fmt.Sprintf("%du", twg)})
		grid = dev.Grid1D(rows)
	default:
		return fmt.Errorf("unknown variant %d", t.Variant)
	}
	if err != nil {
		return err
	}
	return rec.Dispatch(k, grid, params, in[0], out[0], out[1])
}

package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/shaders"
)

// Variant 11's block of C per invocation: RowsTM rows × RowsTNV vec4
// columns (16 × 16), so each row of the reduction loads 8 vec4s for 256
// multiply-adds.
const RowsTM, RowsTNV = 16, 4

// rowsPassLen is how many rows of the reduction one dispatch of variant 11
// sums (later passes add to C). Short passes keep a pass's rows of A and B
// in a CPU's cache while every invocation walks them: on lavapipe on a
// 2-core AMD EPYC host, passes of 256 rows ran 1.5–1.7× faster than one
// pass over all rows at 384×128 and 256×128 with 1184 rows and at 256×768
// with 1024, and about even at 1536×256 (two runs, the pass length changed
// by a temporary switch).
const rowsPassLen = 256

// TNRowsKernel compiles shaders/matmul_tn_rows.wgsl.tmpl, C = Aᵀ·B as a sum
// over the rows of A (R, P) and B (R, Q), for a tm × 4·tnv block of C per
// invocation (tm a multiple of 4) and wgx × wgy invocations per workgroup.
// grouped selects the per-expert form of moe.GroupedWeightGrad (bindings
// a, b, seg, c and its Params) over graph.MatMul's (a, b, c and
// {rows, n, k, accumulate, pass_row, pass_len}).
func TNRowsKernel(dev *gpu.Device, name string, tm, tnv, wgx, wgy int, grouped bool) (*gpu.Kernel, error) {
	if tm%4 != 0 || tm <= 0 || tnv <= 0 {
		return nil, fmt.Errorf("%s: a block of %d rows × %d vec4 columns is not a positive multiple of 4 rows", name, tm, tnv)
	}
	type row struct {
		I, Q int    // row of the block; the vec4 of A that holds it
		C    string // its component there
	}
	rows := make([]row, tm)
	for i := range rows {
		rows[i] = row{I: i, Q: i / 4, C: string("xyzw"[i%4])}
	}
	src, err := shaders.Template("matmul_tn_rows", struct {
		TM, TNV, WGX, WGY, Loads, FMAs int
		Grouped                        bool
		Rows                           []row
		Cols, Quads                    []int
	}{tm, tnv, wgx, wgy, tnv + tm/4, 4 * tm * tnv, grouped, rows, seq(tnv), seq(tm / 4)})
	if err != nil {
		return nil, err
	}
	bind := []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}
	if grouped {
		bind = []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}
	}
	return dev.Kernel(gpu.KernelSpec{Name: fmt.Sprintf("%s_%dx%d_wg%dx%d", name, tm, 4*tnv, wgx, wgy), Source: src,
		Entry: "mm_tn_rows", Bindings: bind, Params: true})
}

// rowsOK reports whether variant 11 can run: Aᵀ·B, one batch, M and N
// multiples of 4, at least one row.
func (m MatMul) rowsOK(d mmDims) bool {
	return m.TransA && !m.TransB && d.batch == 1 && d.M%4 == 0 && d.N%4 == 0 && d.K > 0
}

// autoRows reports whether the automatic choice takes variant 11: on CPU
// adapters, for a weight gradient of a training step (bigEnoughForUBO) with
// at most 128 output columns, such as ocr-small's (hidden size 128), where
// variant 9 runs v7 with narrow column blocks. On lavapipe on a 2-core AMD
// EPYC host (go test ./graph -bench MatMulRowPasses, three runs) variant
// 11 ran 1.3–2.2× variant 9's GFLOP/s at 384×128, 1.4–1.5× at 256×128 and
// 1.25–1.5× at 128×128 (1184 rows), but 0.93–1.10× at small-dense's wider
// shapes (1536×256, 256×768, 512×256 over 1024 rows), which keep variant 9.
func (m MatMul) autoRows(dev *gpu.Device, d mmDims) bool {
	return loopBudget(dev) > 0 && m.rowsOK(d) && bigEnoughForUBO(d) && d.N <= 128
}

// encodeRows records variant 11: one dispatch per rowsPassLen rows of the
// reduction (K), each adding to what the earlier ones stored.
func (m MatMul) encodeRows(dev *gpu.Device, rec *gpu.Recorder, d mmDims, in, out []*gpu.Buffer) error {
	if !m.rowsOK(d) {
		return fmt.Errorf("%s: variant 11 needs Aᵀ·B, one batch, M and N multiples of 4 and K > 0 (M=%d, N=%d, K=%d, batch %d)", m.Name(), d.M, d.N, d.K, d.batch)
	}
	wgx := 8
	for wgx > 1 && wgx/2 >= gpu.CeilDiv(d.N/4, RowsTNV) {
		wgx /= 2
	}
	wgy := 64 / wgx
	// A CPU driver runs each workgroup on one thread: keep at least four
	// (at 128×128, 64 blocks in one workgroup of 8×8 ran 0.77× variant 9).
	for wgy > 1 && gpu.CeilDiv(d.N/4, RowsTNV*wgx)*gpu.CeilDiv(d.M, RowsTM*wgy) < 4 {
		wgy /= 2
	}
	k, err := TNRowsKernel(dev, "matmul_tn_v11", RowsTM, RowsTNV, wgx, wgy, false)
	if err != nil {
		return err
	}
	pass := rowsPassLen
	if b := loopBudget(dev); b > 0 {
		pass = min(pass, b/4)
	}
	acc := 0
	if m.Accumulate {
		acc = 1
	}
	grid := [3]uint32{uint32(gpu.CeilDiv(d.N/4, RowsTNV*wgx)), uint32(gpu.CeilDiv(d.M, RowsTM*wgy)), 1}
	for row := 0; row == 0 || row < d.K; row += pass {
		params := []uint32{uint32(d.K), uint32(d.N), uint32(d.M), uint32(acc), uint32(row), uint32(pass)}
		if err := rec.Dispatch(k, grid, params, in[0], in[1], out[0]); err != nil {
			return err
		}
	}
	return nil
}

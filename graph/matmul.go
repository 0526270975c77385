package graph

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/shaders"
)

// MatMul computes C (+)= op(A)·op(B) for rank-2 or batched rank-3 f32
// operands, with op(X) = Xᵀ when the Trans flag is set. These are the three
// layouts a linear layer's forward and backward need (y = x·W, dx = dy·Wᵀ,
// dW = xᵀ·dy). A rank-2 operand next to a rank-3 one is shared by every
// batch (a weight). With Accumulate the op is an Accumulator: its last input
// is C's previous value and C += op(A)·op(B), as parameter gradients need.
// With Residual the last input is a residual R of C's shape and C = R +
// op(A)·op(B) (a new tensor; R is only read): the residual stream's add
// folded into the projection that feeds it (see FuseAccumulate).
type MatMul struct {
	TransA, TransB bool
	Accumulate     bool
	Residual       bool
	// Variant picks a kernel (see shaders/matmul.wgsl): 0 chooses for the
	// adapter, 1 naive, 2 register-blocked scalar, 3 register-blocked vec4,
	// 4 shared-memory tiled, 5 register-blocked vec4 with workgroup-uniform
	// A loads (A·B only), 6 the same with loops unrolled by a template, 7 A
	// read through uniform-buffer windows (A·B only, see encodeUBO), 8 B
	// read through uniform-buffer windows (A·Bᵀ only, see encodeNTUBO), 9
	// the operands copied or transposed into scratch in variant 7's form,
	// then 7 (see encodeTransposed; falls back to automatic where it
	// cannot apply), 11 Aᵀ·B as a sum over rows of A and B in passes of
	// 256 rows, 16×16 blocks of C per invocation (Aᵀ·B only, one batch, M
	// and N multiples of 4, K > 0; see encodeRows, autoRows), 12 A·Bᵀ one
	// row of C per invocation for a narrow C (one batch, N ≤ 16, K a multiple
	// of 4; see narrowOK), which a CPU adapter's automatic choice takes where
	// it would otherwise run variant 2.
	Variant int
	// Tile overrides the register-blocking of variants 2 and 3; zero fields
	// take the adapter's default.
	Tile MatMulTile
}

// MatMulTile is the per-invocation and per-workgroup blocking of the
// register-blocked kernels; the bench sweeps it per adapter.
type MatMulTile struct {
	TM  int // rows of C per invocation
	TNV int // vec4 columns of C per invocation (variant 3)
	WGX int // workgroup size along N
	WGY int // workgroup size along M
	// UniformA (variant 6) takes a workgroup's rows from its id alone, so A
	// loads are uniform across the workgroup; WGY is then 1.
	UniformA bool
	// Windows (variant 7) is how many 64 KiB uniform windows of A one
	// dispatch binds; each workgroup takes TM rows from each.
	Windows int
}

// DefaultMatMulTile is variant 3's blocking when none is given: 8 rows × 8
// columns per invocation in 8×8 workgroups. On lavapipe it beat 4×8 at
// 1024³ (18–19 against 13 GFLOP/s) and in whole training steps (about 15%
// faster for tiny-dense and small-dense).
var DefaultMatMulTile = MatMulTile{TM: 8, TNV: 2, WGX: 8, WGY: 8}

// DefaultUBOTile is variant 7's blocking: 16 rows × 16 columns per
// invocation, 16 invocations per workgroup, two 64 KiB windows of A per
// dispatch (the most lavapipe runs; see encodeUBO). On lavapipe on a 2-core
// AMD EPYC host two windows were 1.2–1.5× one at 1024×512×256 and
// 1024×256×512 (`moegpu bench kernels`, adjacent rows); one window had been
// the best at 512³ and 1024³ on a Xeon host. Long reductions take fewer
// rows (see uboTile).
var DefaultUBOTile = MatMulTile{TM: 16, TNV: 4, WGX: 16, WGY: 1, Windows: 2}

// Accumulates implements Accumulator.
func (m MatMul) Accumulates() bool { return m.Accumulate }

// Name implements Op.
func (m MatMul) Name() string {
	s := "matmul_"
	for _, t := range []bool{m.TransA, m.TransB} {
		if t {
			s += "t"
		} else {
			s += "n"
		}
	}
	if m.Accumulate {
		s += "_acc"
	}
	if m.Residual {
		s += "_res"
	}
	return s
}

// mmDims are the logical sizes of one matmul.
type mmDims struct {
	M, N, K, batch         int
	aBatch, bBatch, cBatch int // element strides between batches (0 = shared)
}

func (m MatMul) dims(a, b Spec) (mmDims, []int, error) {
	ra, rb := len(a.Shape), len(b.Shape)
	if ra < 2 || ra > 3 || rb < 2 || rb > 3 {
		return mmDims{}, nil, fmt.Errorf("want rank-2 or rank-3 operands, got A %v and B %v", a.Shape, b.Shape)
	}
	if a.DType != gpu.F32 || b.DType != gpu.F32 {
		return mmDims{}, nil, fmt.Errorf("want f32 operands, got A %s and B %s", a.DType, b.DType)
	}
	batch := 1
	if ra == 3 {
		batch = a.Shape[0]
	}
	if rb == 3 {
		if ra == 3 && b.Shape[0] != batch {
			return mmDims{}, nil, fmt.Errorf("batch sizes differ: A %v, B %v", a.Shape, b.Shape)
		}
		batch = b.Shape[0]
	}
	ar, ac := a.Shape[ra-2], a.Shape[ra-1]
	br, bc := b.Shape[rb-2], b.Shape[rb-1]
	M, Ka := ar, ac
	if m.TransA {
		M, Ka = ac, ar
	}
	Kb, N := br, bc
	if m.TransB {
		Kb, N = bc, br
	}
	if Ka != Kb {
		return mmDims{}, nil, fmt.Errorf("inner dimensions differ: op(A) is %d×%d, op(B) is %d×%d (A %v, B %v, transA=%v transB=%v)",
			M, Ka, Kb, N, a.Shape, b.Shape, m.TransA, m.TransB)
	}
	d := mmDims{M: M, N: N, K: Ka, batch: batch, cBatch: M * N}
	if ra == 3 {
		d.aBatch = ar * ac
	}
	if rb == 3 {
		d.bBatch = br * bc
	}
	out := []int{M, N}
	if ra == 3 || rb == 3 {
		out = []int{batch, M, N}
	}
	return d, out, nil
}

// Outputs implements Op.
func (m MatMul) Outputs(in []Spec) ([]Spec, error) {
	n := 2
	if m.Accumulate && m.Residual {
		return nil, fmt.Errorf("a matmul cannot both accumulate and add a residual")
	}
	if m.Accumulate || m.Residual {
		n = 3
	}
	if err := wantInputs(in, n); err != nil {
		return nil, err
	}
	_, out, err := m.dims(in[0], in[1])
	if err != nil {
		return nil, err
	}
	if m.Accumulate && (in[2].DType != gpu.F32 || numel(in[2].Shape) != numel(out)) {
		return nil, fmt.Errorf("accumulator %s does not match output f32%v", in[2], out)
	}
	if m.Residual && (in[2].DType != gpu.F32 || !slices.Equal(in[2].Shape, out)) {
		return nil, fmt.Errorf("residual %s does not match output f32%v", in[2], out)
	}
	return []Spec{F32(out...)}, nil
}

// Reference implements Op.
func (m MatMul) Reference(in []*Host) ([]*Host, error) {
	d, out, err := m.dims(in[0].Spec, in[1].Spec)
	if err != nil {
		return nil, err
	}
	c := NewHost(F32(out...))
	if m.Accumulate || m.Residual {
		copy(c.Data, in[2].Data)
	}
	A, B := in[0].Data, in[1].Data
	aRows, bRows := in[0].Shape[len(in[0].Shape)-1], in[1].Shape[len(in[1].Shape)-1] // row lengths
	for bt := 0; bt < d.batch; bt++ {
		for i := 0; i < d.M; i++ {
			for j := 0; j < d.N; j++ {
				s := 0.0
				for k := 0; k < d.K; k++ {
					var av, bv float64
					if m.TransA {
						av = A[bt*d.aBatch+k*aRows+i]
					} else {
						av = A[bt*d.aBatch+i*aRows+k]
					}
					if m.TransB {
						bv = B[bt*d.bBatch+j*bRows+k]
					} else {
						bv = B[bt*d.bBatch+k*bRows+j]
					}
					s += av * bv
				}
				c.Data[bt*d.cBatch+i*d.N+j] += s
			}
		}
	}
	return []*Host{c}, nil
}

// narrowOK reports whether variant 12 can run: A·Bᵀ, one batch, at most
// narrowMaxN columns of C, K a multiple of 4.
func (m MatMul) narrowOK(d mmDims) bool {
	return !m.TransA && m.TransB && d.batch == 1 && d.N <= narrowMaxN && d.K%4 == 0 && d.K > 0
}

// narrowMaxN is the widest C variant 12 computes: one invocation holds a
// row of C in registers.
const narrowMaxN = 16

// vec4OK reports whether variant 3 can run this layout and these sizes.
func (m MatMul) vec4OK(d mmDims) bool {
	switch {
	case !m.TransA && !m.TransB:
		return d.K%4 == 0 && d.N%4 == 0
	case m.TransA && !m.TransB:
		return d.M%4 == 0 && d.N%4 == 0
	case !m.TransA && m.TransB:
		return d.K%4 == 0 && d.N%4 == 0
	}
	return false
}

// uniformOK reports whether u can be bound as a uniform buffer next to
// others: WebGPU forbids binding one GPU buffer as uniform and as storage in
// the same dispatch (the other operand or the output, e.g. views of one
// arena), and a window's offset must meet the uniform alignment.
func uniformOK(dev *gpu.Device, u *gpu.Buffer, others ...*gpu.Buffer) bool {
	if u == nil {
		return false
	}
	for _, o := range others {
		if o != nil && u.SameMemory(o) {
			return false
		}
	}
	return u.Offset()%uint64(max(1, dev.Limits.MinUniformBufferOffsetAlignment)) == 0
}

func (m MatMul) variant(dev *gpu.Device, d mmDims, a, b, c *gpu.Buffer) int {
	// The uniform-window variants step aside where their uniform operand
	// cannot be bound so (see uniformOK).
	v := m.Variant
	if v == 0 {
		v = 3
		if loopBudget(dev) > 0 {
			// A·B reads A through uniform windows.
			if !m.TransA && !m.TransB {
				v = 7
			}
			// A·Bᵀ (a linear layer's forward, B the weight) reads B through
			// uniform windows where the reduction is long (1.5× v3 at
			// K = 1024 and 2048 on lavapipe) or the product large (where
			// variant 9, see autoTransposed, cannot run); not for small
			// products with short reductions, as in decoding, where the
			// windows' dispatches would dominate.
			if m.TransB && !m.TransA && (d.K >= 1024 || bigEnoughForUBO(d)) {
				v = 8
			}
		}
	}
	if v == 8 && (!uniformOK(dev, b, a, c) || !m.ntUBOOK(dev, d)) {
		v = 3
	}
	if v == 7 && (!uniformOK(dev, a, b, c) || !m.uboOK(dev, d)) {
		v = 3
	}
	if (v == 5 || v == 6) && (m.TransA || m.TransB) {
		v = 3
	}
	if (v == 3 || v == 5 || v == 6) && !m.vec4OK(d) {
		v = 2
		// A router's logits (N = experts, not a multiple of 4): variant 2
		// reads A lane by lane, 2.3 GFLOP/s at ocr-small's prefill
		// (10496×128×9 on lavapipe), and narrowing its workgroup did not help.
		if m.Variant == 0 && loopBudget(dev) > 0 && m.narrowOK(d) {
			v = 12
		}
	}
	if v == 12 && !m.narrowOK(d) {
		v = 2
	}
	return v
}

func (m MatMul) tile(variant int) MatMulTile {
	t := DefaultMatMulTile
	if variant == 7 {
		t = DefaultUBOTile
	}
	if m.Tile.TM > 0 {
		t.TM = m.Tile.TM
	}
	if m.Tile.TNV > 0 {
		t.TNV = m.Tile.TNV
	}
	if m.Tile.WGX > 0 {
		t.WGX = m.Tile.WGX
	}
	if m.Tile.WGY > 0 {
		t.WGY = m.Tile.WGY
	}
	if m.Tile.Windows > 0 {
		t.Windows = m.Tile.Windows
	}
	t.UniformA = t.UniformA || m.Tile.UniformA
	return t
}

// uboTile is variant 7's tile for a reduction length K: with no explicit
// TM, the rows per invocation shrink (to a multiple of 4) until one 64 KiB
// window of A holds them, so long reductions keep the uniform path.
func (m MatMul) uboTile(dev *gpu.Device, K int) MatMulTile {
	t := m.tile(7)
	if m.Tile.TM == 0 && K > 0 {
		fit := int(dev.Limits.MaxUniformBufferBindingSize) / (K * 4) / 4 * 4
		if fit >= 4 && fit < t.TM {
			t.TM = fit
		}
		// From K = 768 a window holds about 16 rows: 8 rows from each of
		// two windows were 1.3–1.9× 16 rows from them at K = 768 and 1024
		// (a small-dense step's down projection and weight gradients,
		// lavapipe on a 2-core AMD EPYC host).
		if K >= 768 {
			t.TM = min(t.TM, 8)
		}
	}
	return t
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func u(x int) string { return strconv.Itoa(x) + "u" }

// residualOr is what the register-blocked kernels bind as R: the
// residual input when there is one, else A (bound, never read).
func residualOr(in []*gpu.Buffer) *gpu.Buffer {
	if len(in) > 2 {
		return in[2]
	}
	return in[0]
}

// encodeResidualApart records C = R + op(A)·op(B) for kernels that do not
// read R: a copy of R into C, then the accumulating product.
func (m MatMul) encodeResidualApart(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	if err := (Scale{Factor: 1}).Encode(dev, rec, in[2:3], out); err != nil {
		return err
	}
	m.Residual, m.Accumulate = false, true
	return m.Encode(dev, rec, in[:2], out)
}

// Encode implements Op.
func (m MatMul) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	d, _, err := m.dims(Spec{in[0].DType, in[0].Shape}, Spec{in[1].DType, in[1].Shape})
	if err != nil {
		return err
	}
	if d.M == 0 || d.N == 0 || d.batch == 0 {
		return nil
	}
	acc := uint32(0)
	if m.Accumulate {
		acc = 1
	}
	if m.Variant == 11 || (m.Variant == 0 && m.autoRows(dev, d)) {
		if m.Residual {
			return m.encodeResidualApart(dev, rec, in, out)
		}
		return m.encodeRows(dev, rec, d, in, out)
	}
	auto := m.Variant == 0 && m.autoTransposed(dev, d, in[0], in[1], out[0])
	if m.Residual {
		// Only the register-blocked kernels read R in their store.
		if v := m.variant(dev, d, in[0], in[1], out[0]); auto || m.Variant == 9 || (v != 3 && v != 5 && v != 12) {
			return m.encodeResidualApart(dev, rec, in, out)
		}
		acc = 2
	}
	// Variant 9 is also chosen automatically for a training step's
	// matmuls on CPU adapters (see autoTransposed); its copies share the
	// recording's scratch pools.
	if (auto || m.Variant == 9) && d.batch == 1 {
		if done, err := m.encodeTransposed(dev, rec, d, in, out, m.Variant == 9); done || err != nil {
			return err
		}
	}
	if m.Variant == 9 {
		m.Variant = 0
	}
	v := m.variant(dev, d, in[0], in[1], out[0])
	t := m.tile(v)
	// Each invocation loops over K (K/4 for the vec4 variants, K/16 for
	// the tiled one); keep that under the CPU compiler's loop budget.
	if b := loopBudget(dev); b > 0 {
		trips := map[int]int{1: d.K, 2: d.K, 4: d.K / 16}[v]
		if trips == 0 {
			trips = d.K / 4
			if m.TransA {
				trips = d.K
			}
		}
		if trips > b {
			// A weight gradient over more rows than the budget: variant 11
			// sums them in passes.
			if m.rowsOK(d) && !m.Residual {
				return m.encodeRows(dev, rec, d, in, out)
			}
			if v != 3 && m.vec4OK(d) && !m.TransA && d.K/4 <= b {
				m.Variant = 3
				return m.Encode(dev, rec, in, out)
			}
			return overBudget(dev, m.Name()+fmt.Sprintf(" with K=%d", d.K), trips)
		}
	}
	switch v {
	case 8:
		return m.encodeNTUBO(dev, rec, d, m.ntTile(dev, d.K), in, out)
	case 7:
		return m.encodeUBO(dev, rec, d, m.uboTile(dev, d.K), in, out)
	case 6:
		if t.UniformA {
			t.WGX, t.WGY = t.WGX*t.WGY, 1
		}
		name := fmt.Sprintf("%s_v6_%dx%d_wg%dx%d_u%v", m.Name(), t.TM, 4*t.TNV, t.WGX, t.WGY, t.UniformA)
		src, err := shaders.Template("matmul_unrolled", struct {
			TM, TNV, WGX, WGY int
			UniformA          bool
			Rows, Cols        []int
		}{t.TM, t.TNV, t.WGX, t.WGY, t.UniformA, seq(t.TM), seq(t.TNV)})
		if err != nil {
			return err
		}
		k, err := dev.Kernel(gpu.KernelSpec{Name: name, Source: src, Entry: "mm_nn_unrolled",
			Bindings: []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, Params: true})
		if err != nil {
			return err
		}
		rowsPerWG := t.TM * t.WGY
		grid := [3]uint32{uint32(gpu.CeilDiv(d.N/4, t.TNV*t.WGX)), uint32(gpu.CeilDiv(d.M, rowsPerWG)), uint32(d.batch)}
		p := []uint32{uint32(d.M), uint32(d.N), uint32(d.K), uint32(d.batch),
			uint32(d.aBatch / 4), uint32(d.bBatch / 4), uint32(d.cBatch / 4), acc}
		return rec.Dispatch(k, grid, p, in[0], in[1], out[0])
	case 5:
		k, err := dev.Kernel(gpu.KernelSpec{
			Name: fmt.Sprintf("%s_v5_%dx%d", m.Name(), t.TM, 4*t.TNV), Source: shaderText("matmul_vec4"), Entry: "mm_nn4u",
			Bindings: []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.Read}, Params: true,
			Constants: map[string]string{"WGX": u(t.WGX * t.WGY), "WGY": "1u", "TM": u(t.TM), "TNV": u(t.TNV)},
		})
		if err != nil {
			return err
		}
		grid := [3]uint32{uint32(gpu.CeilDiv(d.N/4, t.TNV*t.WGX*t.WGY)), uint32(gpu.CeilDiv(d.M, t.TM)), uint32(d.batch)}
		p := []uint32{uint32(d.M), uint32(d.N), uint32(d.K), uint32(d.batch),
			uint32(d.aBatch / 4), uint32(d.bBatch / 4), uint32(d.cBatch / 4), acc}
		return rec.Dispatch(k, grid, p, in[0], in[1], out[0], residualOr(in))
	case 3:
		if t.TM%4 != 0 && m.TransA {
			t.TM = 4
		}
		entry := map[[2]bool]string{{false, false}: "mm_nn4", {true, false}: "mm_tn4", {false, true}: "mm_nt4"}[[2]bool{m.TransA, m.TransB}]
		k, err := dev.Kernel(gpu.KernelSpec{
			Name: fmt.Sprintf("%s_v3_%dx%d", m.Name(), t.TM, 4*t.TNV), Source: shaderText("matmul_vec4"), Entry: entry,
			Bindings: []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.Read}, Params: true,
			Constants: map[string]string{"WGX": u(t.WGX), "WGY": u(t.WGY), "TM": u(t.TM), "TNV": u(t.TNV)},
		})
		if err != nil {
			return err
		}
		grid := [3]uint32{uint32(gpu.CeilDiv(d.N/4, t.TNV*t.WGX)), uint32(gpu.CeilDiv(d.M, t.TM*t.WGY)), uint32(d.batch)}
		p := []uint32{uint32(d.M), uint32(d.N), uint32(d.K), uint32(d.batch),
			uint32(d.aBatch / 4), uint32(d.bBatch / 4), uint32(d.cBatch / 4), acc}
		return rec.Dispatch(k, grid, p, in[0], in[1], out[0], residualOr(in))
	case 12:
		const wg = 64
		k, err := dev.Kernel(gpu.KernelSpec{
			Name: fmt.Sprintf("%s_v12_n%d", m.Name(), d.N), Source: shaderText("matmul_narrow"), Entry: "mm_nt_narrow",
			Bindings: []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite, gpu.Read}, Params: true,
			Constants: map[string]string{"WG": u(wg), "NN": u(d.N)},
		})
		if err != nil {
			return err
		}
		p := []uint32{uint32(d.M), uint32(d.N), uint32(d.K), acc}
		return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(d.M, wg)), p, in[0], in[1], out[0], residualOr(in))
	case 1, 2, 4:
		// Strides of op(A) as (m, k) and op(B) as (k, n).
		aRow := in[0].Shape[len(in[0].Shape)-1]
		bRow := in[1].Shape[len(in[1].Shape)-1]
		asm, ask := aRow, 1
		if m.TransA {
			asm, ask = 1, aRow
		}
		bsk, bsn := bRow, 1
		if m.TransB {
			bsk, bsn = 1, bRow
		}
		p := []uint32{uint32(d.M), uint32(d.N), uint32(d.K), uint32(d.batch),
			uint32(asm), uint32(ask), uint32(bsk), uint32(bsn),
			uint32(d.aBatch), uint32(d.bBatch), uint32(d.cBatch), acc}
		entry, consts := "mm_naive", map[string]string{"WGX": u(t.WGX), "WGY": u(t.WGY)}
		grid := [3]uint32{uint32(gpu.CeilDiv(d.N, t.WGX)), uint32(gpu.CeilDiv(d.M, t.WGY)), uint32(d.batch)}
		switch v {
		case 2:
			entry = "mm_rb"
			consts["TM"] = u(t.TM)
			grid = [3]uint32{uint32(gpu.CeilDiv(d.N, 4*t.WGX)), uint32(gpu.CeilDiv(d.M, t.TM*t.WGY)), uint32(d.batch)}
		case 4:
			entry = "mm_tiled"
			consts = map[string]string{"WGX": "16u", "WGY": "16u", "TS": "16u"}
			grid = [3]uint32{uint32(gpu.CeilDiv(d.N, 16)), uint32(gpu.CeilDiv(d.M, 16)), uint32(d.batch)}
		}
		k, err := dev.Kernel(gpu.KernelSpec{
			Name: fmt.Sprintf("%s_v%d", m.Name(), v), Source: shaderText("matmul"), Entry: entry,
			Bindings: []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, Params: true, Constants: consts,
		})
		if err != nil {
			return err
		}
		return rec.Dispatch(k, grid, p, in[0], in[1], out[0])
	}
	return fmt.Errorf("unknown matmul variant %d", v)
}

// MatMulF16 is the inference matmul C (+)= A·B with f32 activations A
// (M, K) or (batch, M, K) and f16 weights B (K, N), accumulating in f32.
// Halves are stored packed and widened in the kernel, so it runs on every
// adapter. K and N must be multiples of 4; otherwise Encode returns an error
// wrapping gpu.ErrUnsupported so callers fall back to f32 weights.
type MatMulF16 struct {
	// TransB takes the weights as (N, K), the Hugging Face (out, in)
	// layout of a linear layer, computing A·Bᵀ.
	TransB     bool
	Accumulate bool
	Tile       MatMulTile
}

// Name implements Op.
func (m MatMulF16) Name() string {
	if m.TransB {
		return "matmul_nt_f16"
	}
	return "matmul_nn_f16"
}

// Accumulates implements Accumulator.
func (m MatMulF16) Accumulates() bool { return m.Accumulate }

// Outputs implements Op.
func (m MatMulF16) Outputs(in []Spec) ([]Spec, error) {
	n := 2
	if m.Accumulate {
		n = 3
	}
	if err := wantInputs(in, n); err != nil {
		return nil, err
	}
	if in[1].DType != gpu.F16 {
		return nil, fmt.Errorf("weights must be f16, got %s", in[1].DType)
	}
	f32b := in[1]
	f32b.DType = gpu.F32
	return MatMul{TransB: m.TransB, Accumulate: m.Accumulate}.Outputs([]Spec{in[0], f32b, inOr(in, 2)}[:n])
}

func inOr(in []Spec, i int) Spec {
	if i < len(in) {
		return in[i]
	}
	return Spec{}
}

// Reference implements Op: the f16 weights are exact in float64.
func (m MatMulF16) Reference(in []*Host) ([]*Host, error) {
	b := *in[1]
	b.DType = gpu.F32
	ins := append([]*Host{in[0], &b}, in[2:]...)
	return MatMul{TransB: m.TransB, Accumulate: m.Accumulate}.Reference(ins)
}

// Encode implements Op.
func (m MatMulF16) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	d, _, err := MatMul{TransB: m.TransB}.dims(Spec{gpu.F32, in[0].Shape}, Spec{gpu.F32, in[1].Shape})
	if err != nil {
		return err
	}
	if m.TransB && d.bBatch != 0 {
		return fmt.Errorf("f16 matmul: batched weights are not supported: %w", gpu.ErrUnsupported)
	}
	if d.K%4 != 0 || d.N%4 != 0 {
		return fmt.Errorf("f16 matmul needs K and N multiples of 4, got K=%d N=%d: %w", d.K, d.N, gpu.ErrUnsupported)
	}
	if d.M == 0 || d.batch == 0 {
		return nil
	}
	t := MatMul{Tile: m.Tile}.tile(3)
	acc := uint32(0)
	if m.Accumulate {
		acc = 1
	}
	entry := "mm_nn4_f16"
	if m.TransB {
		entry = "mm_nt4_f16"
	}
	k, err := dev.Kernel(gpu.KernelSpec{
		Name: fmt.Sprintf("%s_%dx%d", m.Name(), t.TM, 4*t.TNV), Source: shaderText("matmul_f16"), Entry: entry,
		Bindings: []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, Params: true,
		Constants: map[string]string{"WGX": u(t.WGX), "WGY": u(t.WGY), "TM": u(t.TM), "TNV": u(t.TNV)},
	})
	if err != nil {
		return err
	}
	grid := [3]uint32{uint32(gpu.CeilDiv(d.N/4, t.TNV*t.WGX)), uint32(gpu.CeilDiv(d.M, t.TM*t.WGY)), uint32(d.batch)}
	p := []uint32{uint32(d.M), uint32(d.N), uint32(d.K), uint32(d.batch),
		uint32(d.aBatch / 4), uint32(d.bBatch / 4), uint32(d.cBatch / 4), acc}
	return rec.Dispatch(k, grid, p, in[0], in[1], out[0])
}

// Backward implements Differentiable for C = op(A)·op(B) (the four layouts
// map onto each other; see the table in the code). A rank-2 operand shared
// across a batch would need a sum over the batch; the runtime keeps
// activations rank-2 (tokens, features) and does not build that case.
func (m MatMul) Backward(g *Graph, n *Node, dOut []*Tensor) []*Tensor {
	a, b, dc := n.In[0], n.In[1], dOut[0]
	if len(a.Shape) != len(b.Shape) {
		g.fail(fmt.Errorf("matmul backward: a shared rank-2 operand next to a batched one is not supported (A %v, B %v)", a.Shape, b.Shape))
		return []*Tensor{nil, nil}
	}
	var da, db *Tensor
	switch {
	case !m.TransA && !m.TransB: // C = A·B
		da = g.Apply1(MatMul{TransB: true}, dc, b) // dC·Bᵀ
		db = g.Apply1(MatMul{TransA: true}, a, dc) // Aᵀ·dC
	case m.TransA && !m.TransB: // C = Aᵀ·B, A stored (K, M)
		da = g.Apply1(MatMul{TransB: true}, b, dc) // B·dCᵀ
		db = g.Apply1(MatMul{}, a, dc)             // A·dC
	case !m.TransA && m.TransB: // C = A·Bᵀ, B stored (N, K)
		da = g.Apply1(MatMul{}, dc, b)             // dC·B
		db = g.Apply1(MatMul{TransA: true}, dc, a) // dCᵀ·A
	default: // C = Aᵀ·Bᵀ
		da = g.Apply1(MatMul{TransA: true, TransB: true}, b, dc) // Bᵀ·dCᵀ
		db = g.Apply1(MatMul{TransA: true, TransB: true}, dc, a) // dCᵀ·Aᵀ
	}
	out := []*Tensor{da, db}
	if m.Accumulate || m.Residual {
		out = append(out, dc) // the previous value or the residual: dC itself
	}
	return out
}

// uboRows is how many rows of A one 64 KiB uniform window holds, rounded
// down to whole row blocks of tm.
func uboRows(dev *gpu.Device, K, tm int) int {
	r := int(dev.Limits.MaxUniformBufferBindingSize) / (K * 4)
	return r / tm * tm
}

// uboOK reports whether variant 7 can run: A·B, one batch, vec4-aligned
// sizes, at least one row block per window, window offsets aligned.
func (m MatMul) uboOK(dev *gpu.Device, d mmDims) bool {
	t := m.uboTile(dev, d.K)
	if m.TransA || m.TransB || d.batch != 1 || !m.vec4OK(d) || d.K == 0 {
		return false
	}
	rows := uboRows(dev, d.K, t.TM)
	align := int(dev.Limits.MinUniformBufferOffsetAlignment)
	return rows >= t.TM && (d.K*4)%align == 0
}

// encodeUBO records one dispatch per group of t.Windows uniform windows of
// A, each window rows·K·4 ≤ 64 KiB. A window that would reach past row M is
// shifted back to end at M (rows already stored are skipped through the
// per-window store range), so every binding stays inside A.
func (m MatMul) encodeUBO(dev *gpu.Device, rec *gpu.Recorder, d mmDims, t MatMulTile, in, out []*gpu.Buffer) error {
	wgx := t.WGX * t.WGY
	rows := uboRows(dev, d.K, t.TM)
	if rows > d.M { // a window may not reach past A: shrink to whole blocks
		rows = d.M / t.TM * t.TM
	}
	// One workgroup per dispatch would leave all but one CPU thread idle
	// (N = 256 at K = 1536: 8 rows per window): narrower column blocks
	// give two. At 1024×256×1536 on lavapipe, 27 against 16 GFLOP/s.
	for m.Tile.TNV == 0 && t.TNV > 1 && gpu.CeilDiv(d.N/4, t.TNV*wgx)*(rows/t.TM) < 2 {
		t.TNV /= 2
	}
	// Lanes past the last column idle, and on a CPU driver (a workgroup's
	// invocations are SIMD lanes) an idle lane costs as much as a busy one:
	// narrow the workgroup to the columns there are. At N = 128 (16 columns
	// per invocation: 8 of 16 lanes busy) on lavapipe, x·Wᵀ with 10496 and
	// 1184 rows, K = 128 and 384, ran 1.4–2.0× faster with 8 lanes
	// (BenchmarkMatMulNarrowColumns, four rounds).
	for m.Tile.WGX == 0 && wgx > 1 && wgx/2*t.TNV*4 >= d.N {
		wgx /= 2
	}
	if rows < t.TM { // M < TM: fall back
		m.Variant = 3
		return m.Encode(dev, rec, in, out)
	}
	// More than two windows crashed lavapipe (Mesa 22.3: "stack smashing
	// detected" with four uniform bindings), so two is the most used.
	nw := min(max(1, t.Windows), 2)
	if need := gpu.CeilDiv(d.M, rows); nw > need {
		nw = need
	}
	src, err := shaders.Template("matmul_ubo", struct {
		TM, TNV, WGX, Rows, AVec4, RowsPerLane int
		BBinding, CBinding, PBinding           int
		Rows0, Cols, Wins                      []int
	}{t.TM, t.TNV, wgx, rows, rows * d.K / 4, nw * t.TM, nw, nw + 1, nw + 2, seq(t.TM), seq(t.TNV), seq(nw)})
	if err != nil {
		return err
	}
	bindings := make([]gpu.Access, nw, nw+2)
	for i := range bindings {
		bindings[i] = gpu.Uniform
	}
	bindings = append(bindings, gpu.Read, gpu.ReadWrite)
	name := fmt.Sprintf("matmul_nn_v7_%dx%dx%d_w%d", nw, t.TM, 4*t.TNV, rows)
	if wgx != DefaultUBOTile.WGX*DefaultUBOTile.WGY {
		name += fmt.Sprintf("_g%d", wgx)
	}
	k, err := dev.Kernel(gpu.KernelSpec{Name: name, Source: src, Entry: "mm_nn_ubo",
		Bindings: bindings, Params: true})
	if err != nil {
		return err
	}
	acc := uint32(0)
	if m.Accumulate {
		acc = 1
	}
	grid := [3]uint32{uint32(gpu.CeilDiv(d.N/4, t.TNV*wgx)), uint32(rows / t.TM), 1}
	return dispatchWindows(rec, k, grid, []uint32{uint32(d.M), uint32(d.N), uint32(d.K), acc}, in[0], d.M, d.K, rows, nw, in[1], out[0])
}

// DefaultNTUBOTile is variant 8's blocking: each invocation computes 8 rows
// of A (TM) against 16 rows of B (4·TNV) in each of two uniform windows,
// 16 invocations per workgroup, so every A element loaded feeds 32 FMAs.
// On lavapipe on a 2-core AMD EPYC host, at a small-dense step's shapes
// (1024 rows; K = 256, 768, 1536), two windows were 1.5–1.7× one window of
// 8 B rows, and 16 B rows a further 1.2–1.4× where a window holds them
// (K ≤ 1024; longer reductions halve TNV until it fits, see ntTile). One
// window of 8 had been 1.5× variant 3 at 512×512×2048 and 1024³ on a Xeon
// host, where 4×8 and 4×16 were slower.
var DefaultNTUBOTile = MatMulTile{TM: 8, TNV: 4, WGX: 16, WGY: 1, Windows: 2}

// ntTile is variant 8's tile: TM rows of A per invocation, 4·TNV rows of B
// per workgroup and window.
func (m MatMul) ntTile(dev *gpu.Device, K int) MatMulTile {
	t := DefaultNTUBOTile
	if m.Tile.TM > 0 {
		t.TM = m.Tile.TM
	}
	if m.Tile.TNV > 0 {
		t.TNV = m.Tile.TNV
	}
	if m.Tile.WGX > 0 {
		t.WGX = m.Tile.WGX * max(1, m.Tile.WGY)
	}
	if m.Tile.Windows > 0 {
		t.Windows = m.Tile.Windows
	}
	// Long reductions: fewer B rows per block, so a window still holds one.
	for m.Tile.TNV == 0 && K > 0 && t.TNV > 1 && uboRows(dev, K, 4*t.TNV) < 4*t.TNV {
		t.TNV /= 2
	}
	return t
}

// ntUBOOK reports whether variant 8 can run: A·Bᵀ, one batch, K%4 = 0,
// window offsets aligned, and at least one block of B rows per window.
func (m MatMul) ntUBOOK(dev *gpu.Device, d mmDims) bool {
	t := m.ntTile(dev, d.K)
	if m.TransA || !m.TransB || d.batch != 1 || d.K%4 != 0 || d.K == 0 {
		return false
	}
	tn := 4 * t.TNV
	rows := uboRows(dev, d.K, tn)
	align := int(dev.Limits.MinUniformBufferOffsetAlignment)
	return rows >= tn && d.N >= tn && (d.K*4)%align == 0
}

// encodeNTUBO records one dispatch per group of windows of B rows (columns
// of C); a window that would reach past row N of B is shifted back to end
// there, and the per-window column range skips what an earlier window
// stored.
func (m MatMul) encodeNTUBO(dev *gpu.Device, rec *gpu.Recorder, d mmDims, t MatMulTile, in, out []*gpu.Buffer) error {
	tn := 4 * t.TNV
	rows := uboRows(dev, d.K, tn)
	if rows > d.N {
		rows = d.N / tn * tn
	}
	nw := min(max(1, t.Windows), 2, gpu.CeilDiv(d.N, rows))
	src, err := shaders.Template("matmul_nt_ubo", struct {
		TMR, TN, WGX, Rows, BVec4    int
		ABinding, CBinding, PBinding int
		RowsA, RowsB, Wins           []int
	}{t.TM, tn, t.WGX, rows, rows * d.K / 4, nw, nw + 1, nw + 2, seq(t.TM), seq(tn), seq(nw)})
	if err != nil {
		return err
	}
	bindings := make([]gpu.Access, nw, nw+2)
	for i := range bindings {
		bindings[i] = gpu.Uniform
	}
	bindings = append(bindings, gpu.Read, gpu.ReadWrite)
	k, err := dev.Kernel(gpu.KernelSpec{Name: fmt.Sprintf("matmul_nt_v8_%dx%dx%d_w%d", nw, t.TM, tn, rows), Source: src, Entry: "mm_nt_ubo",
		Bindings: bindings, Params: true})
	if err != nil {
		return err
	}
	acc := uint32(0)
	if m.Accumulate {
		acc = 1
	}
	grid := [3]uint32{uint32(gpu.CeilDiv(d.M, t.TM*t.WGX)), uint32(rows / tn), 1}
	return dispatchWindows(rec, k, grid, []uint32{uint32(d.M), uint32(d.N), uint32(d.K), acc}, in[1], d.N, d.K, rows, nw, in[0], out[0])
}

// dispatchWindows records one dispatch per group of nw uniform windows over
// the rows of src, a (total, K) matrix, each window `rows` rows. The window
// buffers come first, then rest; the parameters are head followed by, per
// window, (first row of the window, first row to store, end row, 0). A
// window that would reach past the last row is shifted back to end there
// (its leading rows were stored by the previous window), and a window past
// the end stores nothing, so every binding stays inside src.
func dispatchWindows(rec *gpu.Recorder, k *gpu.Kernel, grid [3]uint32, head []uint32, src *gpu.Buffer, total, K, rows, nw int, rest ...*gpu.Buffer) error {
	for start := 0; start < total; start += nw * rows {
		p := append([]uint32(nil), head...)
		bufs := make([]*gpu.Buffer, 0, nw+len(rest))
		for w := 0; w < nw; w++ {
			from := start + w*rows
			base := min(from, total-rows)
			to := min(from+rows, total)
			if from >= total {
				from, to = total, total
			}
			win, err := src.View(src.Name+".rows", gpu.F32, uint64(base*K*4), rows, K)
			if err != nil {
				return err
			}
			bufs = append(bufs, win)
			p = append(p, uint32(base), uint32(from), uint32(to), 0)
		}
		if err := rec.Dispatch(k, grid, p, append(bufs, rest...)...); err != nil {
			return err
		}
	}
	return nil
}

// bigEnoughForUBO reports whether a CPU adapter's automatic choice reads a
// matmul's operands through uniform windows at any reduction length: at
// least 64 rows of C and 2²⁴ multiply-adds, so a small-dense training step's
// matmuls (1024 token rows, d = 256) do, but neither decoding's (a few
// rows) nor tiny models' (768×64×128), where the windows' extra dispatches
// and transposes cost more than they save.
func bigEnoughForUBO(d mmDims) bool {
	return d.M >= 64 && d.M*d.N*d.K >= 1<<24
}

// autoTransposed reports whether the automatic choice takes variant 9 for
// this matmul: on CPU adapters (where storage loads at per-lane addresses
// are scalar loops and uniform-buffer loads are broadcasts), for one batch,
// a product bigEnoughForUBO and sizes variant 7 can run. It does for Aᵀ·B
// and A·Bᵀ (the operand that is transposed goes through scratch) and for
// A·B where A cannot be bound as uniform next to B and C (A is copied);
// never for Aᵀ·Bᵀ. A training step's forward x·Wᵀ, weight gradient Aᵀ·B
// and input gradient A·B (A and C in one arena) all take it. On lavapipe on
// a 2-core AMD EPYC host, at a small-dense step's shapes, every layout then
// ran at 0.79–1.12× A·B's GFLOP/s (`moegpu bench kernels --filter
// small-dense`, Vulkan and GL), against 0.63–0.79× when the forward ran
// variant 8 and transposes moved one element per invocation. The cost is
// scratch memory: the largest copied A and the largest transposed operand
// (see encodeTransposed).
func (m MatMul) autoTransposed(dev *gpu.Device, d mmDims, a, b, c *gpu.Buffer) bool {
	if loopBudget(dev) == 0 || d.batch != 1 || !bigEnoughForUBO(d) ||
		!(MatMul{Variant: 7, Tile: m.Tile}).uboOK(dev, mmDims{M: d.M, N: d.N, K: d.K, batch: 1}) {
		return false
	}
	switch {
	case m.TransA && m.TransB:
		return false
	case !m.TransA && !m.TransB:
		return !uniformOK(dev, a, b, c)
	}
	return true
}

// encodeTransposed (variant 9) brings a product into variant 7's form on a
// CPU driver, where v7 (A read through uniform windows, B as vec4 rows) is
// the fastest kernel: A as (M, K) rows in a buffer of its own, B as (K, N)
// rows. Operands that are not already so go through the recording's shared
// scratch pools ("matmul.a", "matmul.b"):
//
//	op(A) = Aᵀ:                                  A transposed into scratch
//	op(A) = A sharing a buffer with B or C (an
//	arena), or at an unaligned offset:           A copied into scratch
//	op(B) = Bᵀ:                                  B transposed into scratch
//
// With copyA (variant 9 asked for by name) A is copied even where it could
// be bound as it is, so a benchmark on separate buffers times what a
// training step runs. It reports whether it encoded the product (not for
// Aᵀ·Bᵀ, nor where v7 cannot run these sizes).
func (m MatMul) encodeTransposed(dev *gpu.Device, rec *gpu.Recorder, d mmDims, in, out []*gpu.Buffer, copyA bool) (bool, error) {
	op := MatMul{Variant: 7, Accumulate: m.Accumulate, Tile: m.Tile}
	if (m.TransA && m.TransB) || !op.uboOK(dev, mmDims{M: d.M, N: d.N, K: d.K, batch: 1}) {
		return false, nil
	}
	a, b := in[0], in[1]
	var err error
	if m.TransB {
		if b, err = intoScratch(dev, rec, "matmul.b", b, true); err != nil {
			return false, err
		}
	}
	if m.TransA || copyA || !uniformOK(dev, a, b, out[0]) {
		if a, err = intoScratch(dev, rec, "matmul.a", a, m.TransA); err != nil {
			return false, err
		}
	}
	return true, op.Encode(dev, rec, []*gpu.Buffer{a, b}, out)
}

// intoScratch records a copy of the rank-2 matrix src (transposed when
// transpose is set; else a buffer copy, gpu.Recorder.Copy) into the
// recording's shared scratch pool and returns the copy.
func intoScratch(dev *gpu.Device, rec *gpu.Recorder, pool string, src *gpu.Buffer, transpose bool) (*gpu.Buffer, error) {
	rows, cols := src.Shape[len(src.Shape)-2], src.Shape[len(src.Shape)-1]
	flat, err := src.View(src.Name+".2d", gpu.F32, 0, rows, cols)
	if err != nil {
		return nil, err
	}
	if !transpose {
		t, err := rec.Shared(pool, src.Name+".copy", gpu.F32, rows, cols)
		if err != nil {
			return nil, err
		}
		return t, rec.Copy(flat, t) // a buffer copy: on lavapipe a memcpy, 5× a copy kernel's speed
	}
	t, err := rec.Shared(pool, src.Name+".T", gpu.F32, cols, rows)
	if err != nil {
		return nil, err
	}
	return t, (Transpose{}).Encode(dev, rec, []*gpu.Buffer{flat}, []*gpu.Buffer{t})
}

package moe

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/shaders"
)

// RowAlign (declared in doc.go) is the alignment of expert segments the
// grouped kernels rely on: a block of RowAlign rows never holds two experts,
// so an invocation's rows share one expert's weight.

// GroupedMatMul multiplies each expert's contiguous block of rows by that
// expert's weight: the expert matmul of a mixture-of-experts layer after
// tokens are permuted into expert-contiguous order.
//
// Inputs:
//   - x (R, K) f32: rows in expert-contiguous order.
//   - w: with TransW (E, N, K) f32, each expert's weight in the Hugging Face
//     (out, in) layout, y = x·W_eᵀ; without, (E, K, N) f32, y = x·W_e.
//   - seg (2·E) u32: seg[2e] is the first row of expert e (a multiple of
//     RowAlign), seg[2e+1] its row count. Segments ascend with e and do not
//     overlap; start+count ≤ R; a count may be 0.
//
// Output y (R, N) f32: rows inside expert e's segment hold x_row·W_eᵀ (or
// x_row·W_e); every other row (padding between segments, rows past the
// last one) is written as 0, whatever x holds there.
//
// The GPU never reads seg back: grids cover all R rows and workgroups whose
// rows lie outside every segment write zeros and exit. The reference checks
// seg and returns an error for a malformed one; on the GPU a malformed seg
// gives undefined values (stores stay inside y and dW; a segment reaching
// past R reads what the adapter's bounds checks give).
//
// A weight stack larger than one storage binding (BindingLimit, else the
// adapter's maxStorageBufferBindingSize) is split into views of whole
// experts at offsets the adapter can bind, one dispatch per view; an expert
// larger than one binding, or a stack with no bindable split, is refused
// with an error wrapping gpu.ErrUnsupported. x and y must each fit one
// binding. On llvmpipe a reduction K over the loop budget is refused the
// same way (graph.OverBudget).
type GroupedMatMul struct {
	// Experts is E, the number of experts in w and seg.
	Experts int
	// TransW selects the (E, N, K) weight layout (y = x·W_eᵀ); otherwise
	// (E, K, N) (y = x·W_e).
	TransW bool
	// BindingLimit lowers the largest weight binding, in bytes, below the
	// adapter's maxStorageBufferBindingSize when > 0 (tests use it to force
	// splits).
	BindingLimit uint64
	// Variant picks the kernel (shaders/moe_grouped.wgsl): 0 automatic (3
	// where K and N are multiples of 4, else 1); 1 one output element per
	// invocation (any sizes); 3 register-blocked, 8 rows × 8 columns per
	// invocation, vec4 storage loads (K % 4 = 0, N % 4 = 0, else 1); 7 a
	// workgroup's 8 rows of x read through a 64 KiB uniform window, 8
	// columns per invocation, one dispatch per window, rows after the last
	// full window by 3 (K % 8 = 0, at least 8 rows of x per window, x in a
	// GPU buffer that w, seg and y are not in, else 3: in a training graph
	// x and y share the activation arena, so 3 runs there); 9 (TransW
	// only) W transposed into a scratch (E, K, N) stack, one view at a time,
	// then variant 3's y = x·W_e kernel, whose lanes read consecutive
	// columns of a W_e row where the x·W_eᵀ kernel's read one row each (a
	// CPU driver gathers those lane by lane); else 3. Not chosen
	// automatically: at ocr-small's training shape (8 experts of 128, top-2,
	// 1184 tokens) it ran at 16.4 GFLOP/s against variant 3's 15.0 in one
	// `moegpu bench kernels --filter moe_grouped` run on lavapipe, within
	// this host's run-to-run noise. 10 (shaders/moe_grouped_ubo.wgsl.tmpl)
	// x read through two uniform windows as graph.MatMul's variant 7 reads
	// A, workgroups of two 8-row blocks per window and 16 columns per
	// invocation, run as one dense tile where all blocks share an expert;
	// x copied out of an arena, a TransW weight transposed into scratch;
	// rows after the last full window by 3 (K % 4 = 0, N % 4 = 0, at least
	// 16 rows, else 3). Chosen automatically on a CPU driver (graph.LoopBudget
	// > 0) from 64 rows and 2²⁴ multiply-adds: at ocr-small's prefill shape
	// (10496 tokens, top-2 of 8 experts of 128, hidden 128) it ran the
	// forward at 17.2 GFLOP/s against variant 3's 14.0 and the dense x·Wᵀ's
	// 20.7 in one BenchmarkGroupedAtOCRPrefill run on lavapipe. Variants 2
	// and 4–6 are not used (numbers follow graph.MatMul's).
	Variant int
}

// GroupedWeightGrad is the weight gradient of GroupedMatMul: per expert,
// the sum over that expert's rows only of the outer products of dy and x.
//
// Inputs: dy (R, N) f32, x (R, K) f32, seg (2·E) u32 as in GroupedMatMul.
// Output dW: with TransW (E, N, K), dW_e = dy_eᵀ·x_e; without, (E, K, N),
// dW_e = x_eᵀ·dy_e, where dy_e and x_e are the rows of expert e's segment.
// Rows outside every segment never contribute, even if x or dy hold NaN
// there; an expert with no rows gets a zero gradient.
//
// Segments longer than the loop budget of llvmpipe are summed in passes
// (one dispatch per pass, later passes adding), so R up to 65536 rows and
// beyond works. dW larger than one binding is split into views of whole
// experts as in GroupedMatMul.
type GroupedWeightGrad struct {
	// Experts is E.
	Experts int
	// TransW selects the (E, N, K) output layout; otherwise (E, K, N).
	TransW bool
	// BindingLimit lowers the largest dW binding in bytes when > 0.
	BindingLimit uint64
	// Variant picks the kernel: 0 automatic (4 where dW_e has at least
	// 64 rows and 64 columns, else 3, each only where both dimensions are
	// multiples of 4, else 1); 1 one element of dW per invocation; 3
	// register-blocked, 8 rows × 8 columns of dW_e per invocation with vec4
	// loads; 4 as 3 with 16 rows × 16 columns and the per-invocation loops
	// unrolled by a template (shaders/matmul_tn_rows.wgsl.tmpl).
	Variant int
	// Single (with Experts 1) gives dW the rank-2 shape of a dense weight,
	// (N, K) or (K, N): the gradient of a shared expert's weight, which
	// GroupedMatMul reads as a stack of one without a reshape.
	Single bool
}

// grouped kernel tiles: 8 rows (RowAlign) × 2 vec4 columns per invocation,
// 8×8 invocations per workgroup, as graph.DefaultMatMulTile; the uniform
// window kernels run 16 invocations of 8 rows × 8 columns.
const (
	grpTM, grpTNV, grpWGX, grpWGY = 8, 2, 8, 8
	grpUboTN, grpUboWGX           = 8, 16
	grpScalarWGX, grpScalarWGY    = 16, 4
)

// Name implements graph.Op.
func (m GroupedMatMul) Name() string {
	if m.TransW {
		return "moe_grouped_nt"
	}
	return "moe_grouped_nn"
}

// Name implements graph.Op.
func (m GroupedWeightGrad) Name() string {
	if m.TransW {
		return "moe_grouped_wgrad_nt"
	}
	return "moe_grouped_wgrad_nn"
}

// checkGroupedSeg validates the segment input's spec.
func checkGroupedSeg(s graph.Spec, experts int) error {
	if experts < 1 {
		return fmt.Errorf("want at least 1 expert, got %d", experts)
	}
	if err := graph.WantRank("seg", s, 1, gpu.U32); err != nil {
		return err
	}
	if s.Shape[0] != 2*experts {
		return fmt.Errorf("seg: want (2·experts) = (%d), got %v", 2*experts, s.Shape)
	}
	return nil
}

// dims returns R, K, N.
func (m GroupedMatMul) dims(in []graph.Spec) (R, K, N int, err error) {
	if err := graph.WantInputs(in, 3); err != nil {
		return 0, 0, 0, err
	}
	if err := graph.WantRank("x", in[0], 2, gpu.F32); err != nil {
		return 0, 0, 0, err
	}
	ws := in[1].Shape
	if len(ws) == 2 && m.Experts == 1 { // a dense weight: a stack of one
		if err := graph.WantRank("w", in[1], 2, gpu.F32); err != nil {
			return 0, 0, 0, err
		}
		ws = append([]int{1}, ws...)
	} else if err := graph.WantRank("w", in[1], 3, gpu.F32); err != nil {
		return 0, 0, 0, err
	}
	if err := checkGroupedSeg(in[2], m.Experts); err != nil {
		return 0, 0, 0, err
	}
	R, K = in[0].Shape[0], in[0].Shape[1]
	wk, wn := ws[1], ws[2]
	layout := "(E, K, N)"
	if m.TransW {
		wn, wk = ws[1], ws[2]
		layout = "(E, N, K)"
	}
	if ws[0] != m.Experts || wk != K {
		return 0, 0, 0, fmt.Errorf("w: want %s with E = %d and K = %d (x is %v), got %v", layout, m.Experts, K, in[0].Shape, ws)
	}
	return R, K, wn, nil
}

// Outputs implements graph.Op.
func (m GroupedMatMul) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	R, _, N, err := m.dims(in)
	if err != nil {
		return nil, err
	}
	return []graph.Spec{graph.F32(R, N)}, nil
}

// groupedSegments reads and checks seg on the host (the reference's view).
func groupedSegments(seg *graph.Host, experts, rows int) ([][2]int, error) {
	out := make([][2]int, experts)
	end := 0
	for e := range out {
		s, c := int(seg.Data[2*e]), int(seg.Data[2*e+1])
		switch {
		case s%RowAlign != 0:
			return nil, fmt.Errorf("seg: expert %d starts at row %d, not a multiple of RowAlign %d", e, s, RowAlign)
		case s+c > rows:
			return nil, fmt.Errorf("seg: expert %d's rows [%d, %d) pass the %d rows of x", e, s, s+c, rows)
		case c > 0 && s < end:
			return nil, fmt.Errorf("seg: expert %d starts at row %d, inside an earlier expert's rows (ending at %d)", e, s, end)
		}
		if c > 0 {
			end = s + c
		}
		out[e] = [2]int{s, c}
	}
	return out, nil
}

// Reference implements graph.Op.
func (m GroupedMatMul) Reference(in []*graph.Host) ([]*graph.Host, error) {
	R, K, N, err := m.dims([]graph.Spec{in[0].Spec, in[1].Spec, in[2].Spec})
	if err != nil {
		return nil, err
	}
	segs, err := groupedSegments(in[2], m.Experts, R)
	if err != nil {
		return nil, err
	}
	x, w := in[0].Data, in[1].Data
	y := graph.NewHost(graph.F32(R, N))
	for e, sc := range segs {
		wb := e * N * K
		for r := sc[0]; r < sc[0]+sc[1]; r++ {
			for n := 0; n < N; n++ {
				s := 0.0
				for k := 0; k < K; k++ {
					if m.TransW {
						s += x[r*K+k] * w[wb+n*K+k]
					} else {
						s += x[r*K+k] * w[wb+k*N+n]
					}
				}
				y.Data[r*N+n] = s
			}
		}
	}
	return []*graph.Host{y}, nil
}

// Backward implements graph.Differentiable: dx = GroupedMatMul{TransW:
// !TransW}(dy, w, seg) (the same weights read the other way round), dw =
// GroupedWeightGrad{TransW}(dy, x, seg); seg gets no gradient.
func (m GroupedMatMul) Backward(g *graph.Graph, n *graph.Node, dOut []*graph.Tensor) []*graph.Tensor {
	x, w, seg, dy := n.In[0], n.In[1], n.In[2], dOut[0]
	dx := g.Apply1(GroupedMatMul{Experts: m.Experts, TransW: !m.TransW, BindingLimit: m.BindingLimit}, dy, w, seg)
	dw := g.Apply1(GroupedWeightGrad{Experts: m.Experts, TransW: m.TransW, BindingLimit: m.BindingLimit, Single: len(w.Shape) == 2}, dy, x, seg)
	return []*graph.Tensor{dx, dw, nil}
}

// groupedView is one binding of a weight stack: experts [e0, e1).
type groupedView struct {
	e0, e1 int
	buf    *gpu.Buffer
}

// splitGroupedWeights cuts the (E, …) stack b, perExpert elements per expert, into
// views of whole experts, each at most limit bytes and at an offset the
// adapter can bind. A stack that fits is returned whole.
func splitGroupedWeights(dev *gpu.Device, b *gpu.Buffer, experts, perExpert int, limit uint64, what string) ([]groupedView, error) {
	if dl := dev.Limits.MaxStorageBufferBindingSize; limit == 0 || limit > dl {
		limit = dl
	}
	eb := uint64(perExpert) * 4
	if uint64(experts)*eb <= limit {
		return []groupedView{{0, experts, b}}, nil
	}
	if eb > limit {
		return nil, fmt.Errorf("%s: one expert's %d bytes exceed the %d-byte storage binding limit: %w", what, eb, limit, gpu.ErrUnsupported)
	}
	align := uint64(max(1, dev.Limits.MinStorageBufferOffsetAlignment))
	aligned := func(e int) bool { return (b.Offset()+uint64(e)*eb)%align == 0 }
	var views []groupedView
	for e0 := 0; e0 < experts; {
		e1 := min(experts, e0+int(limit/eb))
		for e1 < experts && e1 > e0 && !aligned(e1) {
			e1--
		}
		if e1 == e0 {
			return nil, fmt.Errorf("%s: %d experts of %d bytes need several bindings of at most %d bytes, but no split point between experts %d and %d is at a multiple of the adapter's %d-byte storage offset alignment: %w",
				what, experts, eb, limit, e0, min(experts, e0+int(limit/eb)), align, gpu.ErrUnsupported)
		}
		v, err := b.View(fmt.Sprintf("%s[%d:%d]", b.Name, e0, e1), gpu.F32, uint64(e0)*eb, (e1-e0)*perExpert)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		views = append(views, groupedView{e0, e1, v})
		e0 = e1
	}
	return views, nil
}

// groupedWG is the workgroup shape of the register-blocked kernels for
// cols invocations along the output columns: 8×8, narrowed along x (and
// deepened along y) while half of x would idle, since a CPU driver runs
// a workgroup's consecutive invocations as SIMD lanes and idle lanes cost
// as much as busy ones (N = 32: the forward took about 30% less CPU
// time at 4×16 on lavapipe).
func groupedWG(cols int) (wgx, wgy int) {
	wgx = grpWGX
	for wgx > 1 && wgx/2 >= cols {
		wgx /= 2
	}
	return wgx, grpWGX * grpWGY / wgx
}

// groupedKernel compiles one entry point of shaders/moe_grouped.wgsl from
// the part of the file it needs (groupedSource). The file declares several
// views of one binding (x as f32, as vec4 and as a uniform window); that is
// valid WGSL, but each pipeline's module then carries exactly one variable
// per binding, of the kind its layout declares.
func groupedKernel(dev *gpu.Device, entry, name string, bindings []gpu.Access, params bool, consts map[string]string) (*gpu.Kernel, error) {
	src, err := groupedSource(entry)
	if err != nil {
		return nil, err
	}
	return dev.Kernel(gpu.KernelSpec{Name: name, Source: src, Entry: entry, Bindings: bindings, Params: params, Constants: consts})
}

var groupedBindingRe = regexp.MustCompile(`^@group\(0\) @binding\(\d+\) var<[^>]*> (\w+):`)

// groupedSources holds groupedSource's results by entry point: every
// grouped matmul of every graph asks for one, and the cut costs regexp
// matches over the whole file (0.14 s of CPU time when the OCR decoders of
// two batch sizes were built, in a profile).
var groupedSources sync.Map

// groupedSource is the part of shaders/moe_grouped.wgsl one entry point
// needs: the header (constants, Params, the bindings the entry's body
// names, the helpers, which read seg and p) and the entry itself.
func groupedSource(entry string) (string, error) {
	if s, ok := groupedSources.Load(entry); ok {
		return s.(string), nil
	}
	s, err := cutGroupedSource(entry)
	if err != nil {
		return "", err
	}
	groupedSources.Store(entry, s)
	return s, nil
}

// cutGroupedSource is groupedSource without the cache.
func cutGroupedSource(entry string) (string, error) {
	src, err := shaders.Source("moe_grouped")
	if err != nil {
		return "", err
	}
	first := strings.Index(src, "@compute")
	i := strings.Index(src, "fn "+entry+"(")
	if first < 0 || i < 0 {
		return "", fmt.Errorf("moe_grouped.wgsl has no entry point %s", entry)
	}
	i = strings.LastIndex(src[:i], "@compute")
	body := src[i:]
	if j := strings.Index(body, "\n}\n"); j >= 0 {
		body = body[:j+3]
	}
	var out strings.Builder
	for _, line := range strings.SplitAfter(src[:first], "\n") {
		if m := groupedBindingRe.FindStringSubmatch(line); m != nil && m[1] != "seg" && m[1] != "p" &&
			!regexp.MustCompile(`\b`+m[1]+`\[`).MatchString(body) {
			continue
		}
		out.WriteString(line)
	}
	out.WriteString(body)
	return out.String(), nil
}

func groupedU(x int) string { return strconv.Itoa(x) + "u" }

// groupedParams is the Params block of shaders/moe_grouped.wgsl.
type groupedParams struct {
	rows, n, k, experts, e0, e1, zeroPad, rowLo, rowHi, passRow, passLen, wN, wK, winBase, winFrom, winTo, stride int
}

func (p groupedParams) words() []uint32 {
	v := []int{p.rows, p.n, p.k, p.experts, p.e0, p.e1, p.zeroPad, p.rowLo, p.rowHi, p.passRow, p.passLen, p.wN, p.wK, p.winBase, p.winFrom, p.winTo, p.stride}
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = uint32(x)
	}
	return out
}

func groupedFlag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// groupedWindow is how many rows of x (a multiple of RowAlign) one uniform
// window holds, or 0 when variant 7 cannot run.
func groupedWindow(dev *gpu.Device, x, w, seg, y *gpu.Buffer, R, K, N int) int {
	// WebGPU forbids binding x's GPU buffer as uniform while any view of it
	// is bound as storage in the same dispatch.
	if K == 0 || K%8 != 0 || N%4 != 0 || x.SameMemory(w) || x.SameMemory(seg) || x.SameMemory(y) {
		return 0
	}
	ua := uint64(max(1, dev.Limits.MinUniformBufferOffsetAlignment))
	if x.Offset()%ua != 0 || uint64(RowAlign*K*4)%ua != 0 {
		return 0
	}
	rows := int(dev.Limits.MaxUniformBufferBindingSize) / (K * 4) / RowAlign * RowAlign
	if rows > R/RowAlign*RowAlign {
		rows = R / RowAlign * RowAlign
	}
	if rows < RowAlign {
		return 0
	}
	return rows
}

func (m GroupedMatMul) variant(K, N int, win int) int {
	v := m.Variant
	if v == 0 {
		// v3 everywhere: on an idle lavapipe at ggml's MUL_MAT_ID shape
		// (16 experts, top-4, 1024², 512 tokens) v3 ran the forward at
		// 12.5–17.5 GFLOP/s against v7's 7.9–15.4 in the same runs; for the
		// input gradient the two were within noise (v3 12.7–14.8, v7
		// 7.1–16.2). v7 had measured ahead only on a heavily loaded machine.
		v = 3
	}
	if v == 10 { // taken in Encode where x's rows can be windowed (windowRows)
		v = 3
	}
	if v == 7 && win == 0 {
		v = 3
	}
	if v == 9 && (!m.TransW || K%4 != 0 || N%4 != 0) {
		v = 3
	}
	if v == 3 && (K%4 != 0 || N%4 != 0) {
		v = 1
	}
	return v
}

// Encode implements graph.Op.
func (m GroupedMatMul) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	x, w, seg, y := in[0], in[1], in[2], out[0]
	R, K, N, err := m.dims([]graph.Spec{{DType: x.DType, Shape: x.Shape}, {DType: w.DType, Shape: w.Shape}, {DType: seg.DType, Shape: seg.Shape}})
	if err != nil {
		return err
	}
	if R == 0 || N == 0 {
		return nil
	}
	views, err := splitGroupedWeights(dev, w, m.Experts, N*K, m.BindingLimit, m.Name()+" weights")
	if err != nil {
		return err
	}
	win := groupedWindow(dev, x, w, seg, y, R, K, N)
	v := m.variant(K, N, win)
	if (m.Variant == 10 || m.Variant == 0 && graph.LoopBudget(dev) > 0 && R >= grpWindowMinRows && R*N*K >= 1<<24) && K%4 == 0 && N%4 == 0 &&
		windowRows(dev, R, K) > 0 {
		v = 10
	}
	// Each invocation scans seg (E trips) and loops over K (K/4 for the
	// vec4 kernels): keep that under llvmpipe's loop budget.
	if b := graph.LoopBudget(dev); b > 0 {
		if v == 1 && m.Experts+K > b && K%4 == 0 && N%4 == 0 {
			v = 3
		}
		trips := m.Experts + K/4
		if v == 1 {
			trips = m.Experts + K
		}
		if trips > b {
			return graph.OverBudget(dev, fmt.Sprintf("%s variant %d with K=%d and %d experts", m.Name(), v, K, m.Experts), trips)
		}
	}
	wgx, wgy := groupedWG(gpu.CeilDiv(N/4, grpTNV))
	consts := map[string]string{"WGX": groupedU(wgx), "WGY": groupedU(wgy), "TM": groupedU(grpTM), "TNV": groupedU(grpTNV)}
	bind := []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}
	base := groupedParams{rows: R, n: N, k: K, experts: m.Experts, rowLo: 0, rowHi: R}
	// storage records the storage-only kernel (v1, v3, or v9: v3's x·W_e
	// kernel on each weight view transposed into the shared scratch pool
	// "moe.weights_t", which serves the views in turn since each dispatch
	// reads its view's transpose before the next one is written) over rows
	// [lo, hi).
	storage := func(v, lo, hi int) error {
		var k *gpu.Kernel
		var err error
		var grid [3]uint32
		p := base
		p.rowLo, p.rowHi = lo, hi
		switch v {
		case 1:
			p.wN, p.wK = 1, N
			if m.TransW {
				p.wN, p.wK = K, 1
			}
			k, err = groupedKernel(dev, "gmm_1", "moe_grouped_v1", bind, true,
				map[string]string{"WGX": groupedU(grpScalarWGX), "WGY": groupedU(grpScalarWGY)})
			grid = [3]uint32{gpu.CeilDiv32(N, grpScalarWGX), gpu.CeilDiv32(hi-lo, grpScalarWGY), 1}
		default:
			entry, name := "gmm_nn4", GroupedMatMul{}.Name()
			if m.TransW && v != 9 {
				entry, name = "gmm_nt4", m.Name()
			}
			k, err = groupedKernel(dev, entry, fmt.Sprintf("%s_v3_%dx%d_wg%dx%d", name, grpTM, 4*grpTNV, wgx, wgy), bind, true, consts)
			grid = [3]uint32{gpu.CeilDiv32(N/4, grpTNV*wgx), gpu.CeilDiv32(hi-lo, grpTM*wgy), 1}
			p.stride = coprimeStride(int(grid[1]))
		}
		if err != nil {
			return err
		}
		for i, vw := range views {
			wv := vw.buf
			if v == 9 {
				if wv, err = transposedView(dev, rec, vw, N, K); err != nil {
					return err
				}
			}
			p.e0, p.e1, p.zeroPad = vw.e0, vw.e1, groupedFlag(i == 0)
			if err := rec.Dispatch(k, grid, p.words(), x, wv, seg, y); err != nil {
				return err
			}
		}
		return nil
	}
	if v == 10 {
		full, err := m.encodeWindows(dev, rec, x, views, seg, y, R, K, N)
		if err != nil {
			return err
		}
		if full < R {
			return storage(3, full, R)
		}
		return nil
	}
	if v != 7 {
		return storage(v, 0, R)
	}
	// Variant 7: one dispatch per full window of x rows (and weight view);
	// the rows after the last full window go to variant 3.
	entry, c := "gmm_nn_ubo", map[string]string{"WGX": groupedU(grpUboWGX), "TM": groupedU(grpTM), "TNV": groupedU(grpTNV), "XV4": groupedU(win * K / 4)}
	cols := gpu.CeilDiv(N/4, grpTNV*grpUboWGX)
	if m.TransW {
		entry, c = "gmm_nt_ubo", map[string]string{"WGX": groupedU(grpUboWGX), "TM": groupedU(grpTM), "TN": groupedU(grpUboTN), "XV4": groupedU(win * K / 4)}
		cols = gpu.CeilDiv(N, grpUboTN*grpUboWGX)
	}
	k, err := groupedKernel(dev, entry, fmt.Sprintf("%s_v7_w%dx%d", m.Name(), win, K), []gpu.Access{gpu.Uniform, gpu.Read, gpu.Read, gpu.ReadWrite}, true, c)
	if err != nil {
		return err
	}
	full := R / win * win
	grid := [3]uint32{uint32(cols), uint32(win / grpTM), 1}
	for start := 0; start < full; start += win {
		xw, err := x.View(x.Name+".rows", gpu.F32, uint64(start*K*4), win, K)
		if err != nil {
			return err
		}
		for i, vw := range views {
			p := base
			p.e0, p.e1, p.zeroPad = vw.e0, vw.e1, groupedFlag(i == 0)
			p.winBase, p.winFrom, p.winTo = start, start, start+win
			if err := rec.Dispatch(k, grid, p.words(), xw, vw.buf, seg, y); err != nil {
				return err
			}
		}
	}
	if full < R {
		vt := 3
		if K%4 != 0 || N%4 != 0 {
			vt = 1
		}
		return storage(vt, full, R)
	}
	return nil
}

// Variant 10's blocking: each workgroup takes grpWinTM rows (two blocks of
// RowAlign) from each of two 64 KiB uniform windows of x, each invocation
// grpWinTNV vec4 columns, grpWinWGX invocations per workgroup: graph.MatMul's
// variant 7 tile (graph.DefaultUBOTile), 128 FMAs per W element loaded.
const grpWinTM, grpWinTNV, grpWinWGX, grpWinWindows = 16, 4, 16, 2

// windowRows is how many rows of x one variant-10 uniform window holds (a
// multiple of grpWinTM, at most R rounded down to one), or 0 when x's rows
// cannot be windowed: fewer than grpWinTM rows, or window offsets the
// adapter cannot bind as uniform.
func windowRows(dev *gpu.Device, R, K int) int {
	if K == 0 {
		return 0
	}
	rows := int(dev.Limits.MaxUniformBufferBindingSize) / (K * 4) / grpWinTM * grpWinTM
	if rows > R/grpWinTM*grpWinTM {
		rows = R / grpWinTM * grpWinTM
	}
	ua := uint64(max(1, dev.Limits.MinUniformBufferOffsetAlignment))
	if rows < grpWinTM || uint64(rows*K*4)%ua != 0 {
		return 0
	}
	return rows
}

// encodeWindows records variant 10 over the full windows of x's rows and
// returns the rows it covers (a multiple of the window); the caller runs
// the rest with variant 3. x is copied into the scratch pool "moe.x" when
// it cannot be bound as uniform beside w, seg and y (an activation arena),
// and a TransW weight view is transposed into "moe.weights_t" (W_e as
// (K, N), so lanes read consecutive columns), one view at a time: each
// view's dispatches read its transpose before the next view's is written.
func (m GroupedMatMul) encodeWindows(dev *gpu.Device, rec *gpu.Recorder, x *gpu.Buffer, views []groupedView, seg, y *gpu.Buffer, R, K, N int) (int, error) {
	rows := windowRows(dev, R, K)
	full := R / rows * rows
	ua := uint64(max(1, dev.Limits.MinUniformBufferOffsetAlignment))
	shared := x.SameMemory(seg) || x.SameMemory(y)
	for _, vw := range views {
		shared = shared || x.SameMemory(vw.buf)
	}
	if shared || x.Offset()%ua != 0 {
		flat, err := x.View(x.Name+".2d", gpu.F32, 0, R, K)
		if err != nil {
			return 0, err
		}
		copied, err := rec.Shared("moe.x", x.Name+".copy", gpu.F32, R, K)
		if err != nil {
			return 0, err
		}
		if err := rec.Copy(flat, copied); err != nil {
			return 0, err
		}
		x = copied
	}
	tnv, wgx := grpWinTNV, grpWinWGX
	// Lanes past the last column idle, and a CPU driver runs a workgroup's
	// invocations as SIMD lanes, so an idle lane costs as much as a busy
	// one: narrow the workgroup to the columns there are (as graph.MatMul's
	// variant 7 does).
	for wgx > 1 && wgx/2*tnv*4 >= N {
		wgx /= 2
	}
	nw := min(grpWinWindows, full/rows)
	src, err := shaders.Template("moe_grouped_ubo", struct {
		TM, TNV, WGX, AVec4, RowsPerLane, Blocks int
		WBinding, SegBinding, YBinding, PBinding int
		Rows0, Cols, Wins, BlockRows             []int
	}{grpWinTM, tnv, wgx, rows * K / 4, nw * grpWinTM, nw * grpWinTM / RowAlign,
		nw, nw + 1, nw + 2, nw + 3, seqN(grpWinTM, 1), seqN(tnv, 1), seqN(nw, 1), seqN(grpWinTM/RowAlign, RowAlign)})
	if err != nil {
		return 0, err
	}
	bind := make([]gpu.Access, nw, nw+3)
	for i := range bind {
		bind[i] = gpu.Uniform
	}
	bind = append(bind, gpu.Read, gpu.Read, gpu.ReadWrite)
	k, err := dev.Kernel(gpu.KernelSpec{Name: fmt.Sprintf("%s_v10_%dx%dx%d_w%d_g%d", m.Name(), nw, grpWinTM, 4*tnv, rows, wgx),
		Source: src, Entry: "gmm_nn_ubo2", Bindings: bind, Params: true})
	if err != nil {
		return 0, err
	}
	grid := [3]uint32{gpu.CeilDiv32(N/4, tnv*wgx), uint32(rows / grpWinTM), 1}
	for i, vw := range views {
		wv := vw.buf
		if m.TransW {
			if wv, err = transposedView(dev, rec, vw, N, K); err != nil {
				return 0, err
			}
		}
		for start := 0; start < full; start += nw * rows {
			words := []uint32{uint32(R), uint32(N), uint32(K), uint32(m.Experts), uint32(vw.e0), uint32(vw.e1), uint32(groupedFlag(i == 0)), 0}
			bufs := make([]*gpu.Buffer, 0, nw+3)
			for w := 0; w < nw; w++ {
				base, from, to := start+w*rows, start+w*rows, start+(w+1)*rows
				if from >= full { // an odd last window: bind the first, store nothing
					base, from, to = 0, R, R
				}
				win, err := x.View(x.Name+".rows", gpu.F32, uint64(base*K*4), rows, K)
				if err != nil {
					return 0, err
				}
				bufs = append(bufs, win)
				words = append(words, uint32(base), uint32(from), uint32(to), 0)
			}
			if err := rec.Dispatch(k, grid, words, append(bufs, wv, seg, y)...); err != nil {
				return 0, err
			}
		}
	}
	return full, nil
}

// transposedView records the transpose of a (E', N, K) weight view into the recording's
// shared scratch pool "moe.weights_t" as (E', K, N) and returns it: variants 9 and 10 read
// W_e along N. The pool serves the views in turn (each view's dispatches read its transpose
// before the next view's is written).
func transposedView(dev *gpu.Device, rec *gpu.Recorder, vw groupedView, N, K int) (*gpu.Buffer, error) {
	ne := vw.e1 - vw.e0
	w3, err := vw.buf.View(vw.buf.Name+".3d", gpu.F32, 0, ne, N, K)
	if err != nil {
		return nil, err
	}
	wt, err := rec.Shared("moe.weights_t", vw.buf.Name+".T", gpu.F32, ne, K, N)
	if err != nil {
		return nil, err
	}
	return wt, (graph.Transpose{}).Encode(dev, rec, []*gpu.Buffer{w3}, []*gpu.Buffer{wt})
}

// seqN is n values from 0 in steps of step.
func seqN(n, step int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i * step
	}
	return s
}

// wgDims returns R, P, Q (dW_e is P×Q) and the output shape.
func (m GroupedWeightGrad) wgDims(in []graph.Spec) (R, P, Q int, err error) {
	if err := graph.WantInputs(in, 3); err != nil {
		return 0, 0, 0, err
	}
	if err := graph.WantRank("dy", in[0], 2, gpu.F32); err != nil {
		return 0, 0, 0, err
	}
	if err := graph.WantRank("x", in[1], 2, gpu.F32); err != nil {
		return 0, 0, 0, err
	}
	if err := checkGroupedSeg(in[2], m.Experts); err != nil {
		return 0, 0, 0, err
	}
	if in[0].Shape[0] != in[1].Shape[0] {
		return 0, 0, 0, fmt.Errorf("dy %v and x %v have different row counts", in[0].Shape, in[1].Shape)
	}
	R, N, K := in[0].Shape[0], in[0].Shape[1], in[1].Shape[1]
	if m.TransW {
		return R, N, K, nil
	}
	return R, K, N, nil
}

// Outputs implements graph.Op.
func (m GroupedWeightGrad) Outputs(in []graph.Spec) ([]graph.Spec, error) {
	_, P, Q, err := m.wgDims(in)
	if err != nil {
		return nil, err
	}
	if m.Single {
		if m.Experts != 1 {
			return nil, fmt.Errorf("a rank-2 weight gradient needs one expert, got %d", m.Experts)
		}
		return []graph.Spec{graph.F32(P, Q)}, nil
	}
	return []graph.Spec{graph.F32(m.Experts, P, Q)}, nil
}

// Reference implements graph.Op.
func (m GroupedWeightGrad) Reference(in []*graph.Host) ([]*graph.Host, error) {
	R, P, Q, err := m.wgDims([]graph.Spec{in[0].Spec, in[1].Spec, in[2].Spec})
	if err != nil {
		return nil, err
	}
	segs, err := groupedSegments(in[2], m.Experts, R)
	if err != nil {
		return nil, err
	}
	a, b := in[0].Data, in[1].Data // A (R, P), B (R, Q)
	if !m.TransW {
		a, b = b, a
	}
	dw := graph.NewHost(graph.F32(m.Experts, P, Q))
	if m.Single {
		dw = graph.NewHost(graph.F32(P, Q))
	}
	for e, sc := range segs {
		for pp := 0; pp < P; pp++ {
			for q := 0; q < Q; q++ {
				s := 0.0
				for r := sc[0]; r < sc[0]+sc[1]; r++ {
					s += a[r*P+pp] * b[r*Q+q]
				}
				dw.Data[(e*P+pp)*Q+q] = s
			}
		}
	}
	return []*graph.Host{dw}, nil
}

// groupedPassRows is how many rows of a segment one weight-gradient pass sums
// on a device with a loop budget: a quarter of it, leaving room for loops
// a compiler does not unroll.
func groupedPassRows(dev *gpu.Device, R int) int {
	b := graph.LoopBudget(dev)
	if b == 0 {
		return max(R, 1)
	}
	return max(1, b/4)
}

// Encode implements graph.Op.
func (m GroupedWeightGrad) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	dy, x, seg, dw := in[0], in[1], in[2], out[0]
	R, P, Q, err := m.wgDims([]graph.Spec{{DType: dy.DType, Shape: dy.Shape}, {DType: x.DType, Shape: x.Shape}, {DType: seg.DType, Shape: seg.Shape}})
	if err != nil {
		return err
	}
	if P == 0 || Q == 0 {
		return nil
	}
	a, b := dy, x
	if !m.TransW {
		a, b = x, dy
	}
	views, err := splitGroupedWeights(dev, dw, m.Experts, P*Q, m.BindingLimit, m.Name()+" output")
	if err != nil {
		return err
	}
	v := m.Variant
	if v == 0 {
		v = 3
		if P >= grpWgAutoMin && Q >= grpWgAutoMin {
			v = 4
		}
	}
	if (v == 3 || v == 4) && (P%4 != 0 || Q%4 != 0) {
		v = 1
	}
	bind := []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}
	var k *gpu.Kernel
	var gx, gy int
	switch v {
	case 1:
		k, err = groupedKernel(dev, "gwg_1", "moe_grouped_wgrad_v1", bind, true,
			map[string]string{"WGX": groupedU(grpScalarWGX), "WGY": groupedU(grpScalarWGY)})
		gx, gy = gpu.CeilDiv(Q, grpScalarWGX), gpu.CeilDiv(P, grpScalarWGY)
	case 4:
		wgx, wgy := groupedWG(gpu.CeilDiv(Q/4, grpWgTNV))
		k, err = graph.TNRowsKernel(dev, "moe_grouped_wgrad_v4", grpWgTM, grpWgTNV, wgx, wgy, true)
		gx, gy = gpu.CeilDiv(Q/4, grpWgTNV*wgx), gpu.CeilDiv(P, grpWgTM*wgy)
	case 3:
		wgx, wgy := groupedWG(gpu.CeilDiv(Q/4, grpTNV))
		k, err = groupedKernel(dev, "gwg_tn4", fmt.Sprintf("moe_grouped_wgrad_v3_%dx%d_wg%dx%d", grpTM, 4*grpTNV, wgx, wgy), bind, true,
			map[string]string{"WGX": groupedU(wgx), "WGY": groupedU(wgy), "TM": groupedU(grpTM), "TMQ": groupedU(grpTM / 4), "TNV": groupedU(grpTNV)})
		gx, gy = gpu.CeilDiv(Q/4, grpTNV*wgx), gpu.CeilDiv(P, grpTM*wgy)
	default:
		return fmt.Errorf("%s: unknown variant %d", m.Name(), m.Variant)
	}
	if err != nil {
		return err
	}
	pass := groupedPassRows(dev, R)
	for _, vw := range views {
		for row := 0; row == 0 || row < R; row += pass {
			p := groupedParams{rows: R, n: Q, k: P, experts: m.Experts, e0: vw.e0, e1: vw.e1, passRow: row, passLen: pass}
			grid := [3]uint32{uint32(gx), uint32(gy), uint32(vw.e1 - vw.e0)}
			if err := rec.Dispatch(k, grid, p.words(), a, b, seg, vw.buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// coprimeStride is a stride near 0.618·n that is coprime with n (1 for
// n ≤ 2): multiplying workgroup row indices by it modulo n visits every row
// block once, in an order that mixes the grid's start (the experts' rows)
// with its end (the rows past the last expert). Without it, on lavapipe
// (which hands each thread a contiguous run of workgroups) the rows that
// skipped or dropped tokens leave empty all sat with one thread: at 50 %
// skip the FFN's CPU time fell 42 % and its wall time not at all.
func coprimeStride(n int) int {
	if n <= 2 {
		return 1
	}
	gcd := func(a, b int) int {
		for b != 0 {
			a, b = b, a%b
		}
		return a
	}
	s := max(2, n*618/1000)
	for gcd(s, n) != 1 {
		s++
	}
	return s
}

// grpWindowMinRows is the fewest rows (routed slots with their padding) for
// which a CPU adapter's automatic choice reads x through uniform windows
// (variant 10) rather than storage (variant 3). On lavapipe on a 2-core AMD
// EPYC host, at ocr-small's expert shapes (8 experts, top-2, K = 128; go
// test ./moe -run '^$' -bench 'GroupedAtOCR(Tokens|Prefill)' -benchtime 10x
// and an equivalent probe at N = 128 and 256, three runs), variant 10 took
// 0.74–0.81× variant 3's time at 10 496 tokens (about 21 000 rows:
// recognition's prefill of 256 lines), 0.76–1.06× at 4 736, 1.05–1.59× at
// 2 368 and 1.34–1.66× at 1 184 (a training step's 16 lines); at ggml's
// MUL_MAT_ID shape (512 tokens, top-4, 1024²) 1.15–1.6× (moegpu bench
// kernels --filter moe_grouped). A whole ocr-small training step ran
// 0.99–1.59× as fast with variant 3 (median 1.08×, eight alternating rounds
// of moegpu train --config ocr-small --task ocr --steps 12).
const grpWindowMinRows = 8192

// Variant 4's block of dW_e per invocation: grpWgTM rows × grpWgTNV vec4
// columns (16 × 16), so each row of the segment loads 8 vec4s for 256
// multiply-adds (variant 3: 4 for 64). On lavapipe on a 2-core AMD EPYC
// host (moegpu bench kernels --filter moe_grouped_dw, four runs) it took
// 0.60–0.70× variant 3's time at ocr-small's expert shape (8 experts of
// 128×128, top-2 of 1184 tokens) and 0.60–0.67× at 16 experts of
// 1024×1024, but 0.86–1.52× at 32×64, where 16×16 blocks leave few
// invocations: the automatic choice keeps variant 3 below 64×64. Blocks of
// 8 × 16 and 16 × 8 columns gained less at ocr-small's shape, 16 × 32 lost.
const grpWgTM, grpWgTNV = graph.RowsTM, graph.RowsTNV

// grpWgAutoMin is the smallest dW_e side at which the automatic choice takes
// variant 4 (see grpWgTM).
const grpWgAutoMin = 64

package graph_test

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// Tolerances, |gpu−ref| ≤ atol + rtol·|ref| against the float64 reference
// on f32-representable inputs (q, k ∈ [−2, 2], v ∈ [−1, 1], so scores reach
// a few units and o, a convex combination of v rows, lies in [−1, 1]):
var (
	// attnFwdTol: a score is an f32 dot product of dh ≤ 64 terms
	// (error ≲ dh·2⁻²⁴·Σ|q_d k_d|·scale ≈ 1e-6 absolute), exp adds a few
	// ulp, and o sums up to T ≈ 130 weighted rows (≲ 1e-6 relative to its
	// weights); lse = m + log Z ≲ 7 inherits the score error plus ~2 ulp.
	// Observed ≤ 3.2e-7 (o) and 8e-7 (lse, 1.2e-7 relative) on lavapipe and
	// llvmpipe GL; 2e-6 leaves room for GPUs' exp and log.
	attnFwdTol = optest.Tol{Atol: 2e-6, Rtol: 2e-6}
	// attnBwdTol: each gradient sums up to T·QH/KVH products of p_ij
	// (error as above) with dot-product differences do·v − D that cancel,
	// so the error is absolute, ~1e-6 times the gradient's scale (observed
	// ≤ 3.5e-6 for a dv of 3.8 summing 280 terms, ≤ 1.5e-6 elsewhere, on
	// lavapipe and llvmpipe GL); ds sums B·T terms (observed ≤ 3e-7).
	attnBwdTol = optest.Tol{Atol: 1e-5, Rtol: 1e-5}
	// attnExact: float64 against float64 (reference against the naive
	// masked-softmax oracle, decoding against full attention): only the
	// order of summation differs.
	attnExact = optest.Tol{Atol: 1e-12, Rtol: 1e-12}
)

// attnCase is one attention geometry.
type attnCase struct {
	b, t, qh, kvh, dh, w int
	sink                 bool
	p                    int // prefix (0 = causal)
}

func (c attnCase) op() graph.Attention {
	return graph.Attention{Batch: c.b, Seq: c.t, QHeads: c.qh, KVHeads: c.kvh, HeadDim: c.dh, Window: c.w, Sink: c.sink, Prefix: c.p}
}

func (c attnCase) String() string {
	s := fmt.Sprintf("B%d_T%d_qh%d_kvh%d_dh%d_W%d_sink%v", c.b, c.t, c.qh, c.kvh, c.dh, c.w, c.sink)
	if c.p > 0 {
		s += fmt.Sprintf("_P%d", c.p)
	}
	return s
}

// attnCases: T = 1, head dims 1/3/17/64 (scalar and vec4 rows) and the
// largest (128: one row per invocation), GQA 4:2
// and 2:1, windows of 1 (self only), smaller than T and larger than T,
// rows spanning several workgroups (129·2 > 64), with and without sink;
// prefixes (positions that see each other both ways) shorter than the
// window, longer (an OCR model's 40 image tokens under a window of 8),
// spanning workgroups, of the whole sequence and past its end.
var attnCases = []attnCase{
	{1, 1, 1, 1, 1, 0, false, 0},
	{1, 1, 2, 1, 3, 4, true, 0},
	{3, 17, 1, 1, 1, 3, false, 0},
	{2, 17, 4, 2, 3, 5, true, 0},
	{1, 129, 2, 1, 17, 0, true, 0},
	{1, 129, 2, 2, 17, 16, false, 0},
	{2, 33, 4, 2, 64, 8, false, 0},
	{1, 40, 3, 3, 64, 0, true, 0},
	{1, 20, 4, 2, 16, 1, false, 0},
	{1, 9, 2, 2, 4, 50, true, 0},
	{2, 70, 4, 1, 8, 0, false, 0},
	{1, 5, 2, 1, 128, 0, true, 0},
	{1, 6, 2, 2, 128, 3, false, 0},
	{2, 17, 4, 2, 3, 5, true, 3},
	{1, 48, 4, 2, 16, 8, true, 40},
	{1, 129, 2, 1, 17, 0, true, 70},
	{1, 9, 2, 2, 4, 0, false, 9},
	{2, 20, 4, 2, 16, 1, false, 6},
	{1, 6, 2, 2, 128, 3, false, 10},
}

// attnInputs draws q, k ∈ [−2, 2], v ∈ [−1, 1] and, with a sink, s ∈ [−2, 2].
func attnInputs(rng *rand.Rand, c attnCase) []*graph.Host {
	rows := c.b * c.t
	in := []*graph.Host{
		optest.Random(rng, graph.F32(rows, c.qh*c.dh), -2, 2),
		optest.Random(rng, graph.F32(rows, c.kvh*c.dh), -2, 2),
		optest.Random(rng, graph.F32(rows, c.kvh*c.dh), -1, 1),
	}
	if c.sink {
		in = append(in, optest.Random(rng, graph.F32(c.qh), -2, 2))
	}
	return in
}

// attnNaive is the test's own oracle: materialise the T×T scores of every
// (batch, head), mask the band (i − W < j ≤ i) with −∞, append the sink as
// an extra column whose value row is 0, softmax, multiply by V; inside a
// prefix of P positions the band reaches up to P − 1.
func attnNaive(c attnCase, scale float64, in []*graph.Host) (o, lse []float64) {
	q, k, v := in[0].Data, in[1].Data, in[2].Data
	o = make([]float64, c.b*c.t*c.qh*c.dh)
	lse = make([]float64, c.b*c.qh*c.t)
	for b := 0; b < c.b; b++ {
		for h := 0; h < c.qh; h++ {
			g := h * c.kvh / c.qh
			for i := 0; i < c.t; i++ {
				scores := make([]float64, c.t+1)
				for j := 0; j < c.t; j++ {
					scores[j] = math.Inf(-1)
					if (j <= i || j < c.p) && (c.w == 0 || j > i-c.w) {
						s := 0.0
						for d := 0; d < c.dh; d++ {
							s += q[((b*c.t+i)*c.qh+h)*c.dh+d] * k[((b*c.t+j)*c.kvh+g)*c.dh+d]
						}
						scores[j] = scale * s
					}
				}
				scores[c.t] = math.Inf(-1)
				if c.sink {
					scores[c.t] = in[3].Data[h]
				}
				m := math.Inf(-1)
				for _, s := range scores {
					m = math.Max(m, s)
				}
				z := 0.0
				for _, s := range scores {
					z += math.Exp(s - m)
				}
				lse[(b*c.qh+h)*c.t+i] = m + math.Log(z)
				for j := 0; j < c.t; j++ {
					p := math.Exp(scores[j]-m) / z
					for d := 0; d < c.dh; d++ {
						o[((b*c.t+i)*c.qh+h)*c.dh+d] += p * v[((b*c.t+j)*c.kvh+g)*c.dh+d]
					}
				}
			}
		}
	}
	return o, lse
}

func attnScale(dh int) float64 { return float64(float32(1 / math.Sqrt(float64(dh)))) }

func TestAttentionReferenceEqualsNaiveBandMaskedSoftmax(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, c := range attnCases {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c)
			got := optest.MustRef(t, c.op(), in...)
			o, lse := attnNaive(c, attnScale(c.dh), in)
			optest.Close(t, "o", got[0].Data, o, attnExact)
			optest.Close(t, "lse", got[1].Data, lse, attnExact)
		})
	}
}

func TestAttentionMatchesReferenceOnAwkwardShapes(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(2))
	for _, c := range attnCases {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c)
			got := optest.CheckOp(t, dev, c.op(), attnFwdTol, in...)
			o, _ := attnNaive(c, attnScale(c.dh), in)
			optest.Close(t, "o vs naive", got[0].Data, o, attnFwdTol)
		})
	}
}

// Scores of ±100 and more: without the running max exp overflows; with a
// peaked softmax the online rescaling must still give the exact mixture.
func TestAttentionIsStableForLargeScores(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(3))
	for _, c := range []attnCase{{1, 37, 2, 1, 16, 0, true, 0}, {1, 37, 2, 2, 5, 9, false, 0}} {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c)
			for i := range in[0].Data {
				in[0].Data[i] *= 16
			}
			if c.sink {
				in[3].Data[0], in[3].Data[1] = 200, -200
			}
			op := c.op()
			op.Scale = 1
			// Scores reach ~10³ here, so f32 score errors are ~1e-4 absolute
			// and p moves by as much relative; o's tolerance scales with it.
			got := optest.CheckOp(t, dev, op, optest.Tol{Atol: 5e-4, Rtol: 1e-5}, in...)
			for _, h := range got {
				for i, x := range h.Data {
					if math.IsNaN(x) || math.IsInf(x, 0) {
						t.Fatalf("output[%d] = %g", i, x)
					}
				}
			}
		})
	}
}

func TestAttentionWindowLargerThanSeqEqualsGlobal(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(4))
	c := attnCase{2, 23, 4, 2, 12, 0, true, 0}
	in := attnInputs(rng, c)
	global, err := graph.RunOp(dev, c.op(), in...)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int{23, 24, 1000} {
		op := c.op()
		op.Window = w
		got, err := graph.RunOp(dev, op, in...)
		if err != nil {
			t.Fatal(err)
		}
		// The same keys in the same order: identical bits.
		optest.Close(t, fmt.Sprintf("o W=%d", w), got[0].Data, global[0].Data, optest.Tol{})
		optest.Close(t, fmt.Sprintf("lse W=%d", w), got[1].Data, global[1].Data, optest.Tol{})
	}
}

// A sink enlarges every denominator: o shrinks by the factor Σp < 1; a
// sink far below every score changes nothing, one far above silences the
// head.
func TestAttentionSinkOnlyEnlargesTheDenominator(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(5))
	c := attnCase{1, 19, 2, 1, 8, 6, true, 0}
	in := attnInputs(rng, c)
	noSink := c
	noSink.sink = false
	base, err := graph.RunOp(dev, noSink.op(), in[:3]...)
	if err != nil {
		t.Fatal(err)
	}
	s := in[3]
	s.Data[0], s.Data[1] = -1e4, 1e4
	got, err := graph.RunOp(dev, c.op(), in...)
	if err != nil {
		t.Fatal(err)
	}
	half := c.dh // head 0 is the first dh features of each row, head 1 the next
	for r := 0; r < c.t; r++ {
		for d := 0; d < half; d++ {
			i0, i1 := r*2*half+d, r*2*half+half+d
			if math.Abs(got[0].Data[i0]-base[0].Data[i0]) > 1e-6 {
				t.Fatalf("sink −1e4, row %d: o %g differs from no-sink %g", r, got[0].Data[i0], base[0].Data[i0])
			}
			if got[0].Data[i1] != 0 {
				t.Fatalf("sink +1e4, row %d: o = %g, want 0", r, got[0].Data[i1])
			}
		}
		if l := got[1].Data[c.t+r]; l != 1e4 {
			t.Fatalf("sink +1e4, row %d: lse = %g, want 1e4", r, l)
		}
	}
	// A moderate sink: o = (Σ_j p_j v_j) with Σ_j p_j = 1 − p_sink, so o is
	// the no-sink output scaled by 1 − exp(s − lse).
	s.Data[0], s.Data[1] = 0.5, -0.5
	got = optest.CheckOp(t, dev, c.op(), attnFwdTol, in...)
	for h := 0; h < 2; h++ {
		for r := 0; r < c.t; r++ {
			f := 1 - math.Exp(s.Data[h]-got[1].Data[h*c.t+r])
			for d := 0; d < c.dh; d++ {
				i := r*2*c.dh + h*c.dh + d
				if math.Abs(got[0].Data[i]-f*base[0].Data[i]) > 4e-6 {
					t.Fatalf("head %d row %d: o %g, want %g·%g", h, r, got[0].Data[i], f, base[0].Data[i])
				}
			}
		}
	}
}

// attnBackwardRef runs the reference forward and backward: loss = Σ w·o.
func attnBackwardRef(t testing.TB, c attnCase, in []*graph.Host, w *graph.Host) []*graph.Host {
	t.Helper()
	fwd := optest.MustRef(t, c.op(), in...)
	bin := append(append([]*graph.Host(nil), in...), fwd[0], fwd[1], w)
	return optest.MustRef(t, graph.AttentionBackward(c.op()), bin...)
}

func TestAttentionReferenceGradientsMatchFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewSource(6))
	for _, c := range []attnCase{
		{2, 5, 4, 2, 3, 3, true, 0},
		{1, 4, 2, 1, 2, 0, false, 0},
		{1, 6, 2, 2, 4, 0, true, 0},
		{1, 1, 1, 1, 1, 0, true, 0},
		{2, 5, 4, 2, 3, 3, true, 3},
		{1, 6, 2, 2, 4, 0, false, 4},
	} {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c)
			w := optest.Random(rng, graph.F32(c.b*c.t, c.qh*c.dh), -1, 1)
			loss := func(in []*graph.Host) float64 { return optest.Dot(w.Data, optest.MustRef(t, c.op(), in...)[0].Data) }
			grads := func(in []*graph.Host) []*graph.Host { return attnBackwardRef(t, c, in, w) }
			wrt := []int{0, 1, 2}
			if c.sink {
				wrt = append(wrt, 3)
			}
			optest.CheckGrad(t, c.String(), in, wrt, loss, grads, optest.GradTol)
		})
	}
}

func TestAttentionBackwardMatchesReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(7))
	for _, c := range attnCases {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c)
			fwd := optest.MustRef(t, c.op(), in...)
			for _, h := range fwd { // the GPU sees f32 o and lse; so must the reference
				for i := range h.Data {
					h.Data[i] = float64(float32(h.Data[i]))
				}
			}
			do := optest.Random(rng, graph.F32(c.b*c.t, c.qh*c.dh), -1, 1)
			bin := append(append([]*graph.Host(nil), in...), fwd[0], fwd[1], do)
			optest.CheckOp(t, dev, graph.AttentionBackward(c.op()), attnBwdTol, bin...)
		})
	}
}

// The sink's gradient computed inside the dk/dv dispatch equals, bit for
// bit, the separate dsink dispatch it replaces (same sum in the same
// order), and dq, dk, dv do not change; on every sink geometry.
func TestAttentionBackwardSinkGradInsideDKVEqualsSeparateDispatch(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(17))
	n := 0
	for _, c := range attnCases {
		if !c.sink {
			continue
		}
		n++
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c)
			fwd := optest.MustRef(t, c.op(), in...)
			do := optest.Random(rng, graph.F32(c.b*c.t, c.qh*c.dh), -1, 1)
			bin := append(append([]*graph.Host(nil), in...), fwd[0], fwd[1], do)
			fused, err := graph.RunOp(dev, graph.AttentionBackward(c.op()), bin...)
			require.NoError(t, err)
			sep := c.op()
			sep.SeparateSinkGrad = true
			apart, err := graph.RunOp(dev, graph.AttentionBackward(sep), bin...)
			require.NoError(t, err)
			require.Len(t, fused, 4)
			for i := range fused {
				require.Equal(t, apart[i].Data, fused[i].Data, "output %d", i)
			}
		})
	}
	require.Greater(t, n, 2, "sink cases")
}

// Attention.Backward, reached through Graph.Backward, applies
// AttentionBackward and gives every input its reference gradient.
func TestAttentionBackwardRuleGivesReferenceGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(8))
	c := attnCase{2, 6, 4, 2, 4, 3, true, 0}
	in := attnInputs(rng, c)
	w := optest.Random(rng, graph.F32(c.b*c.t, c.qh*c.dh), -1, 1)
	g := graph.New()
	names := []string{"q", "k", "v", "s"}
	params := make([]*graph.Tensor, len(in))
	for i, h := range in {
		params[i] = g.Param(names[i], h.Spec)
	}
	out := g.Apply(c.op(), params...)
	loss := g.Apply1(graph.WeightedSum{}, out[0], g.Constant("w", w))
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	grads := make([]*graph.Tensor, len(params))
	for i, p := range params {
		if p.Grad == nil {
			t.Fatalf("%s has no gradient", p.Name)
		}
		if op := p.Grad.Producer().Op; op.Name() != "attention_backward" {
			t.Fatalf("%s's gradient comes from %s", p.Name, op.Name())
		}
		grads[i] = p.Grad
	}
	plan, err := g.Plan(grads, 256)
	if err != nil {
		t.Fatal(err)
	}
	ref := graph.NewReference(plan)
	for i, p := range params {
		if err := ref.Set(p, in[i].Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := ref.Run(); err != nil {
		t.Fatal(err)
	}
	got, err := ref.Get(grads...)
	if err != nil {
		t.Fatal(err)
	}
	want := attnBackwardRef(t, c, in, w)
	for i := range grads {
		optest.Close(t, "d"+names[i], got[i], want[i].Data, attnExact)
	}
}

// attnRows copies rows [r0, r0+n) of each batch's T rows: (B·T, F) → (B·n, F).
func attnRows(h *graph.Host, batch, seq, r0, n int) *graph.Host {
	f := h.Shape[1]
	out := graph.NewHost(graph.F32(batch*n, f))
	for b := 0; b < batch; b++ {
		copy(out.Data[b*n*f:(b+1)*n*f], h.Data[(b*seq+r0)*f:(b*seq+r0+n)*f])
	}
	return out
}

// attnDecodeCase is a generation setting: chunk new tokens per step into a
// cache of capacity slots. Decoding must reproduce full attention with
// window equiv.
type attnDecodeCase struct {
	attnCase
	chunk, capacity, equiv int
}

// attnDecodeCases: global caches holding the whole sequence, SWA rings of
// the minimum size W + chunk − 1, which wrap around several times, and
// caches too small (a global one, and an SWA one below W), which decoding
// one token at a time turns into a window of their capacity (the
// documented truncation); prefixes held by the first chunk, in a ring and
// in a global cache.
var attnDecodeCases = []attnDecodeCase{
	{attnCase{2, 12, 4, 2, 8, 0, true, 0}, 1, 12, 0},
	{attnCase{2, 12, 4, 2, 8, 0, false, 0}, 3, 16, 0},
	{attnCase{2, 12, 4, 2, 8, 4, true, 0}, 1, 4, 4},
	{attnCase{2, 12, 4, 2, 3, 4, false, 0}, 3, 6, 4},
	{attnCase{1, 12, 2, 1, 5, 5, true, 0}, 4, 8, 5},
	{attnCase{1, 12, 2, 2, 64, 3, true, 0}, 2, 4, 3},
	{attnCase{1, 12, 2, 1, 8, 0, true, 0}, 1, 5, 5},
	{attnCase{1, 12, 2, 1, 8, 6, false, 0}, 1, 4, 4},
	{attnCase{2, 12, 4, 2, 8, 4, true, 3}, 3, 6, 4},
	{attnCase{1, 12, 2, 1, 8, 0, false, 4}, 4, 12, 0},
}

// full is the attention whose rows decoding must reproduce.
func (c attnDecodeCase) full() graph.Attention {
	op := c.op()
	op.Window = c.equiv
	return op
}

func (c attnDecodeCase) ops() (graph.KVCacheWrite, graph.AttentionCached) {
	return graph.KVCacheWrite{Batch: c.b, QLen: c.chunk, KVHeads: c.kvh, HeadDim: c.dh, Capacity: c.capacity},
		graph.AttentionCached{Batch: c.b, QLen: c.chunk, QHeads: c.qh, KVHeads: c.kvh, HeadDim: c.dh,
			Window: c.w, Prefix: c.p, Sink: c.sink, Capacity: c.capacity}
}

func (c attnDecodeCase) String() string {
	return fmt.Sprintf("%v_chunk%d_cap%d", c.attnCase, c.chunk, c.capacity)
}

// Decoding with the reference ops: writing the keys a chunk at a time and
// attending from the cache gives the rows of full attention.
func TestKVCacheDecodingReferenceEqualsFullAttention(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	for _, c := range attnDecodeCases {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c.attnCase)
			full := optest.MustRef(t, c.full(), in...)[0]
			write, attend := c.ops()
			kc := graph.NewHost(graph.F32(c.b, c.kvh, c.capacity, c.dh))
			vc := graph.NewHost(kc.Spec)
			for pos := 0; pos < c.t; pos += c.chunk {
				p, _ := graph.HostFrom(graph.U32(1), []float64{float64(pos)})
				optest.MustRef(t, write, attnRows(in[1], c.b, c.t, pos, c.chunk), p, kc)
				optest.MustRef(t, write, attnRows(in[2], c.b, c.t, pos, c.chunk), p, vc)
				ain := []*graph.Host{attnRows(in[0], c.b, c.t, pos, c.chunk), kc, vc, p}
				if c.sink {
					ain = append(ain, in[3])
				}
				got := optest.MustRef(t, attend, ain...)[0]
				optest.Close(t, fmt.Sprintf("o at pos %d", pos), got.Data, attnRows(full, c.b, c.t, pos, c.chunk).Data, attnExact)
			}
		})
	}
}

// Decoding on the GPU as a generator runs it: the cache writes and the
// cached attention are recorded once; each step writes the new tokens and
// pos and replays the recording. Outputs must match full attention, and the
// cache must hold exactly what the reference cache write stored.
func TestKVCacheDecodingOnGPUEqualsFullAttention(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(10))
	for _, c := range attnDecodeCases {
		t.Run(c.String(), func(t *testing.T) {
			in := attnInputs(rng, c.attnCase)
			full := optest.MustRef(t, c.full(), in...)[0]
			write, attend := c.ops()
			var bufs []*gpu.Buffer
			defer func() {
				for _, b := range bufs {
					b.Release()
				}
			}()
			buf := func(s graph.Spec) *gpu.Buffer {
				b, err := dev.NewBuffer("attn_test", s.DType, s.Shape...)
				if err != nil {
					t.Fatal(err)
				}
				bufs = append(bufs, b)
				return b
			}
			rowsQ, rowsKV := graph.F32(c.b*c.chunk, c.qh*c.dh), graph.F32(c.b*c.chunk, c.kvh*c.dh)
			cache := graph.F32(c.b, c.kvh, c.capacity, c.dh)
			qb, kb, vb, pb := buf(rowsQ), buf(rowsKV), buf(rowsKV), buf(graph.U32(1))
			kc, vc, ob := buf(cache), buf(cache), buf(rowsQ)
			ain := []*gpu.Buffer{qb, kc, vc, pb}
			if c.sink {
				sb, err := graph.Upload(dev, "s", in[3])
				if err != nil {
					t.Fatal(err)
				}
				bufs = append(bufs, sb)
				ain = append(ain, sb)
			}
			rec := dev.NewRecorder()
			defer rec.Release()
			for _, e := range []error{
				write.Encode(dev, rec, []*gpu.Buffer{kb, pb, kc}, nil),
				write.Encode(dev, rec, []*gpu.Buffer{vb, pb, vc}, nil),
				attend.Encode(dev, rec, ain, []*gpu.Buffer{ob}),
			} {
				if e != nil {
					t.Fatal(e)
				}
			}
			f32 := func(h *graph.Host) []float32 {
				v := make([]float32, len(h.Data))
				for i, x := range h.Data {
					v[i] = float32(x)
				}
				return v
			}
			refK := graph.NewHost(cache)
			for pos := 0; pos < c.t; pos += c.chunk {
				kr := attnRows(in[1], c.b, c.t, pos, c.chunk)
				for _, e := range []error{
					qb.Write(f32(attnRows(in[0], c.b, c.t, pos, c.chunk))),
					kb.Write(f32(kr)),
					vb.Write(f32(attnRows(in[2], c.b, c.t, pos, c.chunk))),
					pb.Write([]uint32{uint32(pos)}),
					rec.Submit(),
				} {
					if e != nil {
						t.Fatal(e)
					}
				}
				got, err := graph.Download(dev, ob, kc)
				if err != nil {
					t.Fatal(err)
				}
				optest.Close(t, fmt.Sprintf("o at pos %d", pos), got[0].Data, attnRows(full, c.b, c.t, pos, c.chunk).Data, attnFwdTol)
				p, _ := graph.HostFrom(graph.U32(1), []float64{float64(pos)})
				optest.MustRef(t, write, kr, p, refK)
				optest.Close(t, fmt.Sprintf("kcache at pos %d", pos), got[1].Data, refK.Data, optest.Tol{})
			}
		})
	}
}

// The same decoding through a graph, on the GPU and reference executors:
// KVCacheWrite nodes (no outputs, InPlace on State caches) are kept by the
// planner and run before the cached attention that reads the caches.
func TestKVCacheDecodingThroughGraphExecutors(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(11))
	c := attnDecodeCase{attnCase{2, 12, 4, 2, 8, 4, true, 0}, 2, 5, 4}
	in := attnInputs(rng, c.attnCase)
	full := optest.MustRef(t, c.full(), in...)[0]
	write, attend := c.ops()
	g := graph.New()
	q := g.Input("q", graph.F32(c.b*c.chunk, c.qh*c.dh))
	k := g.Input("k", graph.F32(c.b*c.chunk, c.kvh*c.dh))
	v := g.Input("v", graph.F32(c.b*c.chunk, c.kvh*c.dh))
	pos := g.Input("pos", graph.U32(1))
	s := g.Constant("s", in[3])
	kc := g.State("kcache", graph.F32(c.b, c.kvh, c.capacity, c.dh))
	vc := g.State("vcache", kc.Spec)
	g.Apply(write, k, pos, kc)
	g.Apply(write, v, pos, vc)
	o := g.Apply1(attend, q, kc, vc, pos, s)
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	plan, err := g.Plan([]*graph.Tensor{o}, 256)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Nodes) != 3 {
		t.Fatalf("plan keeps %d nodes, want 3 (two cache writes and the attention)", len(plan.Nodes))
	}
	gex, err := graph.NewGPU(dev, plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gex.Close()
	for name, ex := range map[string]graph.Executor{"gpu": gex, "reference": graph.NewReference(plan)} {
		tol := attnExact
		if name == "gpu" {
			tol = attnFwdTol
		}
		for p := 0; p < c.t; p += c.chunk {
			for _, e := range []error{
				ex.Set(q, attnRows(in[0], c.b, c.t, p, c.chunk).Data),
				ex.Set(k, attnRows(in[1], c.b, c.t, p, c.chunk).Data),
				ex.Set(v, attnRows(in[2], c.b, c.t, p, c.chunk).Data),
				ex.Set(pos, []float64{float64(p)}),
				ex.Run(),
			} {
				if e != nil {
					t.Fatal(e)
				}
			}
			got, err := ex.Get(o)
			if err != nil {
				t.Fatal(err)
			}
			optest.Close(t, fmt.Sprintf("%s o at pos %d", name, p), got[0], attnRows(full, c.b, c.t, p, c.chunk).Data, tol)
		}
	}
}

func TestAttentionRejectsBadShapes(t *testing.T) {
	base := graph.Attention{Batch: 2, Seq: 3, QHeads: 4, KVHeads: 2, HeadDim: 5}
	q, kv := graph.F32(6, 20), graph.F32(6, 10)
	with := func(f func(a *graph.Attention)) graph.Attention { a := base; f(&a); return a }
	bad := []struct {
		name string
		op   graph.Op
		in   []graph.Spec
	}{
		{"QHeads not a multiple of KVHeads", with(func(a *graph.Attention) { a.KVHeads = 3 }), []graph.Spec{q, graph.F32(6, 15), graph.F32(6, 15)}},
		{"zero heads", with(func(a *graph.Attention) { a.QHeads = 0 }), []graph.Spec{graph.F32(6, 0), kv, kv}},
		{"negative window", with(func(a *graph.Attention) { a.Window = -1 }), []graph.Spec{q, kv, kv}},
		{"head dim too large", with(func(a *graph.Attention) { a.HeadDim = 132 }), []graph.Spec{graph.F32(6, 528), graph.F32(6, 264), graph.F32(6, 264)}},
		{"NaN scale", with(func(a *graph.Attention) { a.Scale = float32(math.NaN()) }), []graph.Spec{q, kv, kv}},
		{"q rows", base, []graph.Spec{graph.F32(5, 20), kv, kv}},
		{"k features", base, []graph.Spec{q, graph.F32(6, 20), kv}},
		{"rank 3 v", base, []graph.Spec{q, kv, graph.F32(2, 3, 10)}},
		{"u32 q", base, []graph.Spec{graph.U32(6, 20), kv, kv}},
		{"missing sink", with(func(a *graph.Attention) { a.Sink = true }), []graph.Spec{q, kv, kv}},
		{"sink not per head", with(func(a *graph.Attention) { a.Sink = true }), []graph.Spec{q, kv, kv, graph.F32(2)}},
		{"unexpected sink", base, []graph.Spec{q, kv, kv, graph.F32(4)}},
		{"backward without do", graph.AttentionBackward(base), []graph.Spec{q, kv, kv, q, graph.F32(2, 4, 3)}},
		{"backward lse shape", graph.AttentionBackward(base), []graph.Spec{q, kv, kv, q, graph.F32(2, 3, 4), q}},
		{"cached pos f32", graph.AttentionCached{Batch: 1, QLen: 1, QHeads: 2, KVHeads: 1, HeadDim: 4, Capacity: 8},
			[]graph.Spec{graph.F32(1, 8), graph.F32(1, 1, 8, 4), graph.F32(1, 1, 8, 4), graph.F32(1)}},
		{"cached ring smaller than a chunk", graph.AttentionCached{Batch: 1, QLen: 5, QHeads: 2, KVHeads: 1, HeadDim: 4, Window: 4, Capacity: 4},
			[]graph.Spec{graph.F32(5, 8), graph.F32(1, 1, 4, 4), graph.F32(1, 1, 4, 4), graph.U32(1)}},
		{"cached cache shape", graph.AttentionCached{Batch: 1, QLen: 1, QHeads: 2, KVHeads: 1, HeadDim: 4, Capacity: 8},
			[]graph.Spec{graph.F32(1, 8), graph.F32(1, 8, 4), graph.F32(1, 8, 4), graph.U32(1)}},
		{"cache write chunk larger than ring", graph.KVCacheWrite{Batch: 1, QLen: 5, KVHeads: 1, HeadDim: 4, Capacity: 4},
			[]graph.Spec{graph.F32(5, 4), graph.U32(1), graph.F32(1, 1, 4, 4)}},
		{"cache write zero capacity", graph.KVCacheWrite{Batch: 1, QLen: 1, KVHeads: 1, HeadDim: 4},
			[]graph.Spec{graph.F32(1, 4), graph.U32(1), graph.F32(1, 1, 0, 4)}},
		{"cache write k width", graph.KVCacheWrite{Batch: 1, QLen: 1, KVHeads: 2, HeadDim: 4, Capacity: 4},
			[]graph.Spec{graph.F32(1, 4), graph.U32(1), graph.F32(1, 2, 4, 4)}},
	}
	for _, b := range bad {
		if _, err := b.op.Outputs(b.in); err == nil {
			t.Errorf("%s: %s accepted %v", b.name, b.op.Name(), b.in)
		} else {
			t.Logf("%s: %v", b.name, err)
		}
	}
	// A gradient reaching lse is refused with an error, not a wrong answer.
	g := graph.New()
	a := base
	ts := []*graph.Tensor{g.Param("q", q), g.Param("k", kv), g.Param("v", kv)}
	out := g.Apply(a, ts...)
	loss := g.Apply1(graph.WeightedSum{}, out[1], g.Constant("w", graph.NewHost(out[1].Spec)))
	if err := g.Backward(loss); err == nil {
		t.Error("backward through lse accepted")
	}
}

// attnPairs counts (query, key) pairs a causal window-W pass visits per
// (batch, head).
func attnPairs(t, w int) int {
	n := 0
	for i := 0; i < t; i++ {
		lo := 0
		if w > 0 && i-w+1 > 0 {
			lo = i - w + 1
		}
		n += i - lo + 1
	}
	return n
}

// BenchmarkAttention times the forward and the backward at B=1, T=512, 8
// heads of 64, global and W=128. GFLOP/s counts 4·dh flops per visited
// (query, key) pair forward (q·k, p·v) and 10·dh backward (q·k again, do·v,
// dq, dk, dv), the usual 2.5× convention; the backward kernels actually
// recompute q·k and do·v once more in the dk/dv pass.
func BenchmarkAttention(b *testing.B) {
	dev := gputest.Device(b)
	for _, kvh := range []int{8, 2} {
		for _, w := range []int{0, 128} {
			c := attnCase{1, 512, 8, kvh, 64, w, true, 0}
			rng := rand.New(rand.NewSource(12))
			in := attnInputs(rng, c)
			fwd := optest.MustRef(b, c.op(), in...)
			do := optest.Random(rng, graph.F32(c.b*c.t, c.qh*c.dh), -1, 1)
			pairs := float64(c.b * c.qh * attnPairs(c.t, c.w))
			bin := append(append([]*graph.Host(nil), in...), fwd[0], fwd[1], do)
			b.Run(fmt.Sprintf("forward/kvh%d/W%d", kvh, w), func(b *testing.B) {
				attnBench(b, dev, c.op(), 4*float64(c.dh)*pairs, in...)
			})
			b.Run(fmt.Sprintf("backward/kvh%d/W%d", kvh, w), func(b *testing.B) {
				attnBench(b, dev, graph.AttentionBackward(c.op()), 10*float64(c.dh)*pairs, bin...)
			})
		}
	}
}

// BenchmarkAttentionCachedStep times one decoding step's cached attention at ocr-small's
// shapes: 256 rows of one new token each, 4 query heads and 2 KV heads of 32, a sink, the
// query at position 60 of a global cache of 74 slots and of a sliding ring of 32 (window 32).
// GFLOP/s counts 4·dh flops per visited (query, key) pair.
func BenchmarkAttentionCachedStep(b *testing.B) {
	dev := gputest.Device(b)
	rng := rand.New(rand.NewSource(13))
	const B, qh, kvh, dh, pos = 256, 4, 2, 32, 60
	for _, c := range []struct{ window, capacity, keys int }{{0, 74, pos + 1}, {32, 32, 32}} {
		op := graph.AttentionCached{Batch: B, QLen: 1, QHeads: qh, KVHeads: kvh, HeadDim: dh, Window: c.window, Sink: true, Capacity: c.capacity}
		cache := graph.F32(B, kvh, c.capacity, dh)
		p, _ := graph.HostFrom(graph.U32(1), []float64{pos})
		in := []*graph.Host{optest.Random(rng, graph.F32(B, qh*dh), -1, 1), optest.Random(rng, cache, -1, 1),
			optest.Random(rng, cache, -1, 1), p, optest.Random(rng, graph.F32(qh), -1, 1)}
		b.Run(fmt.Sprintf("W%d", c.window), func(b *testing.B) {
			attnBench(b, dev, op, 4*dh*float64(B*qh*c.keys), in...)
		})
	}
}

func attnBench(b *testing.B, dev *gpu.Device, op graph.Op, flops float64, in ...*graph.Host) {
	sec := optest.BenchOp(b, dev, op, in...)
	b.ReportMetric(flops/sec/1e9, "GFLOP/s")
}

// Repeating the attention backward keeps the process's memory flat. A kernel
// that indexes a private array with a runtime value gets scratch memory,
// which lavapipe (Mesa 22.3) allocates per dispatch and never frees: the
// dk/dv kernel once leaked ~0.5 MB a dispatch that way, ~1 MB a training
// step of tiny-dense (150 MB over this test's 300 runs). The bound, 32 MB,
// is far above what a non-leaking loop grows (under 1 MB here).
func TestAttentionBackwardDoesNotLeakMemoryPerDispatch(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(9))
	c := attnCase{32, 24, 4, 2, 16, 16, true, 0} // tiny-dense's shape
	in := attnInputs(rng, c)
	fwd := optest.MustRef(t, c.op(), in...)
	do := optest.Random(rng, graph.F32(c.b*c.t, c.qh*c.dh), -1, 1)
	p, err := graph.Prepare(dev, graph.AttentionBackward(c.op()), 1, append(append(in, fwd...), do)...)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Release()
	grew := gputest.MemoryGrowth(t, 20, 300, func() { submitAndWait(t, dev, p) })
	if grew > 32 {
		t.Fatalf("resident memory grew %.1f MB over 300 attention backward runs (%.2f MB a run): a kernel leaks per dispatch", grew, grew/300)
	}
	t.Logf("resident memory grew %.2f MB over 300 runs", grew)
}

// submitAndWait runs a prepared op once and waits for it.
func submitAndWait(t *testing.T, dev *gpu.Device, p *graph.Prepared) {
	t.Helper()
	if err := p.Rec.Submit(); err != nil {
		t.Fatal(err)
	}
	if err := dev.Wait(); err != nil {
		t.Fatal(err)
	}
}

package graph_test

import (
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// A weighted sum of n f32 terms in [-1,1]: error ≤ n·2^-24 per partial sum.
func TestWeightedSumAndMulScalarMatchReference(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(8))
	for _, n := range []int{1, 3, 17, 129, 1000, 70000} {
		x := optest.Random(rng, graph.F32(n), -1, 1)
		w := optest.Random(rng, graph.F32(n), -1, 1)
		optest.CheckOp(t, dev, graph.WeightedSum{}, optest.Tol{Atol: float64(n) * 6e-8, Rtol: 1e-6}, x, w)
		s := optest.Random(rng, graph.F32(1), -2, 2)
		optest.CheckOp(t, dev, graph.MulScalar{}, optest.Tol{Atol: 0, Rtol: 1.2e-7}, x, s)
	}
}

func TestWeightedSumAndMulScalarGradients(t *testing.T) {
	rng := rand.New(rand.NewSource(9))
	x := optest.Random(rng, graph.F32(5), -1, 1)
	w := optest.Random(rng, graph.F32(5), -1, 1)
	s := optest.Random(rng, graph.F32(1), -1, 1)
	c := optest.Random(rng, graph.F32(5), -1, 1)
	// L = Σ c·(x·s) + weighted_sum(x, w): exercise both backward rules.
	loss := func(in []*graph.Host) float64 {
		y := optest.MustRef(t, graph.MulScalar{}, in[0], in[2])[0]
		return optest.Dot(y.Data, c.Data) + optest.MustRef(t, graph.WeightedSum{}, in[0], in[1])[0].Data[0]
	}
	grads := func(in []*graph.Host) []*graph.Host {
		dx, dw, ds := graph.NewHost(in[0].Spec), graph.NewHost(in[1].Spec), graph.NewHost(in[2].Spec)
		for i := range dx.Data {
			dx.Data[i] = c.Data[i]*in[2].Data[0] + in[1].Data[i]
			dw.Data[i] = in[0].Data[i]
			ds.Data[0] += c.Data[i] * in[0].Data[i]
		}
		return []*graph.Host{dx, dw, ds}
	}
	optest.CheckGrad(t, "weighted_sum+mul_scalar", []*graph.Host{x, w, s}, []int{0, 1, 2}, loss, grads, optest.GradTol)
}

func TestZerosOverwritesEveryElement(t *testing.T) {
	dev := gputest.Device(t)
	for _, n := range []int{1, 17, 70000} {
		b, err := dev.NewBuffer("dirty", gpu.F32, n)
		require.NoError(t, err)
		ones := make([]float32, n)
		for i := range ones {
			ones[i] = 1
		}
		require.NoError(t, b.Write(ones))
		rec := dev.NewRecorder()
		require.NoError(t, graph.Zeros{Spec: graph.F32(n)}.Encode(dev, rec, nil, []*gpu.Buffer{b}))
		require.NoError(t, rec.Submit())
		got, err := dev.ReadFloat32(b)
		require.NoError(t, err)
		require.Equal(t, make([]float32, n), got)
		rec.Release()
		b.Release()
	}
	_, err := graph.Zeros{Spec: graph.U32(3)}.Outputs(nil)
	require.Error(t, err)
}

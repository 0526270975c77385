package layers_test

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/layers"
)

// f32 through a few layers with reductions ≤ 64 long.
var layerTol = optest.Tol{Atol: 2e-5, Rtol: 2e-4}

// lmInputs are token ids, targets (some ignored) and mean weights.
func lmInputs(g *graph.Graph, rng *rand.Rand, n, vocab int) (ids, targets, weights *graph.Tensor, fixed map[*graph.Tensor][]float64) {
	ids = g.Input("ids", graph.U32(n))
	targets = g.Input("targets", graph.U32(n))
	weights = g.Input("weights", graph.F32(n))
	fixed = map[*graph.Tensor][]float64{ids: make([]float64, n), targets: make([]float64, n), weights: make([]float64, n)}
	count := 0
	for i := 0; i < n; i++ {
		fixed[ids][i] = float64(rng.Intn(vocab))
		if i%3 == 2 {
			fixed[targets][i] = float64(graph.IgnoreTarget)
		} else {
			fixed[targets][i] = float64(rng.Intn(vocab))
			count++
		}
	}
	for i := 0; i < n; i++ {
		if i%3 != 2 {
			fixed[weights][i] = 1 / float64(count)
		}
	}
	return
}

func TestEmbeddingNormLinearAndLossGradients(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(1))
	g := graph.New()
	n, V, D := 7, 11, 8
	ids, targets, weights, fixed := lmInputs(g, rng, n, V)
	x, table := layers.Embedding(g, "embed", ids, V, D, 0.5)
	h := layers.RMSNorm(g, "norm", x, D, 1e-5)
	h = layers.Linear(g, "proj", h, D, D, 0.5)
	logits := g.Apply1(graph.MatMul{TransB: true}, h, table) // tied head: the table gets two gradients
	loss, _ := layers.LMLoss(g, logits, targets, weights)
	if err := g.Backward(loss); err != nil {
		t.Fatal(err)
	}
	optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Fixed: fixed, Scale: 0.5, Tol: layerTol, Seed: 2})
}

func TestFFNGradientsForBothActivations(t *testing.T) {
	dev := gputest.Device(t)
	for _, act := range []layers.Activation{layers.SiLU, layers.ReLU2} {
		t.Run(string(act), func(t *testing.T) {
			g := graph.New()
			x := g.Input("x", graph.F32(5, 8))
			c := g.Input("c", graph.F32(5, 8))
			y := layers.FFN(g, "mlp", x, 8, 12, act, 0.5, 0.5)
			loss := g.Apply1(graph.WeightedSum{}, y, c)
			if err := g.Backward(loss); err != nil {
				t.Fatal(err)
			}
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 1, Tol: layerTol, Seed: 3})
		})
	}
}

// A full attention block as the model builds it: projections, RoPE,
// grouped-query attention with sink, output projection, residual.
func TestAttentionBlockGradients(t *testing.T) {
	dev := gputest.Device(t)
	for _, win := range []int{0, 3} {
		t.Run(fmt.Sprintf("window=%d", win), func(t *testing.T) {
			g := graph.New()
			B, T, D, H, KV, dh := 2, 5, 8, 4, 2, 4
			x := g.Input("x", graph.F32(B*T, D))
			pos := g.Input("pos", graph.U32(B*T))
			c := g.Input("c", graph.F32(B*T, D))
			fixed := map[*graph.Tensor][]float64{pos: make([]float64, B*T)}
			for i := range fixed[pos] {
				fixed[pos][i] = float64(i % T)
			}
			q := layers.Linear(g, "q", x, D, H*dh, 0.5)
			k := layers.Linear(g, "k", x, D, KV*dh, 0.5)
			v := layers.Linear(g, "v", x, D, KV*dh, 0.5)
			q = g.Apply1(graph.RoPE{Heads: H, HeadDim: dh}, q, pos)
			k = g.Apply1(graph.RoPE{Heads: KV, HeadDim: dh}, k, pos)
			sink := g.Param("sink", graph.F32(H))
			o := g.Apply(graph.Attention{Batch: B, Seq: T, QHeads: H, KVHeads: KV, HeadDim: dh, Window: win, Sink: true}, q, k, v, sink)[0]
			o = layers.Linear(g, "o", o, H*dh, D, 0.5)
			y := g.Apply1(graph.Add{}, x, o)
			loss := g.Apply1(graph.WeightedSum{}, y, c)
			if err := g.Backward(loss); err != nil {
				t.Fatal(err)
			}
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Fixed: fixed, Scale: 1, Tol: layerTol, Seed: 4, FDSamples: 12})
		})
	}
}

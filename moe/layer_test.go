package moe_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/moe"
)

// layerDesigns are the MoE FFNs the runtime ships and the variants the
// controllers and the capacity cut add.
var layerDesigns = map[string]moe.Options{
	"fine-grained: sigmoid, normalised top-3 of 8, shared, copy": {
		Experts: 8, TopK: 3, Shared: 1, Copies: 1, Intermediate: 5, Norm: true, Scale: 2.5, Balance: moe.BalanceBiasSign, Gamma: 0.001},
	"coarse ReLU²: top-1 of 4, un-normalised, shared, copy": {
		Experts: 4, TopK: 1, Shared: 1, Copies: 1, Intermediate: 7, ReLU2: true, Scale: 1, Balance: moe.BalanceBiasPID, Kp: 0.01, Ki: 0.001},
	"softmax with the balance loss": {
		Experts: 6, TopK: 2, Intermediate: 4, Softmax: true, Norm: true, Scale: 1, Balance: moe.BalanceLBL, Alpha: 0.1},
	"capacity factor 0.5, two copy experts": {
		Experts: 5, TopK: 2, Copies: 2, Intermediate: 3, Scale: 1, CapacityFactor: 0.5},
}

// A whole MoE layer, forward and backward: the loss and every parameter's
// gradient (router, routed and shared experts, and x through the gather,
// the copy path and the gates) agree between the GPU and the reference,
// and the reference gradients agree with finite differences.
func TestLayerGradientsMatchReferenceAndFiniteDifferences(t *testing.T) {
	dev := gputest.Device(t)
	for name, o := range layerDesigns {
		t.Run(name, func(t *testing.T) {
			const n, d = 13, 8
			o.Hidden, o.Std, o.OutStd = d, 0.3, 0.3
			g := graph.New()
			x := g.Param("x", graph.F32(n, d))
			y, l := moe.Build(g, "mlp", x, o)
			w := g.Input("w", graph.F32(n, d))
			loss := g.Apply1(graph.WeightedSum{}, y, w)
			if l.AuxLoss != nil {
				loss = g.Apply1(graph.Add{}, loss, l.AuxLoss)
			}
			require.NoError(t, g.Err())
			require.NoError(t, g.Backward(loss))
			optest.CheckGraph(t, dev, optest.GraphCheck{Graph: g, Loss: loss, Scale: 0.8, FDSamples: 12,
				Tol: optest.Tol{Atol: 2e-5, Rtol: 1e-4}, Seed: 3})
		})
	}
}

func TestLayerRefusesBadOptions(t *testing.T) {
	for name, o := range map[string]moe.Options{
		"top-1 normalised": {Hidden: 4, Experts: 4, TopK: 1, Intermediate: 2, Norm: true, Scale: 1},
		"k over experts":   {Hidden: 4, Experts: 2, TopK: 3, Intermediate: 2, Scale: 1},
		"unknown balance":  {Hidden: 4, Experts: 4, TopK: 2, Intermediate: 2, Scale: 1, Balance: "magic"},
	} {
		g := graph.New()
		moe.Build(g, "model.layers.0.mlp", g.Input("x", graph.F32(3, 4)), o)
		require.ErrorContains(t, g.Err(), "model.layers.0.mlp", name)
	}
}

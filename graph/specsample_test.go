package graph_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/graph"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
)

// nucleusOf is the target distribution of one row (temperature, top-p), in
// float64, written independently of the op.
func nucleusOf(row []float64, temp, topP float64) []float64 {
	type c struct {
		id int
		w  float64
	}
	mx := math.Inf(-1)
	for _, x := range row {
		mx = math.Max(mx, x)
	}
	cs := make([]c, len(row))
	total := 0.0
	for i, x := range row {
		cs[i] = c{i, math.Exp((x - mx) / temp)}
		total += cs[i].w
	}
	// Stable descending order, ties to the lower id.
	for i := 1; i < len(cs); i++ {
		for j := i; j > 0 && cs[j].w > cs[j-1].w; j-- {
			cs[j], cs[j-1] = cs[j-1], cs[j]
		}
	}
	p := make([]float64, len(row))
	mass := 0.0
	for _, x := range cs {
		if mass/total >= topP {
			break
		}
		p[x.id] = x.w
		mass += x.w
	}
	for i := range p {
		p[i] /= mass
	}
	return p
}

// chiSquare fails when counts deviate from n·p beyond the 1e-4 tail
// (categories with expected count < 5 lumped together).
func chiSquare(t *testing.T, what string, counts []int, p []float64) {
	t.Helper()
	n := 0
	for _, c := range counts {
		n += c
	}
	stat, df := 0.0, -1
	lumpE, lumpO := 0.0, 0
	for i, pi := range p {
		e := float64(n) * pi
		if e < 5 {
			lumpE += e
			lumpO += counts[i]
			continue
		}
		stat += (float64(counts[i]) - e) * (float64(counts[i]) - e) / e
		df++
	}
	if lumpE >= 5 {
		stat += (float64(lumpO) - lumpE) * (float64(lumpO) - lumpE) / lumpE
		df++
	} else {
		require.LessOrEqual(t, lumpO, 5+int(5*lumpE), "%s: %d samples where the target has mass %.2g", what, lumpO, lumpE/float64(n))
	}
	// Wilson–Hilferty approximation of the chi-square quantile at 1 − 1e-4.
	k := float64(max(df, 1))
	crit := k * math.Pow(1-2/(9*k)+3.719*math.Sqrt(2/(9*k)), 3)
	require.Less(t, stat, crit, "%s: chi-square %.1f over %d degrees of freedom (critical %.1f)", what, stat, df, crit)
}

// The rejection rule commits tokens distributed as the target: the first
// committed token follows p_0 whatever the draft, and given that draft 1
// was accepted, the second follows p_1. A draft outside the nucleus is
// never accepted. GPU and reference agree on (almost) every trial.
func TestSpecSampleCommitsTheTargetDistribution(t *testing.T) {
	dev := gputest.Device(t)
	rng := rand.New(rand.NewSource(5))
	const V, D, trials = 12, 3, 20000
	temp, topP := 0.8, 0.9
	logits := optest.Random(rng, graph.F32(D+1, V), -2, 2)
	p := make([][]float64, D+1)
	for j := range p {
		p[j] = nucleusOf(logits.Data[j*V:(j+1)*V], temp, topP)
	}
	argmax := func(v []float64) int {
		b := 0
		for i := range v {
			if v[i] > v[b] {
				b = i
			}
		}
		return b
	}
	outside := 0
	for i, pi := range p[2] {
		if pi == 0 {
			outside = i
		}
	}
	require.Zero(t, p[2][outside], "row 2 needs a token outside its nucleus")
	drafts, _ := graph.HostFrom(graph.U32(D), []float64{float64(argmax(p[0])), float64((argmax(p[1]) + 1) % V), float64(outside)})
	uniforms := optest.Random(rng, graph.F32(trials, 2*(D+1)), 0, 1)
	op := graph.SpecSample{Temperature: float32(temp), TopP: float32(topP)}
	want := optest.MustRef(t, op, logits, drafts, uniforms)[0]
	got, err := graph.RunOp(dev, op, logits, drafts, uniforms)
	require.NoError(t, err)
	diff := 0
	for i := range want.Data {
		if got[0].Data[i] != want.Data[i] {
			diff++
		}
	}
	require.LessOrEqual(t, diff, trials/100, "GPU and reference disagree on %d trials (f32 rounding at acceptance boundaries only)", diff)

	first, second := make([]int, V), make([]int, V)
	for tr := 0; tr < trials; tr++ {
		acc, tok := int(got[0].Data[2*tr]), int(got[0].Data[2*tr+1])
		require.Less(t, acc, 3, "a draft outside the nucleus was accepted")
		if acc == 0 {
			first[tok]++
			continue
		}
		first[int(drafts.Data[0])]++
		if acc == 1 {
			second[tok]++
		} else {
			second[int(drafts.Data[1])]++
		}
	}
	chiSquare(t, "first committed token", first, p[0])
	chiSquare(t, "second committed token given draft 1 accepted", second, p[1])
}

package generate_test

import (
	"math"
	"math/rand"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/internal/optest"
	"github.com/moegpu/moegpu/runtime/generate"
)

// The edge values of the sampling parameters: top-p 0 and temperature 0 are greedy whatever the
// other parameter, top-p 1 keeps every token, and out-of-range values are refused by name.
func TestSamplingEdgeValues(t *testing.T) {
	logits := []float64{0.1, 3, 2.9, -1, 3} // ties at ids 1 and 4: greedy takes the lower id
	rng := newRand()
	for _, s := range []generate.Sampling{
		{Temperature: 1, TopP: 0},
		{Temperature: 100, TopP: 0},
		{Temperature: 0, TopP: 1},
		{Temperature: 0, TopP: 0.5},
		{},
	} {
		require.NoError(t, s.Validate())
		assert.True(t, s.Greedy(), "%+v", s)
		for i := 0; i < 200; i++ {
			require.Equal(t, 1, generate.Pick(logits, s, rng), "%+v", s)
		}
	}
	// top-p 1 at a high temperature reaches every token, the least likely included.
	seen := map[int]bool{}
	for i := 0; i < 2000; i++ {
		seen[generate.Pick(logits, generate.Sampling{Temperature: 10, TopP: 1}, rng)] = true
	}
	assert.Len(t, seen, len(logits))

	for _, tc := range []struct {
		s    generate.Sampling
		want string
	}{
		{generate.Sampling{Temperature: -0.5, TopP: 1}, "temperature -0.5 must be a finite number ≥ 0"},
		{generate.Sampling{Temperature: math.NaN(), TopP: 1}, "temperature NaN"},
		{generate.Sampling{Temperature: math.Inf(1), TopP: 1}, "temperature +Inf"},
		{generate.Sampling{Temperature: 1, TopP: -0.1}, "top-p -0.1 must be in [0, 1]"},
		{generate.Sampling{Temperature: 1, TopP: 1.01}, "top-p 1.01 must be in [0, 1]"},
		{generate.Sampling{Temperature: 1, TopP: math.NaN()}, "top-p NaN"},
	} {
		err := tc.s.Validate()
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
}

// A non-finite weight gives non-finite logits: generate reports the position instead of decoding
// token 0 (<pad>) over and over. Requests that do not
// fit the generator, or ask for no tokens, are errors rather than shorter answers.
func TestNonFiniteLogitsAndOversizedRequestsAreErrors(t *testing.T) {
	dev := gputest.Device(t)
	c := tiny(t)
	gen, err := generate.New(c, "gpu", dev, generate.Options{MaxSeq: 8})
	require.NoError(t, err)
	defer gen.Close()
	rng := rand.New(rand.NewSource(1))
	for _, p := range gen.Params() {
		v := optest.Random(rng, p.Spec, -0.3, 0.3).Data
		if p.Name == "model.norm.weight" {
			// Set behind the loader's back (weights.Load refuses it): the generator's own
			// check must still catch what it produces.
			v[5] = math.Inf(1)
		}
		require.NoError(t, gen.Exec.Set(p, v))
	}
	_, _, err = gen.Generate([]int{1, 20, 21, 3}, 3, 2, generate.Sampling{}, nil)
	require.ErrorContains(t, err, "generate: the logits after position 3 are not finite")

	_, _, err = gen.Generate([]int{1, 20, 21, 3}, 6, 2, generate.Sampling{}, nil)
	require.ErrorContains(t, err, "a prompt of 4 tokens and up to 6 new tokens need 9 positions; this generator holds 8")
	_, _, err = gen.Generate([]int{1, 20, 21, 3}, 0, 2, generate.Sampling{}, nil)
	require.ErrorContains(t, err, "at least one new token")
	_, _, err = gen.Generate([]int{1, 20, 21, 3}, 2, 2, generate.Sampling{Temperature: -1}, nil)
	require.ErrorContains(t, err, "generate: temperature -1 must be")
}

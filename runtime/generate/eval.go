package generate

import (
	"fmt"

	"github.com/moegpu/moegpu/runtime/tasks"
)

// Result is an exact-match evaluation.
type Result struct {
	Correct, Total int
	Examples       []Scored // the first few, for display
	Stats          Stats    // summed over all examples
}

// Scored is one evaluated example.
type Scored struct {
	Prompt, Answer, Predicted string
}

// Accuracy is Correct/Total.
func (r Result) Accuracy() float64 {
	if r.Total == 0 {
		return 0
	}
	return float64(r.Correct) / float64(r.Total)
}

// Evaluate decodes each example greedily from its prompt and scores the
// answer by exact match.
func (g *Generator) Evaluate(examples []tasks.Example, keep int) (Result, error) {
	var r Result
	for _, ex := range examples {
		prompt, err := tasks.PromptTokens(ex.Prompt)
		if err != nil {
			return r, err
		}
		// The answer, its EOS, and one spare token.
		maxNew := len(ex.Answer) + 2
		out, st, err := g.Generate(prompt, maxNew, tasks.EOS, Sampling{}, nil)
		if err != nil {
			return r, fmt.Errorf("evaluate %q: %w", ex.Prompt, err)
		}
		pred := tasks.DecodeAnswer(out)
		r.Total++
		if tasks.ExactMatch(pred, ex.Answer) {
			r.Correct++
		}
		if len(r.Examples) < keep {
			r.Examples = append(r.Examples, Scored{ex.Prompt, ex.Answer, pred})
		}
		r.Stats.PromptTokens += st.PromptTokens
		r.Stats.NewTokens += st.NewTokens
		r.Stats.Elapsed += st.Elapsed
	}
	return r, nil
}

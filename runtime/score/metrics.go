package score

import (
	"fmt"
	"sort"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/textdata"
)

// Routing counts, per MoE layer in layer order, the input tokens that took a copy expert
// (and so skipped the layer's FFN), by the character class of the token (textdata.Class).
type Routing struct {
	Layers []string
	Tokens map[string]int   // class → tokens counted
	Skips  []map[string]int // per layer: class → tokens that skipped
}

// Rate is layer l's skip rate on tokens of a class (0 when there are none).
func (r *Routing) Rate(l int, class string) float64 {
	if r.Tokens[class] == 0 {
		return 0
	}
	return float64(r.Skips[l][class]) / float64(r.Tokens[class])
}

// MeanRate is a class's skip rate averaged over the layers.
func (r *Routing) MeanRate(class string) float64 {
	if len(r.Layers) == 0 {
		return 0
	}
	s := 0.0
	for l := range r.Layers {
		s += r.Rate(l, class)
	}
	return s / float64(len(r.Layers))
}

func newRouting(f *Forward) *Routing {
	if len(f.m.MoE) == 0 || f.Config.ZeroExpertNum == 0 {
		return nil
	}
	r := &Routing{Tokens: map[string]int{}}
	for _, l := range f.m.MoE {
		r.Layers = append(r.Layers, l.Prefix)
		r.Skips = append(r.Skips, map[string]int{})
	}
	return r
}

// count adds row b's first n positions of a pass.
func (r *Routing) count(f *Forward, out *Output, b int, row []int, n int) {
	if r == nil {
		return
	}
	E, K, T := f.Config.NRoutedExperts, f.Config.NumExpertsPerTok, f.Seq
	for i := 0; i < n; i++ {
		c := textdata.Class(row[i])
		r.Tokens[c]++
		for l, idx := range out.Idx {
			for k := 0; k < K; k++ {
				if int(idx[(b*T+i)*K+k]) >= E {
					r.Skips[l][c]++
					break
				}
			}
		}
	}
}

// LMResult is a checkpoint's score on held-out text.
type LMResult struct {
	BitsPerChar float64
	Chars       int     // characters scored
	Nats        float64 // their summed cross-entropy
	// ClassBPC is bits per character by the class of the character predicted.
	ClassBPC map[string]float64
	// Routing is nil for a model without copy experts.
	Routing *Routing
}

// LM scores windows of held-out text (textdata.LM.HeldOutWindows; each of length f.Seq): every
// position but the last predicts the next character.
func LM(f *Forward, windows [][]int) (LMResult, error) {
	res := LMResult{Routing: newRouting(f), ClassBPC: map[string]float64{}}
	classNats, classN := map[string]float64{}, map[string]int{}
	for start := 0; start < len(windows); start += f.Batch {
		part := windows[start:min(start+f.Batch, len(windows))]
		out, err := f.Run(part)
		if err != nil {
			return res, err
		}
		for b, w := range part {
			for i := 0; i+1 < len(w); i++ {
				lg := out.At(b, i, f.Seq)
				if !finite(lg) {
					return res, fmt.Errorf("score: lm: the logits of window %d position %d are not finite", start+b, i)
				}
				nats := textdata.TokenNats(lg, w[i+1])
				res.Nats += nats
				res.Chars++
				c := textdata.Class(w[i+1])
				classNats[c] += nats
				classN[c]++
			}
			res.Routing.count(f, out, b, w, len(w))
		}
	}
	res.BitsPerChar = textdata.BitsPerChar(res.Nats, res.Chars)
	for c, n := range classN {
		res.ClassBPC[c] = textdata.BitsPerChar(classNats[c], n)
	}
	return res, nil
}

// Cell is exact match at one context length and depth.
type Cell struct {
	Length         int     `json:"length"`
	Depth          float64 `json:"depth"`
	Correct, Total int
}

// Accuracy is Correct/Total.
func (c Cell) Accuracy() float64 {
	if c.Total == 0 {
		return 0
	}
	return float64(c.Correct) / float64(c.Total)
}

// LongResult is a checkpoint's exact match on long-context examples, overall and per
// (length, depth) cell, cells sorted by length then depth.
type LongResult struct {
	Correct, Total int
	Cells          []Cell
	Routing        *Routing
}

// Accuracy is Correct/Total.
func (r LongResult) Accuracy() float64 { return Cell{Correct: r.Correct, Total: r.Total}.Accuracy() }

// Long scores long-context examples by teacher-forced exact match, compiling one forward
// pass per context length (batch rows of that length) from the checkpoint in dir.
// Lengths beyond the model's max_position_embeddings are an error: leave them out.
func Long(dir, executor string, dev *gpu.Device, batch int, exs []textdata.LongExample) (LongResult, error) {
	var res LongResult
	byLen := map[int][]textdata.LongExample{}
	var lengths []int
	for _, ex := range exs {
		if byLen[ex.Length] == nil {
			lengths = append(lengths, ex.Length)
		}
		byLen[ex.Length] = append(byLen[ex.Length], ex)
	}
	sort.Ints(lengths)
	cells := map[[2]float64]*Cell{}
	for _, L := range lengths {
		group := byLen[L]
		f, err := Open(dir, executor, dev, min(batch, len(group)), L)
		if err != nil {
			return res, err
		}
		if res.Routing == nil {
			res.Routing = newRouting(f)
		}
		err = scoreLong(f, group, cells, &res)
		f.Close()
		if err != nil {
			return res, err
		}
	}
	for _, c := range cells {
		res.Cells = append(res.Cells, *c)
	}
	sort.Slice(res.Cells, func(i, j int) bool {
		a, b := res.Cells[i], res.Cells[j]
		if a.Length != b.Length {
			return a.Length < b.Length
		}
		return a.Depth < b.Depth
	})
	return res, nil
}

func scoreLong(f *Forward, group []textdata.LongExample, cells map[[2]float64]*Cell, res *LongResult) error {
	for start := 0; start < len(group); start += f.Batch {
		part := group[start:min(start+f.Batch, len(group))]
		rows := make([][]int, len(part))
		seps := make([]int, len(part))
		for i, ex := range part {
			var err error
			if rows[i], seps[i], err = textdata.Row(ex); err != nil {
				return err
			}
		}
		out, err := f.Run(rows)
		if err != nil {
			return err
		}
		for b, row := range rows {
			ok := true
			for i := seps[b]; i+1 < len(row); i++ {
				lg := out.At(b, i, f.Seq)
				if !finite(lg) {
					return fmt.Errorf("score: the logits at position %d of a %d-token example are not finite", i, len(row))
				}
				if Argmax(lg) != row[i+1] {
					ok = false
					break
				}
			}
			ex := part[b]
			key := [2]float64{float64(ex.Length), ex.Depth}
			c := cells[key]
			if c == nil {
				c = &Cell{Length: ex.Length, Depth: ex.Depth}
				cells[key] = c
			}
			c.Total++
			res.Total++
			if ok {
				c.Correct++
				res.Correct++
			}
			res.Routing.count(f, out, b, row, len(row))
		}
	}
	return nil
}

package ocr

// Levenshtein is the edit distance between two strings over bytes (the OCR vocabulary is
// ASCII): the fewest insertions, deletions and substitutions that turn ref into hyp.
func Levenshtein(ref, hyp string) int {
	prev := make([]int, len(hyp)+1)
	cur := make([]int, len(hyp)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ref); i++ {
		cur[0] = i
		for j := 1; j <= len(hyp); j++ {
			sub := prev[j-1]
			if ref[i-1] != hyp[j-1] {
				sub++
			}
			cur[j] = min(sub, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(hyp)]
}

// Score accumulates the character error rate over many lines: CER = Σ edits / Σ reference
// characters (summed over lines, not averaged per line), and the share of lines read exactly.
type Score struct {
	Edits    int `json:"edits"`     // Levenshtein edits, summed over lines
	RefChars int `json:"ref_chars"` // reference characters, summed over lines
	Lines    int `json:"lines"`
	Exact    int `json:"exact"` // lines read without an edit
}

// Add scores one line.
func (s *Score) Add(ref, hyp string) { s.AddEdits(ref, Levenshtein(ref, hyp)) }

// AddEdits scores one line whose reading is edits (Levenshtein) edits from ref.
func (s *Score) AddEdits(ref string, edits int) {
	s.Edits += edits
	s.RefChars += len(ref)
	s.Lines++
	if edits == 0 {
		s.Exact++
	}
}

// Merge adds another score's counts.
func (s *Score) Merge(o Score) {
	s.Edits += o.Edits
	s.RefChars += o.RefChars
	s.Lines += o.Lines
	s.Exact += o.Exact
}

// CER is the character error rate (0 when there are no reference characters and no edits).
func (s Score) CER() float64 {
	if s.RefChars == 0 {
		if s.Edits == 0 {
			return 0
		}
		return 1
	}
	return float64(s.Edits) / float64(s.RefChars)
}

// ExactRate is the share of lines read exactly.
func (s Score) ExactRate() float64 {
	if s.Lines == 0 {
		return 0
	}
	return float64(s.Exact) / float64(s.Lines)
}

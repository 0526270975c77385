package textdata

import (
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Names of the long-context tasks.
const (
	NeedleName   = "needle"
	VarTrackName = "vartrack"
	PasskeyName  = "passkey"
	CopyName     = "longcopy"
)

// Context lengths of the long-context family: the evaluation grid's lengths, the default
// training range and the limits a task name may ask for.
var (
	// EvalLengths are the context lengths exact match is reported at (those a model's
	// max_position_embeddings reaches).
	EvalLengths = []int{256, 512, 1024, 2048, 4096}
	// EvalDepths are the needle depths exact match is reported at: 0 is the start of the
	// context, 1 its end.
	EvalDepths = []float64{0, 0.25, 0.5, 0.75, 1}
)

const (
	defaultMinLen = 256
	defaultMaxLen = 1024
	defaultHops   = 2
	minContext    = 40
	maxContext    = 1 << 16
	maxHops       = 8
	maxQueries    = 32
	maxDigits     = 5
	// minHeldOutDigits is the shortest passkey split into training and held-out keys.
	minHeldOutDigits = 3
)

// Long is a long-context task: needle (a list of key=value pairs, then a key to look up),
// vartrack (a list of assignments where a chain of Hops copies leads from a value to the
// variable asked about, among distractor chains), passkey (a key of Digits digits, 5 by
// default, marked "#12345. " hidden in repeated filler sentences and asked for at the end:
// passkey retrieval, Mohtashami & Jaggi 2023) or longcopy (a random string to repeat, every
// answer token a retrieval from as far back as the string is long: the copying task of
// Jelassi et al. 2024, "Repeat After Me"). Its examples are laid out as the synthetic
// tasks' are (BOS prompt SEP answer EOS, scored on the answer and EOS) and their length
// (all those tokens) is drawn from [MinLen, MaxLen] in training.
//
// Held-out split: the key (needle), the variable (vartrack), the passkey or the string
// (longcopy) an example asks about is held out when an FNV-1a hash of it is 0 mod 8
// (HeldOutName); training examples only ask about the others and evaluation examples only
// about those, so no evaluation question is ever a training question. Distractors may use
// any name. A passkey of one or two digits has too few keys to hold a share out (one of ten
// digits would never be seen in training at all): with Digits ≤ 2 every key is asked in both,
// and what evaluation holds out is the context around it, drawn from its own stream at lengths
// and depths of its own. The question ("?") is the same in every passkey example anyway; the
// answer is in the context, never in the model's memory.
//
// Queries > 1 (needle only) makes each training row ask about that many of its pairs, one
// after another (`…;?abcd` SEP `1234` `?efgh` SEP `5678` EOS), every answer scored: multi-query
// associative recall (Arora et al. 2023, "Zoology"), which gives a small model many more
// retrievals to learn from per row than one answer at the end. Evaluation still asks one
// question per example (Generate's format), so the score is comparable across Queries.
type Long struct {
	Kind           string // NeedleName or VarTrackName
	MinLen, MaxLen int    // context length range of training examples, in tokens
	Hops           int    // vartrack: copies between the value and the asked variable
	Queries        int    // needle: questions per training row (0 and 1: one)
	Digits         int    // passkey: digits of the key, 1..5 (0: 5)
	name           string
}

// LongExample is one long-context example with where its answer sits.
type LongExample struct {
	Prompt, Answer string
	// Length is the context length the example was made for; its tokens (BOS prompt SEP
	// answer EOS) are at most that many and at least Length − 10.
	Length int
	// Depth is where the asked pair (needle) or the chain's first assignment (vartrack) sits,
	// from 0 (first) to 1 (last place it can be).
	Depth float64
	Hops  int // vartrack only
}

// ParseLong reads a long-context task name: "needle" or "vartrack" (contexts 256–1024,
// 2 hops), "needle:MIN-MAX", "needle:MIN-MAX:QUERIES" (questions per training row, 1–32),
// "vartrack:MIN-MAX", "vartrack:MIN-MAX:HOPS", "passkey", "passkey:MIN-MAX",
// "passkey:MIN-MAX:DIGITS" (digits of the key, 1–5; default 5), "longcopy" or
// "longcopy:MIN-MAX". ok is false when the name is not a long-context task at all.
func ParseLong(name string) (t *Long, ok bool, err error) {
	kind, rest, hasRest := strings.Cut(name, ":")
	if !isLongKind(kind) {
		return nil, false, nil
	}
	t = &Long{Kind: kind, MinLen: defaultMinLen, MaxLen: defaultMaxLen, name: name}
	if kind == VarTrackName {
		t.Hops = defaultHops
	}
	if hasRest {
		parts := strings.Split(rest, ":")
		bad := func(why string) (*Long, bool, error) {
			form := kind + ":MIN-MAX[:QUERIES]"
			switch kind {
			case VarTrackName:
				form = kind + ":MIN-MAX[:HOPS]"
			case PasskeyName:
				form = kind + ":MIN-MAX[:DIGITS]"
			case CopyName:
				form = kind + ":MIN-MAX"
			}
			return nil, true, fmt.Errorf("textdata: task %q: %s (want %s, e.g. %s:256-1024)", name, why, form, kind)
		}
		if len(parts) > 2 || (kind == CopyName && len(parts) > 1) {
			return bad("too many fields")
		}
		lo, hi, found := strings.Cut(parts[0], "-")
		var e1, e2 error
		t.MinLen, e1 = strconv.Atoi(lo)
		t.MaxLen, e2 = strconv.Atoi(hi)
		if !found || e1 != nil || e2 != nil {
			return bad(fmt.Sprintf("%q is not a length range MIN-MAX", parts[0]))
		}
		if len(parts) == 2 && kind == VarTrackName {
			if t.Hops, e1 = strconv.Atoi(parts[1]); e1 != nil {
				return bad(fmt.Sprintf("%q is not a number of hops", parts[1]))
			}
		}
		if len(parts) == 2 && kind == PasskeyName {
			if t.Digits, e1 = strconv.Atoi(parts[1]); e1 != nil {
				return bad(fmt.Sprintf("%q is not a number of digits", parts[1]))
			}
			if t.Digits < 1 || t.Digits > maxDigits {
				return nil, true, fmt.Errorf("textdata: task %q: digits %d must be in 1..%d", name, t.Digits, maxDigits)
			}
		}
		if len(parts) == 2 && kind == NeedleName {
			if t.Queries, e1 = strconv.Atoi(parts[1]); e1 != nil {
				return bad(fmt.Sprintf("%q is not a number of queries", parts[1]))
			}
			if t.Queries < 1 || t.Queries > maxQueries {
				return nil, true, fmt.Errorf("textdata: task %q: queries %d must be in 1..%d", name, t.Queries, maxQueries)
			}
		}
	}
	if t.MinLen < minContext || t.MaxLen < t.MinLen || t.MaxLen > maxContext {
		return nil, true, fmt.Errorf("textdata: task %q: context lengths [%d, %d] must satisfy %d ≤ MIN ≤ MAX ≤ %d", name, t.MinLen, t.MaxLen, minContext, maxContext)
	}
	if kind == NeedleName && t.Queries > 1 {
		if need := multiNeedleLen(t.Queries, t.Queries); t.MinLen < need {
			return nil, true, fmt.Errorf("textdata: task %q: %d queries need contexts of at least %d tokens", name, t.Queries, need)
		}
	}
	if kind == VarTrackName {
		if t.Hops < 1 || t.Hops > maxHops {
			return nil, true, fmt.Errorf("textdata: task %q: hops %d must be in 1..%d", name, t.Hops, maxHops)
		}
		if need := 11 + 9 + 8*t.Hops; t.MinLen < need {
			return nil, true, fmt.Errorf("textdata: task %q: %d hops need contexts of at least %d tokens", name, t.Hops, need)
		}
	}
	return t, true, nil
}

// isLongKind reports whether kind (a task name's part before any ":") is a long-context task.
func isLongKind(kind string) bool {
	return kind == NeedleName || kind == VarTrackName || kind == PasskeyName || kind == CopyName
}

// Depths is the depths to score at when asked for these: longcopy copies the whole string, so
// it has the one depth 0; the other kinds take them as they are.
func (t *Long) Depths(asked []float64) []float64 {
	if t.Kind == CopyName {
		return []float64{0}
	}
	return asked
}

// Name is the task's name as ParseLong accepts it.
func (t *Long) Name() string { return t.name }

// MaxSeqLen is MaxLen: training seq_len must reach it.
func (t *Long) MaxSeqLen() int { return t.MaxLen }

// VocabSize is the tokenizer's size; a model's vocab_size must reach it.
func (t *Long) VocabSize() int { return VocabSize }

// Chance is the exact match of guessing: the probability that an answer drawn uniformly
// from the task's answers is right, 10^−digits for passkey, 10^−4 for the 4-digit values
// of needle and vartrack, 0 for longcopy (26^−n for a string of n ≥ 18 letters).
func (t *Long) Chance() float64 {
	switch t.Kind {
	case PasskeyName:
		return math.Pow10(-t.digits())
	case CopyName:
		return 0
	}
	return 1e-4
}

// HeldOutName reports whether an asked key or variable belongs to the held-out split.
func HeldOutName(name string) bool {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()%8 == 0
}

// Generate makes one example of context length length (within the task's limits, not its
// training range) with the answer at depth in [0, 1], asking about a held-out name or a
// training one.
func (t *Long) Generate(rng *rand.Rand, length int, depth float64, heldOut bool) (LongExample, error) {
	if length < minContext || length > maxContext {
		return LongExample{}, fmt.Errorf("textdata: %s: context length %d must be in %d..%d", t.Kind, length, minContext, maxContext)
	}
	if !(depth >= 0 && depth <= 1) {
		return LongExample{}, fmt.Errorf("textdata: %s: depth %v must be in [0, 1]", t.Kind, depth)
	}
	switch t.Kind {
	case NeedleName:
		return needle(rng, length, depth, heldOut), nil
	case PasskeyName:
		return passkey(rng, length, depth, t.digits(), heldOut), nil
	case CopyName:
		return longCopy(rng, length, heldOut), nil
	}
	if need := 11 + 9 + 8*t.Hops; length < need {
		return LongExample{}, fmt.Errorf("textdata: vartrack: %d hops need contexts of at least %d tokens, not %d", t.Hops, need, length)
	}
	return vartrack(rng, length, depth, t.Hops, heldOut), nil
}

// names draws distinct lowercase names of n letters.
type names struct {
	rng  *rand.Rand
	n    int
	used map[string]bool
}

func (s *names) draw(pred func(string) bool) string {
	b := make([]byte, s.n)
	for {
		for i := range b {
			b[i] = byte('a' + s.rng.IntN(26))
		}
		if k := string(b); !s.used[k] && (pred == nil || pred(k)) {
			s.used[k] = true
			return k
		}
	}
}

func value(rng *rand.Rand) string { return fmt.Sprintf("%04d", rng.IntN(10000)) }

// needle: "k=v;" pairs (4 letters, 4 digits: 10 tokens each), then "?" and the asked key;
// 10n + 12 tokens in all.
func needle(rng *rand.Rand, length int, depth float64, heldOut bool) LongExample {
	n := max(2, (length-12)/10)
	nm := &names{rng: rng, n: 4, used: map[string]bool{}}
	key := nm.draw(func(k string) bool { return HeldOutName(k) == heldOut })
	at := int(math.Round(depth * float64(n-1)))
	var b strings.Builder
	var answer string
	for i := 0; i < n; i++ {
		k, v := "", value(rng)
		if i == at {
			k, answer = key, v
		} else {
			k = nm.draw(nil)
		}
		b.WriteString(k + "=" + v + ";")
	}
	b.WriteString("?" + key)
	return LongExample{Prompt: b.String(), Answer: answer, Length: length, Depth: depth}
}

// passkeyFiller is the repeated distractor text of passkey retrieval (Mohtashami & Jaggi
// 2023, "Landmark Attention", §4.2), one sentence after another in this order.
var passkeyFiller = []string{"The grass is green. ", "The sky is blue. ", "The sun is yellow. ", "Here we go. ", "There and back again. "}

// digits is the passkey's key length: Digits, or 5 when unset.
func (t *Long) digits() int {
	if t.Digits == 0 {
		return maxDigits
	}
	return t.Digits
}

// passkey: filler text (passkeyFiller repeated, starting anywhere in it, so it may begin
// mid-sentence) with "#12345. " (a key of digits digits) inserted at the sentence boundary
// nearest depth (0: before the filler, 1: after it), then "?"; exactly length tokens in all
// (BOS prompt SEP answer EOS). Keys of 3 or more digits are split into training and
// held-out ones by HeldOutName; shorter ones are not (see Long).
func passkey(rng *rand.Rand, length int, depth float64, digits int, heldOut bool) LongExample {
	var key string
	for {
		key = fmt.Sprintf("%0*d", digits, rng.IntN(int(math.Pow10(digits))))
		if digits < minHeldOutDigits || HeldOutName(key) == heldOut {
			break
		}
	}
	mark := "#" + key + ". "
	n := length - len(mark) - 4 - digits // BOS, "?", SEP, the digits, EOS
	cycle := strings.Join(passkeyFiller, "")
	start := rng.IntN(len(cycle))
	filler := strings.Repeat(cycle, (start+n)/len(cycle)+1)[start : start+n]
	// Sentence boundaries: 0, n, and after every ". ".
	cuts := []int{0}
	for i := 2; i < n; i++ {
		if filler[i-2:i] == ". " {
			cuts = append(cuts, i)
		}
	}
	cuts = append(cuts, n)
	at, want := 0, depth*float64(n)
	for _, c := range cuts {
		if math.Abs(float64(c)-want) < math.Abs(float64(at)-want) {
			at = c
		}
	}
	return LongExample{Prompt: filler[:at] + mark + filler[at:] + "?", Answer: key, Length: length, Depth: depth}
}

// longCopy: a random lowercase string of (length − 3)/2 letters, answered by itself (BOS x SEP
// x EOS: length or length − 1 tokens). Every answer token is a retrieval from exactly as far
// back as the string is long. Depth has no meaning here: it is 0.
func longCopy(rng *rand.Rand, length int, heldOut bool) LongExample {
	b := make([]byte, (length-3)/2)
	for {
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		if HeldOutName(string(b)) == heldOut {
			break
		}
	}
	return LongExample{Prompt: string(b), Answer: string(b), Length: length}
}

// multiNeedleLen is the tokens of a multi-query needle row with n pairs and q questions:
// BOS, 10 per pair, 10 per question ("?abcd" SEP "1234"), EOS.
func multiNeedleLen(n, q int) int { return 10*n + 10*q + 2 }

// multiNeedle is a training row of at most length tokens asking q questions about distinct
// pairs at random places (training keys only), and which of its positions are scored: each
// SEP and answer digit but the last of a question predicts the next digit, the last question's
// last digit predicts EOS.
func multiNeedle(rng *rand.Rand, length, q int) (row []int, scored []bool, err error) {
	n := max(q, (length-2-10*q)/10)
	nm := &names{rng: rng, n: 4, used: map[string]bool{}}
	asked := rng.Perm(n)[:q]
	keys, vals := make([]string, n), make([]string, n)
	isAsked := map[int]bool{}
	for _, i := range asked {
		isAsked[i] = true
		keys[i] = nm.draw(func(k string) bool { return !HeldOutName(k) })
	}
	var b strings.Builder
	for i := 0; i < n; i++ {
		if !isAsked[i] {
			keys[i] = nm.draw(nil)
		}
		vals[i] = value(rng)
		b.WriteString(keys[i] + "=" + vals[i] + ";")
	}
	row = []int{BOS}
	add := func(text string) {
		ids, e := Encode(text)
		if e != nil && err == nil {
			err = e
		}
		row = append(row, ids...)
	}
	add(b.String())
	for j, i := range asked {
		add("?" + keys[i])
		row = append(row, SEP)
		from := len(row) - 1
		add(vals[i])
		scored = append(scored, make([]bool, len(row)-len(scored))...)
		for p := from; p < len(row)-1; p++ {
			scored[p] = true
		}
		if j == q-1 {
			scored[len(row)-1] = true
		}
	}
	return append(row, EOS), append(scored, false), err
}

// vartrack: assignments "abc=1234;" (9 tokens) and "abc=xyz;" (8 tokens), then "?" and the
// asked variable. The asked chain is v0=value; v1=v0; …; vh=v(h−1), its first assignment at
// depth; distractor chains of 0..h copies fill the rest, each in its own order.
func vartrack(rng *rand.Rand, length int, depth float64, hops int, heldOut bool) LongExample {
	nm := &names{rng: rng, n: 3, used: map[string]bool{}}
	chain := func(h int, last func(string) bool) ([]string, string) {
		vars := make([]string, h+1)
		// The asked variable is drawn first so the split predicate sees a free choice.
		vars[h] = nm.draw(last)
		for i := 0; i < h; i++ {
			vars[i] = nm.draw(nil)
		}
		v := value(rng)
		st := []string{vars[0] + "=" + v + ";"}
		for i := 1; i <= h; i++ {
			st = append(st, vars[i]+"="+vars[i-1]+";")
		}
		return st, v
	}
	target, answer := chain(hops, func(k string) bool { return HeldOutName(k) == heldOut })
	asked := target[hops][:3]
	budget := length - 11 - (9 + 8*hops)
	var filler [][]string
	for budget >= 9 {
		h := rng.IntN(hops + 1)
		for h > 0 && 9+8*h > budget {
			h--
		}
		st, _ := chain(h, nil)
		filler = append(filler, st)
		budget -= 9 + 8*h
	}
	// Interleave the distractor chains, each in order: pick the next chain with probability
	// proportional to the statements it has left.
	var mixed []string
	left := 0
	for _, c := range filler {
		left += len(c)
	}
	next := make([]int, len(filler))
	for ; left > 0; left-- {
		r := rng.IntN(left)
		for i, c := range filler {
			rem := len(c) - next[i]
			if r < rem {
				mixed = append(mixed, c[next[i]])
				next[i]++
				break
			}
			r -= rem
		}
	}
	// Place the asked chain: its first assignment at depth among the places that leave room
	// for its copies after it, the copies at random later places.
	N := len(mixed) + len(target)
	first := int(math.Round(depth * float64(N-1-hops)))
	pos := map[int]int{first: 0}
	later := rng.Perm(N - 1 - first)[:hops]
	sortInts(later)
	for i, p := range later {
		pos[first+1+p] = i + 1
	}
	var b strings.Builder
	m := 0
	for i := 0; i < N; i++ {
		if k, ok := pos[i]; ok {
			b.WriteString(target[k])
			continue
		}
		b.WriteString(mixed[m])
		m++
	}
	b.WriteString("?" + asked)
	return LongExample{Prompt: b.String(), Answer: answer, Length: length, Depth: depth, Hops: hops}
}

func sortInts(v []int) {
	for i := 1; i < len(v); i++ {
		for j := i; j > 0 && v[j] < v[j-1]; j-- {
			v[j], v[j-1] = v[j-1], v[j]
		}
	}
}

// Batch draws batchSize training examples (context length uniform in [MinLen, MaxLen],
// depth uniform in [0, 1], training names only) laid out as tasks.Task.Batch lays them out,
// padded with PAD to seqLen ≥ MaxLen.
func (t *Long) Batch(rng *rand.Rand, batchSize, seqLen int) (tokens, targets []uint32, weights []float32, err error) {
	if batchSize < 1 {
		return nil, nil, nil, fmt.Errorf("textdata: %s: batch size %d must be positive", t.Kind, batchSize)
	}
	if seqLen < t.MaxLen {
		return nil, nil, nil, fmt.Errorf("textdata: %s: seq_len %d is shorter than the longest context %d", t.name, seqLen, t.MaxLen)
	}
	if t.Kind == NeedleName && t.Queries > 1 {
		rows, scored := make([][]int, batchSize), make([][]bool, batchSize)
		for i := range rows {
			l := t.MinLen + rng.IntN(t.MaxLen-t.MinLen+1)
			if rows[i], scored[i], err = multiNeedle(rng, l, t.Queries); err != nil {
				return nil, nil, nil, err
			}
		}
		return layoutRows(rows, scored, seqLen)
	}
	exs := make([]LongExample, batchSize)
	for i := range exs {
		l := t.MinLen + rng.IntN(t.MaxLen-t.MinLen+1)
		if exs[i], err = t.Generate(rng, l, rng.Float64(), false); err != nil {
			return nil, nil, nil, err
		}
	}
	return Layout(exs, seqLen)
}

// Layout lays examples out for training or teacher-forced scoring: each row BOS prompt SEP
// answer EOS, padded with PAD to seqLen; targets are the next token from SEP through the
// last answer token (IgnoreIndex elsewhere) and weights 1/count there (count over all rows).
// A row longer than seqLen is an error.
func Layout(exs []LongExample, seqLen int) (tokens, targets []uint32, weights []float32, err error) {
	rows, scored := make([][]int, len(exs)), make([][]bool, len(exs))
	for b, ex := range exs {
		row, sep, err := Row(ex)
		if err != nil {
			return nil, nil, nil, err
		}
		rows[b], scored[b] = row, make([]bool, len(row))
		for i := sep; i < len(row)-1; i++ {
			scored[b][i] = true
		}
	}
	return layoutRows(rows, scored, seqLen)
}

// layoutRows lays token rows out padded with PAD to seqLen: the target of a scored position
// is the next token, weighted 1/count (count over all rows); other targets are IgnoreIndex.
func layoutRows(rows [][]int, scored [][]bool, seqLen int) (tokens, targets []uint32, weights []float32, err error) {
	n := len(rows) * seqLen
	tokens, targets, weights = make([]uint32, n), make([]uint32, n), make([]float32, n)
	for i := range targets {
		targets[i] = IgnoreIndex
	}
	count := 0
	for b, row := range rows {
		if len(row) > seqLen {
			return nil, nil, nil, fmt.Errorf("textdata: an example of %d tokens does not fit seq_len %d", len(row), seqLen)
		}
		for i, id := range row {
			tokens[b*seqLen+i] = uint32(id)
			if scored[b][i] && i+1 < len(row) {
				targets[b*seqLen+i] = uint32(row[i+1])
				count++
			}
		}
	}
	w := float32(1 / float64(count))
	for i, tg := range targets {
		if tg != IgnoreIndex {
			weights[i] = w
		}
	}
	return tokens, targets, weights, nil
}

// Row is an example's token row, BOS prompt SEP answer EOS, and the index of its SEP.
func Row(ex LongExample) (row []int, sep int, err error) {
	p, err := PromptTokens(ex.Prompt)
	if err != nil {
		return nil, 0, err
	}
	a, err := Encode(ex.Answer)
	if err != nil {
		return nil, 0, err
	}
	return append(append(p, a...), EOS), len(p) - 1, nil
}

// evalStream is the PCG stream evaluation sets draw from (training batches use
// tasks.TrainRNG's).
const evalStream = 0x6c6f_6e67_6576_6c01 // "longevl"

// EvalSet draws perCell held-out examples at every (length, depth) pair, lengths outer,
// from the evaluation stream of seed; the same arguments give the same set everywhere.
func (t *Long) EvalSet(lengths []int, depths []float64, perCell int, seed uint64) ([]LongExample, error) {
	rng := rand.New(rand.NewPCG(seed, evalStream))
	var out []LongExample
	for _, l := range lengths {
		for _, d := range depths {
			for i := 0; i < perCell; i++ {
				ex, err := t.Generate(rng, l, d, true)
				if err != nil {
					return nil, err
				}
				out = append(out, ex)
			}
		}
	}
	return out, nil
}

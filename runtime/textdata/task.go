package textdata

import (
	"math/rand/v2"
	"strings"
)

// Task is what every task of this package is: a training batch source (it satisfies
// train.Source) with its own vocabulary.
type Task interface {
	Name() string
	MaxSeqLen() int
	VocabSize() int
	Batch(rng *rand.Rand, batchSize, seqLen int) (tokens, targets []uint32, weights []float32, err error)
}

// Names describes the task names this package knows, for help texts.
func Names() []string {
	return []string{LMName, NeedleName + "[:MIN-MAX[:QUERIES]]", VarTrackName + "[:MIN-MAX[:HOPS]]", PasskeyName + "[:MIN-MAX[:DIGITS]]", CopyName + "[:MIN-MAX]"}
}

// IsName reports whether name is one of this package's tasks (well formed or not), so a
// caller knows whom to ask.
func IsName(name string) bool {
	kind, _, _ := strings.Cut(name, ":")
	return name == LMName || isLongKind(kind)
}

// Open returns the named task; lm reads its corpus from fortuneDir (DefaultFortuneDir when
// empty). ok is false when the name is none of this package's.
func Open(name, fortuneDir string) (t Task, ok bool, err error) {
	if name == LMName {
		if fortuneDir == "" {
			fortuneDir = DefaultFortuneDir
		}
		c, err := LoadCorpus(fortuneDir)
		if err != nil {
			return nil, true, err
		}
		return NewLM(c), true, nil
	}
	l, ok, err := ParseLong(name)
	if !ok || err != nil {
		return nil, ok, err
	}
	return l, true, nil
}

package ocrdata

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/moegpu/moegpu/internal/atomicfile"
)

// evalFile matches the numbered files WriteEvalSet owns in a condition
// directory.
var evalFile = regexp.MustCompile(`^([0-9]{4,})\.(png|gt\.txt)$`)

// conditionSeed is the second PCG word of a condition's stream, so each
// condition's lines depend only on the seed and its name (adding a
// condition does not change the others).
func conditionSeed(cond string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(cond))
	return h.Sum64()
}

// WriteEvalSet writes perCondition lines for every condition of
// Conditions() from the split's fonts:
//
//	dir/<condition>/NNNN.png     8-bit grey PNG, natural size
//	dir/<condition>/NNNN.gt.txt  the ground truth, no trailing newline
//	dir/manifest.tsv             file, condition, font, cap_px, detail, text
//
// NNNN counts from 0000. Each file is written atomically (temporary file
// and rename); numbered files left from an earlier, larger set are removed.
// The lines depend only on seed, the installed fonts and text files.
// It fails when perCondition < 1, the split has no fonts, or a file cannot
// be written; the error names the file.
func WriteEvalSet(dir string, split Split, perCondition int, seed uint64) error {
	if perCondition < 1 {
		return fmt.Errorf("ocrdata.WriteEvalSet: perCondition %d < 1", perCondition)
	}
	g, err := New(Options{Split: split})
	if err != nil {
		return fmt.Errorf("ocrdata.WriteEvalSet: %w", err)
	}
	var manifest strings.Builder
	manifest.WriteString("file\tcondition\tfont\tcap_px\tdetail\ttext\n")
	for _, cond := range Conditions() {
		cdir := filepath.Join(dir, cond)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return fmt.Errorf("ocrdata.WriteEvalSet: %w", err)
		}
		rng := rand.New(rand.NewPCG(seed, conditionSeed(cond)))
		keep := map[string]bool{}
		for i := range perCondition {
			line, err := g.SampleCondition(rng, cond)
			if err != nil {
				return fmt.Errorf("ocrdata.WriteEvalSet: %s line %d: %w", cond, i, err)
			}
			var b bytes.Buffer
			if err := png.Encode(&b, line.Image); err != nil {
				return fmt.Errorf("ocrdata.WriteEvalSet: encode %s line %d: %w", cond, i, err)
			}
			name := fmt.Sprintf("%04d", i)
			keep[name+".png"], keep[name+".gt.txt"] = true, true
			for _, f := range []struct {
				path string
				data []byte
			}{
				{filepath.Join(cdir, name+".png"), b.Bytes()},
				{filepath.Join(cdir, name+".gt.txt"), []byte(line.Text)},
			} {
				if err := atomicfile.Write(f.path, f.data); err != nil {
					return fmt.Errorf("ocrdata.WriteEvalSet: write %s: %w", f.path, err)
				}
			}
			fmt.Fprintf(&manifest, "%s/%s.png\t%s\t%s\t%.1f\t%s\t%s\n",
				cond, name, cond, line.Font, line.CapHeight, line.Detail, line.Text)
		}
		ents, err := os.ReadDir(cdir)
		if err != nil {
			return fmt.Errorf("ocrdata.WriteEvalSet: %w", err)
		}
		for _, e := range ents {
			if evalFile.MatchString(e.Name()) && !keep[e.Name()] {
				if err := os.Remove(filepath.Join(cdir, e.Name())); err != nil {
					return fmt.Errorf("ocrdata.WriteEvalSet: remove stale %w", err)
				}
			}
		}
	}
	mpath := filepath.Join(dir, "manifest.tsv")
	if err := atomicfile.Write(mpath, []byte(manifest.String())); err != nil {
		return fmt.Errorf("ocrdata.WriteEvalSet: write %s: %w", mpath, err)
	}
	return nil
}

package ocrdata

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"image/png"
	"io/fs"
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
// and rename). dir must be new, empty, or an eval set written here before
// (it has a manifest.tsv): then the files of the earlier set that the new
// one does not rewrite (an earlier, larger set's) are removed, and nothing
// else in dir is touched. The lines depend only on seed, the installed fonts
// and text files. It fails when perCondition < 1, dir holds other files and
// no manifest, the split has no fonts, or a file cannot be written; the
// error names the file.
func WriteEvalSet(dir string, split Split, perCondition int, seed uint64) error {
	if perCondition < 1 {
		return fmt.Errorf("write eval set %s: %d lines per condition (want ≥ 1)", dir, perCondition)
	}
	earlier, err := earlierEvalFiles(dir)
	if err != nil {
		return err
	}
	g, err := New(Options{Split: split})
	if err != nil {
		return fmt.Errorf("write eval set %s: %w", dir, err)
	}
	var manifest strings.Builder
	manifest.WriteString("file\tcondition\tfont\tcap_px\tdetail\ttext\n")
	for _, cond := range Conditions() {
		cdir := filepath.Join(dir, cond)
		if err := os.MkdirAll(cdir, 0o755); err != nil {
			return fmt.Errorf("write eval set: %w", err)
		}
		rng := rand.New(rand.NewPCG(seed, conditionSeed(cond)))
		keep := map[string]bool{}
		for i := range perCondition {
			line, err := g.SampleCondition(rng, cond)
			if err != nil {
				return fmt.Errorf("write eval set %s: %s line %d: %w", dir, cond, i, err)
			}
			var b bytes.Buffer
			if err := png.Encode(&b, line.Image); err != nil {
				return fmt.Errorf("write eval set %s: encode %s line %d: %w", dir, cond, i, err)
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
					return fmt.Errorf("write eval set: %s: %w", f.path, err)
				}
			}
			fmt.Fprintf(&manifest, "%s/%s.png\t%s\t%s\t%.1f\t%s\t%s\n",
				cond, name, cond, line.Font, line.CapHeight, line.Detail, line.Text)
		}
		for _, name := range earlier[cond] {
			if keep[name] {
				continue
			}
			if err := os.Remove(filepath.Join(cdir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("write eval set %s: remove the earlier set's %w", dir, err)
			}
		}
	}
	mpath := filepath.Join(dir, "manifest.tsv")
	if err := atomicfile.Write(mpath, []byte(manifest.String())); err != nil {
		return fmt.Errorf("write eval set: %s: %w", mpath, err)
	}
	return nil
}

// earlierEvalFiles returns, per condition, the numbered files (NNNN.png, NNNN.gt.txt) of the
// eval set an earlier WriteEvalSet left in dir, read from its manifest.tsv: the only files a
// new set over it may remove. A missing or empty dir has none; a dir holding other files and
// no manifest is refused, so a folder of the user's own is never written into.
func earlierEvalFiles(dir string) (map[string][]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("write eval set: %w", err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "manifest.tsv"))
	if errors.Is(err, fs.ErrNotExist) {
		if len(ents) > 0 {
			return nil, fmt.Errorf("write eval set: %s already holds files and is not an eval set (no manifest.tsv): choose a new or empty folder", dir)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("write eval set: %w", err)
	}
	out := map[string][]string{}
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		cond, name, ok := strings.Cut(strings.SplitN(line, "\t", 2)[0], "/")
		if !ok || strings.Contains(name, "/") || !evalFile.MatchString(name) {
			continue
		}
		base := strings.TrimSuffix(name, ".png")
		out[cond] = append(out[cond], base+".png", base+".gt.txt")
	}
	return out, nil
}

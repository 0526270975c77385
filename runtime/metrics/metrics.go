// Package metrics records a training run step by step as JSON Lines (one object per step in
// DIR/metrics.jsonl) and turns it into a loss plot, so people and tools can follow a run while it
// runs and compare runs after.
package metrics

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/moegpu/moegpu/internal/atomicfile"
)

// FileName is the name of the metrics file inside a run directory.
const FileName = "metrics.jsonl"

// Record is one training step. Non-finite numbers (a diverged loss) are written as the strings
// "NaN", "+Inf", "-Inf", because JSON has no such numbers and a diverged step is exactly the one
// worth recording.
type Record struct {
	Step       int                `json:"step"`
	Loss       float64            `json:"loss"`
	LR         float64            `json:"lr"`
	GradNorm   float64            `json:"grad_norm"`
	TokensPerS float64            `json:"tokens_per_s"`
	Extras     map[string]float64 `json:"extras,omitempty"`
}

// jfloat is a float64 that survives JSON when it is NaN or ±Inf.
type jfloat float64

func (f jfloat) MarshalJSON() ([]byte, error) {
	v := float64(f)
	switch {
	case math.IsNaN(v):
		return []byte(`"NaN"`), nil
	case math.IsInf(v, 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(v, -1):
		return []byte(`"-Inf"`), nil
	}
	return strconv.AppendFloat(nil, v, 'g', -1, 64), nil
}

func (f *jfloat) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"NaN"`:
		*f = jfloat(math.NaN())
		return nil
	case `"+Inf"`, `"Inf"`:
		*f = jfloat(math.Inf(1))
		return nil
	case `"-Inf"`:
		*f = jfloat(math.Inf(-1))
		return nil
	case "null":
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("%s is not a number", b)
	}
	*f = jfloat(v)
	return nil
}

type wireRecord struct {
	Step       int               `json:"step"`
	Loss       jfloat            `json:"loss"`
	LR         jfloat            `json:"lr"`
	GradNorm   jfloat            `json:"grad_norm"`
	TokensPerS jfloat            `json:"tokens_per_s"`
	Extras     map[string]jfloat `json:"extras,omitempty"`
}

// MarshalJSON writes the record with non-finite numbers as strings (see Record).
func (r Record) MarshalJSON() ([]byte, error) {
	w := wireRecord{Step: r.Step, Loss: jfloat(r.Loss), LR: jfloat(r.LR), GradNorm: jfloat(r.GradNorm),
		TokensPerS: jfloat(r.TokensPerS)}
	if len(r.Extras) > 0 {
		w.Extras = make(map[string]jfloat, len(r.Extras))
		for k, v := range r.Extras {
			w.Extras[k] = jfloat(v)
		}
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes. Keys it does not know are ignored, so files
// written by a newer version still read.
func (r *Record) UnmarshalJSON(b []byte) error {
	var w wireRecord
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*r = Record{Step: w.Step, Loss: float64(w.Loss), LR: float64(w.LR), GradNorm: float64(w.GradNorm),
		TokensPerS: float64(w.TokensPerS)}
	if len(w.Extras) > 0 {
		r.Extras = make(map[string]float64, len(w.Extras))
		for k, v := range w.Extras {
			r.Extras[k] = float64(v)
		}
	}
	return nil
}

// Writer appends records to DIR/metrics.jsonl, one line per Write, each handed to the OS as a
// single write so a reader (a live plot, tail -f) sees whole lines and a crash loses at most the
// line being written. Safe for concurrent use.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	path string
}

// NewWriter opens DIR/metrics.jsonl for appending, creating DIR and the file as needed, so a
// resumed run continues the same file. A partial last line left by a crash is cut off first, so
// the new records do not glue onto it.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	path := filepath.Join(dir, FileName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if err := trimPartialLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("metrics: %s: %w", path, err)
	}
	return &Writer{f: f, path: path}, nil
}

// trimPartialLine truncates f after its last newline and leaves the offset at the end.
func trimPartialLine(f *os.File) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	end := size
	buf := make([]byte, 4096)
	for end > 0 {
		n := int64(len(buf))
		if n > end {
			n = end
		}
		if _, err := f.ReadAt(buf[:n], end-n); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			end = end - n + int64(i) + 1
			break
		}
		end -= n
	}
	if end != size {
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	_, err = f.Seek(end, io.SeekStart)
	return err
}

// Path is the file the writer appends to.
func (w *Writer) Path() string { return w.path }

// Write appends one record as one line.
func (w *Writer) Write(r Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("metrics: step %d: %w", r.Step, err)
	}
	b = append(b, '\n')
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return errors.New("metrics: write after Close")
	}
	if _, err := w.f.Write(b); err != nil {
		return fmt.Errorf("metrics: %s: %w", w.path, err)
	}
	return nil
}

// Close syncs and closes the file. Closing twice is harmless.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	serr := f.Sync()
	if err := f.Close(); err != nil {
		return fmt.Errorf("metrics: %s: %w", w.path, err)
	}
	if serr != nil {
		return fmt.Errorf("metrics: %s: %w", w.path, serr)
	}
	return nil
}

// ReadJSONL reads every record of a metrics file. A malformed line is an error naming its line
// number, except a last line with no newline that does not parse: that is a write still in
// progress (or cut by a crash) and is skipped.
func ReadJSONL(path string) ([]Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var out []Record
	lines := bytes.Split(b, []byte{'\n'})
	for i, text := range lines {
		if len(bytes.TrimSpace(text)) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(text, &r); err != nil {
			if i == len(lines)-1 { // last line, no trailing newline: a partial write
				break
			}
			return nil, fmt.Errorf("metrics: %s line %d: %v", path, i+1, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// Reset removes DIR/metrics.jsonl: a fresh run starts its own record.
func Reset(dir string) error {
	err := os.Remove(filepath.Join(dir, FileName))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// KeepUpTo drops the records after step from DIR/metrics.jsonl: a run
// resumed from a checkpoint at that step recomputes them, and must not
// leave them twice. The file is rewritten atomically.
func KeepUpTo(dir string, step int) error {
	path := filepath.Join(dir, FileName)
	recs, err := ReadJSONL(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var b bytes.Buffer
	for _, r := range recs {
		if r.Step > step {
			continue
		}
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("metrics: step %d: %w", r.Step, err)
		}
		b.Write(append(line, '\n'))
	}
	return atomicfile.Write(path, b.Bytes())
}

package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moegpu/moegpu/assets/models"
	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrdata"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// ocrModelDir resolves --model (see models.OCRDir) and prints where a built-in model was
// unpacked.
func ocrModelDir(flagValue string, stderr io.Writer) (string, error) {
	dir, note, err := models.OCRDir(flagValue)
	if note != "" {
		fmt.Fprintf(stderr, "note: %s\n", note)
	}
	return dir, err
}

func runOCR(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ocr", "ocr [flags] IMAGE...   |   ocr --eval DIR [flags]", stderr)
	setHelp(fs, stderr, func(w io.Writer) { fmt.Fprint(w, ocrUsage) })
	model := fs.String("model", "", "OCR model directory (config.json + model.safetensors); default: $MOEGPU_OCR_MODEL, else the shipped "+models.OCRSmall+" (from the checkout, or the copy built into moegpu)")
	jsonOut := fs.Bool("json", false, "print JSON instead of text (the fields are listed above)")
	spec := fs.Bool("speculative", false, "read each line with MTP speculative decoding (the model's MTP heads draft, one main forward verifies) instead of batched greedy decoding: each piece read once, one at a time, with no confidence and so no second look; its text is what --no-second-look gives")
	batch := fs.Int("batch", ocr.DefaultBatch, "how many line pieces the GPU reads at once, ≥ 1: lower it if the GPU runs out of memory (the text does not depend on it; fewer pieces use a smaller batch: 1, 4, 16, 64, then multiples of 64, or one already compiled with at most 32 rows to spare)")
	f16 := fs.Bool("f16", false, "store the linear layers' weights in half precision")
	allLines := fs.Bool("all-lines", false, "keep every line a page's line finder found, also those the model doubts (confidence under 0.6) and reads as mostly punctuation, which are otherwise left out as no text (a photographed table's blurred grid, a card's rim)")
	noSecond := fs.Bool("no-second-look", false, "turn off the second look, for comparing or for speed: by default a line the model doubts is cut again and read again (confidence under 0.95: 0.85 and 1.2 times as wide, only 1.2 for narrow characters, under 11 columns a character, and only 0.85 for wide ones, 20 or more; 0.95 to 0.98: 1.2 times as wide), and the most confident reading kept")
	noRepeat := fs.Bool("no-repeat-check", false, "turn off two corrections, for comparing: by default a stretch read twice (\"IT, IT\" for \"IT,\") and a leader run that swallowed the number after it (\"Honduras ---------\" for \"Honduras ----- 38\") are mended from the model's second, column-by-column reading of the line")
	single := fs.Bool("line", false, "read each image as one text line (a crop of a line): its tallest line only, as Tesseract's --psm 7; --eval always does")
	evalDir := fs.String("eval", "", "score a folder of NAME.png + NAME.gt.txt (one text line per image, read as --line; or pages, when some NAME.gt.txt holds several lines; subfolders are reported separately): CER, exact lines or pages, ms a line or page; with --json every reading too")
	writeEval := fs.String("write-eval", "", "write an eval folder instead of reading: rendered lines of every condition (DIR/<condition>/NNNN.png + NNNN.gt.txt), from the held-out validation fonts by default; no model needed")
	perCond := fs.Int("per-condition", 100, "with --write-eval: lines per condition, ≥ 1")
	evalSeed := fs.Uint64("seed", 1, "with --write-eval: the seed the lines are drawn from")
	split := fs.String("split", "validation", "with --write-eval: validation (held-out font families) or train")
	var df deviceFlags
	addDeviceFlags(fs, &df)
	var prof profiling
	prof.register(fs)
	files, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	defer prof.start()()
	if *writeEval != "" {
		return writeOCREvalSet(*writeEval, *split, *perCond, *evalSeed, len(files), stdout)
	}
	var writeOnly []string
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "per-condition" || f.Name == "seed" || f.Name == "split" {
			writeOnly = append(writeOnly, "--"+f.Name)
		}
	})
	if len(writeOnly) > 0 {
		return fmt.Errorf("%s applies only with --write-eval DIR", strings.Join(writeOnly, " and "))
	}
	if *batch < 1 {
		return fmt.Errorf("--batch %d must be at least 1", *batch)
	}
	if *evalDir == "" && len(files) == 0 {
		return fmt.Errorf("give one or more image files (PNG, JPEG, GIF, BMP, TIFF, WebP), or --eval DIR")
	}
	if *evalDir != "" && len(files) > 0 {
		return fmt.Errorf("--eval DIR scores a folder; it takes no image arguments (got %q)", files[0])
	}
	// Check the inputs first: a bad file is reported before the model is built, and the
	// others are still read (the run then ends with an error).
	var imgs []image.Image
	var names []string
	var bad []error
	var failed []error // per file: its load error, or nil
	pages := false     // an eval folder of pages
	if *evalDir != "" {
		set, err := evalSet(*evalDir)
		if err != nil {
			return err
		}
		if pages = evalPages(set); pages && *single {
			return fmt.Errorf("--line: eval folder %s holds pages (a NAME.gt.txt of several lines), which --eval reads as pages", *evalDir)
		}
	} else {
		failed = make([]error, len(files))
		if n := countOf(files, "-"); n > 1 {
			return fmt.Errorf("standard input (-) can be given once, not %d times", n)
		}
		for i, p := range files {
			var img image.Image
			var err error
			if p == "-" {
				img, err = ocrimage.Decode(ocrStdin, "standard input")
			} else {
				img, err = ocrimage.Load(p)
			}
			if err != nil {
				bad, failed[i] = append(bad, err), err
				continue
			}
			imgs, names = append(imgs, img), append(names, p)
		}
		if len(imgs) == 0 {
			if *jsonOut {
				// Still an array, one entry per file, for a script that parses the output.
				out := make([]ocrJSONItem, len(files))
				for i, p := range files {
					out[i] = ocrJSONItem{File: p, Error: failed[i].Error()}
				}
				if err := writeJSON(stdout, out); err != nil {
					return err
				}
			}
			return errors.Join(bad...)
		}
		for _, err := range bad {
			fmt.Fprintf(stderr, "moegpu ocr: %v (skipped)\n", err)
		}
	}
	dir, err := ocrModelDir(*model, stderr)
	if err != nil {
		return err
	}
	// unread is the run's error when some images could not be read.
	unread := func() error {
		if len(bad) == 0 {
			return nil
		}
		return fmt.Errorf("%d of %d images could not be read (see above)", len(bad), len(files))
	}
	d, err := df.open()
	if err != nil {
		return err
	}
	defer d.Close()
	rec, err := ocr.Open(dir, d, ocr.Options{Batch: *batch, F16: *f16, Speculative: *spec, SingleLine: *single || *evalDir != "" && !pages, NoRepeatCheck: *noRepeat, NoSecondLook: *noSecond, AllLines: *allLines})
	if err != nil {
		return err
	}
	defer rec.Close()
	if *evalDir != "" {
		rep, err := evalOCRFolder(rec, *evalDir, stderr)
		if err != nil {
			return err
		}
		if *jsonOut {
			return writeJSON(stdout, struct {
				Folder  string `json:"folder"`
				Model   string `json:"model"`
				Adapter string `json:"adapter"`
				*evalReport
			}{*evalDir, dir, rec.Adapter(), rep})
		}
		rep.print(stdout, "moegpu "+filepath.Base(dir)+" on "+rec.Adapter())
		return nil
	}
	res, err := rec.RecognizeAll(imgs, nil)
	if err != nil {
		return err
	}
	if *jsonOut {
		for i := range res { // times to 0.01 ms (a line's own are rounded as it is written)
			res[i].PrepareMs, res[i].DecodeMs = ocr.RoundTo(res[i].PrepareMs, 100), ocr.RoundTo(res[i].DecodeMs, 100)
		}
		// Every file in the order given; one that could not be read holds only its error.
		type item = ocrJSONItem
		out := make([]item, 0, len(files))
		next := 0 // the next of res, in the order of names
		for i, p := range files {
			if next < len(names) && names[next] == p && failed[i] == nil {
				out = append(out, item{File: p, Result: &res[next]})
				next++
				continue
			}
			out = append(out, item{File: p, Error: failed[i].Error()})
		}
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
		return unread()
	}
	for i, r := range res {
		if len(files) > 1 { // headed whenever several were given, even if only one could be read
			fmt.Fprintf(stdout, "==> %s <==\n", names[i])
		}
		fmt.Fprintln(stdout, r.Text())
		if len(r.Lines) == 0 {
			fmt.Fprintf(stderr, "%s: no text found (%.1f ms to prepare)\n", names[i], r.PrepareMs)
			continue
		}
		n := len(r.Lines)
		lines := "lines"
		if len(r.Lines) == 1 {
			lines = "line"
		}
		fmt.Fprintf(stderr, "%s: %d %s, %.1f ms/line (its lines' share of the batched decoding), %.1f ms to prepare, on %s%s\n", names[i], len(r.Lines), lines, r.DecodeMs/float64(n), r.PrepareMs, rec.Adapter(), specSummary(r))
	}
	return unread()
}

// ocrJSONItem is one file of moegpu ocr --json: its result, or only the error that kept it
// from being read.
type ocrJSONItem struct {
	File  string `json:"file"`
	Error string `json:"error,omitempty"`
	*ocr.Result
}

// writeJSON writes v to w as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// countOf is how many of list are s.
func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

// ocrStdin is what the IMAGE "-" reads (a variable for the tests).
var ocrStdin io.Reader = os.Stdin

// ocrUsage is what moegpu ocr --help prints before its flags.
const ocrUsage = `Usage: moegpu ocr [flags] IMAGE...   |   moegpu ocr --eval DIR [flags]

Prints the text of each image (PNG, JPEG, GIF, BMP, TIFF or WebP): a screenshot, a scan, a
photo of print; "-" reads one image from standard input. Its lines come out one per output
line, top to bottom; with several images, each is headed "==> FILE <==". Timings go to
stderr. Printable ASCII only: other characters are read as their nearest ASCII look-alike, or
not at all.

How an image is read: turned grey (transparency over white paper, or over black where
light text would vanish on white), a background that drifts across a page (a gradient, uneven
light) evened out, light-on-dark text inverted, a page whose lines all slope levelled, split
into lines (horizontal rules, the thin lines of a table's grid, a card's coloured bar, icons
(rings and toggle switches too), photos, solid borders and a dark frame around the page left
out; a dark bar, button, table header or code box on a light page, or a light card or a
photographed sheet on a darker ground, read with its own polarity), each line
scaled to the model's height and cut into pieces at word spaces (and at every blank of one
line height or more on a page, two in a line read alone: a table's cells, a receipt's
columns), and read; a line the model doubts is cut again and read again (confidence under
0.95: 0.85 and 1.2 times as wide, only 1.2 for narrow characters and only 0.85 for wide ones;
0.95 to 0.98: 1.2 times as wide), and the most confident reading kept (--no-second-look). A
row of dashes or equals signs set without spaces (a receipt's separator) is counted where the
model reads it as such; on a page, a row read as dashes far longer than its width holds at the page's
character pitch is recounted from that pitch. A line of a page the model doubts (confidence
under 0.6) and reads as mostly punctuation (a photographed table's blurred grid) is left out,
and so is such a piece of a line (a table's faint column line between two cells)
(--all-lines). Lines come out top to bottom, side-by-side ones (buttons in a row) left to
right. There is no layout analysis: text in columns or table cells is read across the page,
row by row, and indentation is lost.

--json prints an array, one object per IMAGE in the order given:
  file         the path as given
  error        why the file could not be read (then the only other key)
  lines        its text lines, top to bottom, each:
    box        {x0, y0, x1, y1}: the line in source pixels (x1, y1 exclusive; for a sloping
               line, the box that holds it)
    text       the line's text
    segments   how many pieces the line was cut into and read separately (in the reading kept)
    ms         the line's share of the model's time (pieces are read side by side in batches),
               its second look included
    confidence the geometric mean of the probabilities the model gave the characters it read
               (and the line's end), 0 to 1: about 0.99 for clear print, under 0.8 for noise
               or pictures read as text; a line with one or two wrong characters can
               still score above 0.95 (not with --speculative)
    speculative  with --speculative: verify rounds, tokens, drafts tried and accepted per MTP head
  prepare_ms   time to find and scale the image's lines
  decode_ms    the model's time for the whole image (the sum of its lines' ms)
The exit status is 1 when any file could not be read (the others are still read).

--eval DIR scores a folder of NAME.png + NAME.gt.txt pairs (one line each) and prints the
character error rate (CER) and exact lines per subfolder and overall, and ms a line over the
whole folder (its lines are read in shared batches); with --json, the scores and every line's
reference, reading and edits as JSON. A folder where some NAME.gt.txt holds several lines is
one of pages: each image is read as a page and scored on its lines joined by newlines (blank
lines of the reference left out), per page;
--write-eval DIR [--per-condition N] [--seed S] [--split validation|train] renders such a
folder from the training data's generator (no model needed).

Flags:
`

// specSummary is "; speculative: …" with an image's MTP speculative decoding statistics summed
// over its lines (drafts accepted per verify round, each head's acceptance rate), or "" when it
// was read without.
func specSummary(r ocr.Result) string {
	sum := r.Spec()
	if sum == nil || sum.Rounds == 0 {
		return ""
	}
	rates := make([]string, len(sum.Attempts))
	for k := range rates {
		rates[k] = fmt.Sprintf("%.2f", sum.Acceptance(k))
	}
	return fmt.Sprintf("; speculative: %d tokens in %d verify rounds, %.2f drafts accepted a round, acceptance by head %s",
		sum.Tokens, sum.Rounds, sum.MeanAccepted(), strings.Join(rates, "/"))
}

// evalLine is one scored image of an eval folder.
type evalLine struct {
	group, name, ref, path string
}

// evalRef is the reference text of a NAME.gt.txt: its lines without trailing blanks or
// carriage returns, blank lines left out (a page's paragraph breaks are layout, which moegpu ocr
// does not print), joined by newlines.
func evalRef(gt string) string {
	var lines []string
	for _, l := range strings.Split(gt, "\n") {
		if l = strings.TrimRight(l, " \t\r"); l != "" {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

// evalPages says whether an eval folder holds pages: some reference of several lines. Then
// every image of it is read and scored as a page, its lines in order, one per line of text.
func evalPages(set []evalLine) bool {
	return slices.ContainsFunc(set, func(l evalLine) bool { return strings.Contains(l.ref, "\n") })
}

// evalUnit names what an eval folder's images are: "page" or "line".
func evalUnit(pages bool) string {
	if pages {
		return "page"
	}
	return "line"
}

// evalSet lists DIR's NAME.png + NAME.gt.txt pairs (in DIR and its subfolders, grouped by
// subfolder; "." for DIR itself), sorted.
func evalSet(dir string) ([]evalLine, error) {
	if fi, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("eval folder %s: %w", dir, err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("eval folder %s is a file: --eval and bench ocr take a folder of NAME.png + NAME.gt.txt (write one with moegpu ocr --write-eval DIR)", dir)
	}
	var out []evalLine
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() || !strings.HasSuffix(p, ".gt.txt") {
			return nil
		}
		base := strings.TrimSuffix(p, ".gt.txt")
		img := ""
		for _, ext := range []string{".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"} {
			if _, err := os.Stat(base + ext); err == nil {
				img = base + ext
				break
			}
		}
		if img == "" {
			return fmt.Errorf("%s has no image beside it (NAME.png, .jpg, .tif, …)", p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		ref := evalRef(string(b))
		rel, _ := filepath.Rel(dir, filepath.Dir(p))
		out = append(out, evalLine{group: rel, name: filepath.Base(base), ref: ref, path: img})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("eval folder %s: %w", dir, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("eval folder %s holds no NAME.gt.txt files", dir)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].group != out[j].group {
			return out[i].group < out[j].group
		}
		return out[i].name < out[j].name
	})
	return out, nil
}

// evalReport is one recogniser's scores on an eval folder, per group and overall. Scores
// count images (Score.Lines): lines, or in a folder of pages, pages (Unit).
type evalReport struct {
	Unit    string               `json:"unit"` // "line" or "page": what each image is
	Groups  []string             `json:"groups"`
	Scores  map[string]ocr.Score `json:"scores"`
	Overall ocr.Score            `json:"overall"`
	// TotalMs is the time the whole folder took: its lines are read side by side, so the time
	// is not split by group.
	TotalMs float64      `json:"total_ms"`
	Lines   []evalResult `json:"lines"` // every image (a line, or a page), in the folder's order
}

// evalResult is one line's reading in an eval report.
type evalResult struct {
	Group string `json:"set"`
	Name  string `json:"name"`
	Ref   string `json:"ref"`   // a page's lines joined by newlines
	Text  string `json:"text"`  // likewise
	Edits int    `json:"edits"` // Levenshtein edits from ref to text (a newline is a character)
}

// newEvalReport is an empty report of a folder of unit ("line" or "page") images read in
// totalMs.
func newEvalReport(totalMs float64, unit string) *evalReport {
	return &evalReport{Unit: unit, Scores: map[string]ocr.Score{}, TotalMs: totalMs}
}

func (r *evalReport) add(group, name, ref, hyp string) {
	e := ocr.Levenshtein(ref, hyp)
	r.Lines = append(r.Lines, evalResult{Group: group, Name: name, Ref: ref, Text: hyp, Edits: e})
	if _, ok := r.Scores[group]; !ok {
		r.Groups = append(r.Groups, group)
	}
	s := r.Scores[group]
	s.AddEdits(ref, e)
	r.Scores[group] = s
	r.Overall.AddEdits(ref, e)
}

func (r *evalReport) print(w io.Writer, title string) {
	u := r.Unit
	fmt.Fprintf(w, "%s\n| set | %ss | CER | exact %ss | ms/%s |\n|---|---:|---:|---:|---:|\n", title, u, u, u)
	for _, g := range r.Groups {
		s := r.Scores[g]
		fmt.Fprintf(w, "| %s | %d | %.2f%% | %.1f%% | – |\n", g, s.Lines, 100*s.CER(), 100*s.ExactRate())
	}
	fmt.Fprintf(w, "| **all** | %d | %.2f%% | %.1f%% | %.1f |\n", r.Overall.Lines, 100*r.Overall.CER(), 100*r.Overall.ExactRate(), r.TotalMs/float64(max(1, r.Overall.Lines)))
	fmt.Fprintf(w, "\nms/%s: the whole folder's time over its %ss (their lines are read side by side in shared batches, so the time is not split by set).\n", u, u)
	if u == "page" {
		fmt.Fprintln(w, "CER of a page: edits between its text and the reference, lines joined by newlines (a line split in two or two run together costs an edit).")
	}
}

// evalOCRFolder reads every image of an eval folder, batching the whole folder, and scores
// it: as one text line each (its lines joined by spaces; rec reads with SingleLine), or in a
// folder of pages (evalPages), as a page, its lines joined by newlines.
func evalOCRFolder(rec *ocr.Recognizer, dir string, progress io.Writer) (*evalReport, error) {
	set, err := evalSet(dir)
	if err != nil {
		return nil, err
	}
	pages := evalPages(set)
	sep := " "
	if pages {
		sep = "\n"
	}
	imgs := make([]image.Image, len(set))
	for i, l := range set {
		if imgs[i], err = ocrimage.Load(l.path); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	res, err := rec.RecognizeAll(imgs, func(done, total int) {
		fmt.Fprintf(progress, "\rread %d/%d line pieces", done, total)
	})
	fmt.Fprintln(progress)
	if err != nil {
		return nil, err
	}
	wall := float64(time.Since(start).Microseconds()) / 1000
	rep := newEvalReport(wall, evalUnit(pages))
	for i, l := range set {
		texts := make([]string, len(res[i].Lines))
		for j, line := range res[i].Lines {
			texts[j] = line.Text
		}
		rep.add(l.group, l.name, l.ref, strings.Join(texts, sep))
	}
	return rep, nil
}

// writeJSONFile writes v as indented JSON through a temporary file and a rename.
func writeJSONFile(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'))
}

// writeOCREvalSet renders an eval folder with ocrdata.WriteEvalSet.
func writeOCREvalSet(dir, split string, perCond int, seed uint64, nargs int, stdout io.Writer) error {
	if nargs > 0 {
		return fmt.Errorf("--write-eval DIR takes no image arguments")
	}
	if perCond < 1 {
		return fmt.Errorf("--per-condition %d must be at least 1", perCond)
	}
	var sp ocrdata.Split
	switch split {
	case "validation":
		sp = ocrdata.Validation
	case "train":
		sp = ocrdata.Train
	default:
		return fmt.Errorf("--split %q: want validation or train", split)
	}
	start := time.Now()
	if err := ocrdata.WriteEvalSet(dir, sp, perCond, seed); err != nil {
		return err
	}
	lines := "lines"
	if perCond == 1 {
		lines = "line"
	}
	fmt.Fprintf(stdout, "wrote %d %s per condition (%s) from the %s fonts, seed %d, to %s in %s\n",
		perCond, lines, strings.Join(ocrdata.Conditions(), ", "), split, seed, dir, time.Since(start).Round(time.Millisecond))
	return nil
}

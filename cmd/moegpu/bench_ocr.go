package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moegpu/moegpu/internal/procenv"
	"github.com/moegpu/moegpu/runtime/ocr"
)

// runBenchOCR scores an eval folder with moegpu's OCR model and, when it is installed, with
// Tesseract on the same images, and prints both side by side.
func runBenchOCR(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench ocr", "bench ocr DIR [--model M] [--json F] [--tesseract PATH] [--psm N] [--batch N] [--no-second-look] [--backend B] [--adapter A]\n\nReads the eval folder DIR (NAME.png + NAME.gt.txt, one text line each; moegpu ocr --write-eval\nwrites one) with moegpu ocr and with Tesseract, and prints both side by side: CER and exact\nlines per subfolder and overall, ms a line over the whole folder. A folder where some\nNAME.gt.txt holds several lines is one of pages: each image is read as a page (moegpu ocr\nwithout --line, Tesseract --psm 6) and scored on its lines joined by newlines, per page", stderr)
	model := fs.String("model", "", "OCR model directory; default: as moegpu ocr (see its --help)")
	batch := fs.Int("batch", ocr.DefaultBatch, "most line pieces read side by side per GPU submission, ≥ 1 (fewer pieces use a smaller batch: 1, 4, 16, 64, then multiples of 64)")
	tessBin := fs.String("tesseract", "tesseract", "the Tesseract executable (skipped, with a note, when it is not installed)")
	psm := fs.Int("psm", 7, "Tesseract page segmentation mode: 7 treats each image as one text line, as the folder's ground truth is; for a folder of pages the default is 6, one block of text (moegpu ocr has no layout analysis either)")
	jsonPath := fs.String("json", "", "also write both reports as JSON to this file")
	noSecond := fs.Bool("no-second-look", false, "read each line once, as moegpu ocr --no-second-look does")
	var df deviceFlags
	addDeviceFlags(fs, &df)
	var dirArg []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") { // DIR may come before the flags
		dirArg, args = append(dirArg, args[0]), args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	dirArg = append(dirArg, fs.Args()...)
	if len(dirArg) != 1 {
		return fmt.Errorf("want one eval folder of NAME.png + NAME.gt.txt (write one with moegpu ocr --write-eval DIR), got %d arguments", len(dirArg))
	}
	folder := dirArg[0]
	if *batch < 1 {
		return fmt.Errorf("--batch %d must be at least 1", *batch)
	}
	set, err := evalSet(folder)
	if err != nil {
		return err
	}
	pages := evalPages(set)
	unit := evalUnit(pages)
	if pages {
		given := false
		fs.Visit(func(f *flag.Flag) { given = given || f.Name == "psm" })
		if !given {
			*psm = 6
		}
	}
	dir, err := ocrModelDir(*model, stderr)
	if err != nil {
		return err
	}
	d, err := df.open()
	if err != nil {
		return err
	}
	defer d.Close()
	rec, err := ocr.Open(dir, d, ocr.Options{Batch: *batch, SingleLine: !pages, NoSecondLook: *noSecond}) // one line per image, as --psm 7, or pages
	if err != nil {
		return err
	}
	defer rec.Close()
	fmt.Fprintf(stderr, "moegpu (%s on %s): %d %ss\n", filepath.Base(dir), rec.Adapter(), len(set), unit)
	mine, err := evalOCRFolder(rec, folder, stderr)
	if err != nil {
		return err
	}
	var tess *evalReport
	version := ""
	if path, err := exec.LookPath(*tessBin); err != nil {
		fmt.Fprintf(stderr, "note: %s is not installed (Debian: apt-get install tesseract-ocr): only moegpu's scores follow\n", *tessBin)
	} else {
		version = tesseractVersion(path)
		fmt.Fprintf(stderr, "%s (psm %d): %d %ss\n", version, *psm, len(set), unit)
		if tess, err = evalTesseract(path, *psm, set, pages); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "OCR on %s (%d %ss): CER = edits / reference characters, summed over %ss\n\n", folder, len(set), unit, unit)
	fmt.Fprintf(stdout, "| set | %ss | moegpu CER | tesseract CER | moegpu exact | tesseract exact | moegpu ms/%s | tesseract ms/%s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n", unit, unit, unit)
	// Times are the whole folder's (both read it in one go), so only the last row has them.
	row := func(name string, a ocr.Score, b *ocr.Score, timed bool) {
		bc, be, am, bm := "–", "–", "–", "–"
		if b != nil {
			bc, be = fmt.Sprintf("%.2f%%", 100*b.CER()), fmt.Sprintf("%.1f%%", 100*b.ExactRate())
			if timed {
				bm = fmt.Sprintf("%.1f", tess.TotalMs/float64(b.Lines))
			}
		}
		if timed {
			am = fmt.Sprintf("%.1f", mine.TotalMs/float64(a.Lines))
		}
		fmt.Fprintf(stdout, "| %s | %d | %.2f%% | %s | %.1f%% | %s | %s | %s |\n", name, a.Lines, 100*a.CER(), bc, 100*a.ExactRate(), be, am, bm)
	}
	for _, g := range mine.Groups {
		var b *ocr.Score
		if tess != nil {
			s := tess.Scores[g]
			b = &s
		}
		row(g, mine.Scores[g], b, false)
	}
	var b *ocr.Score
	if tess != nil {
		b = &tess.Overall
	}
	row("**all**", mine.Overall, b, true)
	tessNote := fmt.Sprintf("%s: one process over the whole list, --psm %d, -l eng", nonEmpty(version, "tesseract"), *psm)
	if tess == nil {
		tessNote = *tessBin + ": not installed, not run"
	}
	fmt.Fprintf(stdout, "\nmoegpu: %s on %s, batched %d segments per submission; %s. ms/%s: the whole folder's time over its %ss.\n",
		filepath.Base(dir), rec.Adapter(), *batch, tessNote, unit, unit)
	if pages {
		fmt.Fprintln(stdout, "CER of a page: edits between its text and the reference, lines joined by newlines (a line split in two or two run together costs an edit).")
	}
	if *jsonPath != "" {
		return writeJSONFile(*jsonPath, map[string]any{"folder": folder, "moegpu": mine, "tesseract": tess,
			"tesseract_version": version, "model": dir, "adapter": rec.Adapter()})
	}
	return nil
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func tesseractVersion(path string) string {
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return "tesseract"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// evalTesseract runs Tesseract once over the whole list of images (one process: its start-up
// and model loading are paid once, as moegpu's are) and scores each image's text, images
// being separated by form feeds in its output: as one line (tesseractText), or for a folder of
// pages, as a page (tesseractPage). The time per image is the wall time over the images.
func evalTesseract(bin string, psm int, set []evalLine, asPages bool) (*evalReport, error) {
	list, err := os.CreateTemp("", "moegpu-tesseract-*.txt")
	if err != nil {
		return nil, err
	}
	defer os.Remove(list.Name())
	for _, l := range set {
		abs, _ := filepath.Abs(l.path)
		fmt.Fprintln(list, abs)
	}
	if err := list.Close(); err != nil {
		return nil, err
	}
	start := time.Now()
	cmd := exec.Command(bin, list.Name(), "stdout", "--psm", fmt.Sprint(psm), "-l", "eng")
	// Tesseract runs in the environment the user started moegpu with, not in the one moegpu
	// restarted itself with (procenv: huge pages would change Tesseract's time too).
	cmd.Env = append(procenv.Undo(os.Environ()), "OMP_THREAD_LIMIT=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("tesseract: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	wall := float64(time.Since(start).Microseconds()) / 1000
	outPages := strings.Split(stdout.String(), "\f")
	if len(outPages) > 0 && strings.TrimSpace(outPages[len(outPages)-1]) == "" {
		outPages = outPages[:len(outPages)-1]
	}
	if len(outPages) != len(set) {
		return nil, fmt.Errorf("tesseract gave %d pages for %d images", len(outPages), len(set))
	}
	rep := newEvalReport(wall, evalUnit(asPages))
	for i, l := range set {
		text := tesseractText(outPages[i])
		if asPages {
			text = tesseractPage(outPages[i])
		}
		rep.add(l.group, l.name, l.ref, text)
	}
	return rep, nil
}

// tesseractPage is a page's text as tesseractText spells a line, one line per line, blank
// lines (Tesseract's paragraph breaks) left out.
func tesseractPage(page string) string {
	var lines []string
	for _, l := range strings.Split(page, "\n") {
		if t := tesseractText(l); t != "" {
			lines = append(lines, t)
		}
	}
	return strings.Join(lines, "\n")
}

// tesseractText joins a page's lines with single spaces and trims it (Tesseract ends a line
// with a newline and may print curly quotes, which the ASCII ground truth spells straight).
func tesseractText(page string) string {
	page = strings.NewReplacer("\u2018", "'", "\u2019", "'", "\u201c", "\"", "\u201d", "\"", "\u2014", "--", "\u2013", "-", "\ufb01", "fi", "\ufb02", "fl").Replace(page)
	return strings.Join(strings.Fields(page), " ")
}

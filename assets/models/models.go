// Package models carries the shipped OCR model (assets/models/ocr-small: config.json and
// model.safetensors, about 8 MB) inside the binaries that read it, and resolves which model
// directory a command uses, so `moegpu ocr` and the desktop app work from any directory, not
// only from a checkout.
package models

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// OCRSmall is the shipped OCR model's path inside a checkout, relative to its root.
const OCRSmall = "assets/models/ocr-small"

// EnvOCRModel names the environment variable that overrides the default OCR model directory.
const EnvOCRModel = "MOEGPU_OCR_MODEL"

// files are the files a model directory needs (the checkpoint's config and weights).
var files = []string{"config.json", "model.safetensors"}

//go:embed ocr-small/config.json ocr-small/model.safetensors
var ocrSmall embed.FS

// OCRDir resolves the OCR model directory a command reads: flag when set; else
// $MOEGPU_OCR_MODEL; else the shipped model in the working directory's checkout or in the
// checkout the executable was built in (up to two levels above it); else the copy of the
// shipped model built into this binary, unpacked once to the user's cache directory
// (os.UserCacheDir()/moegpu/ocr-small-HASH, written to a temporary name and renamed; other
// versions' copies unpacked over an hour before are then removed). The note says so when this call unpacked it ("" otherwise). It fails only when the built-in
// model cannot be unpacked; the error names the directory.
func OCRDir(flag string) (dir, note string, err error) {
	if flag != "" {
		return flag, "", nil
	}
	if env := os.Getenv(EnvOCRModel); env != "" {
		return env, "", nil
	}
	cands := []string{OCRSmall}
	if exe, err := os.Executable(); err == nil {
		d := filepath.Dir(exe)
		cands = append(cands, filepath.Join(d, OCRSmall), filepath.Join(d, "..", OCRSmall), filepath.Join(d, "..", "..", OCRSmall))
	}
	for _, c := range cands {
		if complete(c) {
			return c, "", nil
		}
	}
	dir, fresh, err := unpack()
	if err != nil || !fresh {
		return dir, "", err
	}
	return dir, fmt.Sprintf("no %s here: unpacked the OCR model built into this binary to %s", OCRSmall, dir), nil
}

// complete reports whether dir holds every file of a model.
func complete(dir string) bool {
	for _, f := range files {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.IsDir() {
			return false
		}
	}
	return true
}

// unpack writes the built-in model to the cache directory, once per model version (the
// directory name carries a hash of the weights), and returns that directory and whether this
// call wrote it.
func unpack() (string, bool, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	weights, err := ocrSmall.ReadFile("ocr-small/model.safetensors")
	if err != nil {
		return "", false, fmt.Errorf("built-in OCR model: %w", err)
	}
	sum := sha256.Sum256(weights)
	root := filepath.Join(cache, "moegpu")
	dir := filepath.Join(root, "ocr-small-"+hex.EncodeToString(sum[:6]))
	if complete(dir) {
		return dir, false, nil
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", false, fmt.Errorf("unpack the built-in OCR model: %w", err)
	}
	tmp, err := os.MkdirTemp(root, ".ocr-small-*")
	if err != nil {
		return "", false, fmt.Errorf("unpack the built-in OCR model: %w", err)
	}
	defer os.RemoveAll(tmp) // nothing is left after the rename
	for _, f := range files {
		b, err := fs.ReadFile(ocrSmall, "ocr-small/"+f)
		if err == nil {
			err = os.WriteFile(filepath.Join(tmp, f), b, 0o644)
		}
		if err != nil {
			return "", false, fmt.Errorf("unpack the built-in OCR model to %s: %w", tmp, err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if complete(dir) { // another process unpacked it first
			return dir, false, nil
		}
		return "", false, fmt.Errorf("unpack the built-in OCR model to %s: %w", dir, err)
	}
	pruneUnpacked(root, dir)
	return dir, true, nil
}

// staleAfter is how long an unpacked model of another version is kept after it was unpacked:
// a process of that version may still be opening it.
const staleAfter = time.Hour

// pruneUnpacked removes from root the unpacked models of other versions (ocr-small-HASH
// directories other than keep) unpacked more than staleAfter ago, so upgrades do not pile up
// copies (about 7 MB each). Errors are ignored: the cache is only tidied.
func pruneUnpacked(root, keep string) {
	ents, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(root, e.Name())
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "ocr-small-") || p == keep {
			continue
		}
		if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > staleAfter {
			os.RemoveAll(p)
		}
	}
}

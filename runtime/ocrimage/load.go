// Package ocrimage turns a user's picture of printed text into the line tensors the OCR model
// reads: it loads the file (PNG, JPEG, GIF, BMP, TIFF, WebP), converts it to grey, decides
// which side is paper and which is ink, finds the text lines, and scales each line to the
// model's height, cutting long lines at the spaces between words.
//
// The model's input is an ink map: float32, row-major, Height rows of up to MaxWidth columns,
// 1 = ink and 0 = paper (runtime/config.ImageConfig; the model cuts it into 4-px column
// strips). Prepare does the whole chain; Gray, Normalize, SplitLines and LineStrips are its
// steps, exported so a tool can show or test each one.
//
// Every failure is an error that names the file and what is wrong with it; nothing in the
// package panics on bad input, including inside the third-party decoders.
package ocrimage

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
	"golang.org/x/image/webp"
)

// Limits on the images Load and Decode accept, checked from the header before any pixel is
// decoded, so a small file claiming a huge picture cannot make the decoder allocate gigabytes.
const (
	MaxSide   = 30000      // pixels, either side
	MaxPixels = 40_000_000 // width × height (40 megapixels: 160 MB as RGBA)

	// MaxFileBytes bounds the file itself, which is read into memory whole (512 MiB: an
	// uncompressed 40-megapixel TIFF at 8 bits a channel, with room to spare).
	MaxFileBytes = 512 << 20
)

// Kinds of failure. Every error Load and Decode return is an *Error whose Unwrap yields one of
// these (test with errors.Is) and, where there is one, the decoder's own error.
var (
	ErrEmpty       = errors.New("empty file")
	ErrNotImage    = errors.New("not an image")
	ErrTruncated   = errors.New("truncated image")
	ErrCorrupt     = errors.New("corrupt image")
	ErrUnsupported = errors.New("unsupported image variant")
	ErrSize        = errors.New("unusable image size") // zero, or beyond MaxSide, MaxPixels or MaxFileBytes
	ErrRead        = errors.New("read error")
)

// Error is a failure to load one image: File is the name the caller gave (a path for Load),
// Problem says what is wrong in words, Kind is one of the Err* values above and Err the
// underlying error, if any. Error() reads "File: Problem" (plus ": Err" when that adds
// something).
type Error struct {
	File    string
	Problem string
	Kind    error
	Err     error
}

// Error reads "File: Problem", plus ": Err" when there is an underlying error.
func (e *Error) Error() string {
	if e.Err == nil {
		return e.File + ": " + e.Problem
	}
	cause := e.Err
	var pe *fs.PathError
	if errors.As(cause, &pe) {
		cause = pe.Err // "no such file or directory", not the path again
	}
	return e.File + ": " + e.Problem + ": " + cause.Error()
}

// Unwrap gives errors.Is and errors.As both the kind and the underlying error.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// format is one image format the package reads: how its files start and how to decode them.
type format struct {
	name   string
	magic  []string // signatures; '?' matches any byte
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

var formats = []format{
	{"PNG", []string{"\x89PNG\r\n\x1a\n"}, png.DecodeConfig, png.Decode},
	{"JPEG", []string{"\xff\xd8"}, jpeg.DecodeConfig, jpeg.Decode},
	{"GIF", []string{"GIF87a", "GIF89a"}, gif.DecodeConfig, gif.Decode},
	{"BMP", []string{"BM"}, bmp.DecodeConfig, bmp.Decode},
	{"TIFF", []string{"II*\x00", "MM\x00*"}, tiff.DecodeConfig, tiff.Decode},
	{"WebP", []string{"RIFF????WEBPVP8"}, webp.DecodeConfig, webp.Decode},
}

// sniffLen is how many leading bytes identify every format above.
const sniffLen = 15

// match reports whether head starts with sig; with partial, whether head (shorter than sig) is
// a prefix of it, as a cut-off file would be.
func match(head []byte, sig string, partial bool) bool {
	if len(head) < len(sig) {
		if !partial || len(head) < 2 {
			return false
		}
		sig = sig[:len(head)]
	} else if partial {
		return false
	}
	for i := 0; i < len(sig); i++ {
		if sig[i] != '?' && sig[i] != head[i] {
			return false
		}
	}
	return true
}

// sniff finds the format head starts with; cut is true when head is only the start of a
// signature (the file ends inside it).
func sniff(head []byte) (f *format, cut bool) {
	for i := range formats {
		for _, sig := range formats[i].magic {
			if match(head, sig, false) {
				return &formats[i], false
			}
		}
	}
	for i := range formats {
		for _, sig := range formats[i].magic {
			if match(head, sig, true) {
				return &formats[i], true
			}
		}
	}
	return nil, false
}

// Load reads the image file at path: Decode with the path as the name. Errors name the path;
// a file over MaxFileBytes is refused before it is read.
func Load(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Problem: "cannot open", Kind: ErrRead, Err: err}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxFileBytes {
		return nil, &Error{File: path, Problem: fmt.Sprintf("file is %d MiB; the limit is %d MiB", fi.Size()>>20, MaxFileBytes>>20), Kind: ErrSize}
	}
	return Decode(f, path)
}

// limits are the size limits one decode enforces: the exported constants, or smaller ones in
// the fuzz test so that headers claiming big pictures do not make every run allocate 160 MB.
type limits struct {
	side   int
	pixels int64
	bytes  int64
}

var defaultLimits = limits{side: MaxSide, pixels: MaxPixels, bytes: MaxFileBytes}

// Decode reads one image (the first frame of a GIF) in any of PNG, JPEG, GIF, BMP, TIFF or
// WebP. The format comes from the file's first bytes, not its name; name is only used in
// errors. Once the first bytes name a format the rest is read into memory, up to
// MaxFileBytes (ErrSize beyond). The header is checked before decoding: an image with a zero side, a side over
// MaxSide or more than MaxPixels pixels is refused (ErrSize) without decoding its pixels.
// Errors are *Error and name the file and the problem, e.g. `notes.txt: not an image (starts
// with "hello")` or `scan.png: truncated PNG`. A panic inside a decoder is recovered and
// returned as ErrCorrupt.
func Decode(r io.Reader, name string) (image.Image, error) {
	return decode(r, name, defaultLimits)
}

func decode(r io.Reader, name string, lim limits) (img image.Image, err error) {
	fail := func(kind error, cause error, problem string, a ...any) (image.Image, error) {
		return nil, &Error{File: name, Problem: fmt.Sprintf(problem, a...), Kind: kind, Err: cause}
	}
	if r == nil {
		return fail(ErrRead, nil, "no reader")
	}
	br := bufio.NewReaderSize(r, 64<<10)
	head, perr := br.Peek(sniffLen)
	if perr != nil && perr != io.EOF && perr != bufio.ErrBufferFull {
		if len(head) == 0 {
			return fail(ErrRead, perr, "cannot read")
		}
	}
	if len(head) == 0 {
		return fail(ErrEmpty, nil, "empty file")
	}
	f, cut := sniff(head)
	if f == nil {
		return fail(ErrNotImage, nil, "not an image (starts with %q)", head)
	}
	if cut {
		return fail(ErrTruncated, nil, "truncated %s (the file ends after %d bytes)", f.name, len(head))
	}

	// The whole file is read into memory: decoders then work on a bytes.Reader, which is an
	// io.ReaderAt, so TIFF's decoder reads its tags in place instead of buffering up to
	// whatever offset a corrupt tag names (gigabytes).
	data, err := io.ReadAll(io.LimitReader(br, lim.bytes+1))
	if err != nil {
		return fail(ErrRead, err, "cannot read")
	}
	if int64(len(data)) > lim.bytes {
		return fail(ErrSize, nil, "file is larger than %d MiB, the limit", lim.bytes>>20)
	}
	cfg, err := guard(func() (image.Config, error) { return f.config(bytes.NewReader(data)) })
	if err != nil {
		return nil, describe(name, f.name, "header", err)
	}
	w, h := cfg.Width, cfg.Height
	if w <= 0 || h <= 0 {
		return fail(ErrSize, nil, "%s image has zero size (%d×%d pixels)", f.name, w, h)
	}
	if w > lim.side || h > lim.side || int64(w)*int64(h) > lim.pixels {
		return fail(ErrSize, nil, "%s image is %d×%d pixels (%s megapixels); the limits are %d pixels a side and %s megapixels",
			f.name, w, h, megapixels(int64(w)*int64(h)), lim.side, megapixels(lim.pixels))
	}
	img, err = guard(func() (image.Image, error) { return f.decode(bytes.NewReader(data)) })
	if err != nil {
		return nil, describe(name, f.name, "", err)
	}
	if img == nil {
		return fail(ErrCorrupt, nil, "%s decoder returned no image", f.name)
	}
	b := img.Bounds()
	if b.Empty() {
		return fail(ErrSize, nil, "%s image has zero size (%d×%d pixels)", f.name, b.Dx(), b.Dy())
	}
	if b.Dx() > lim.side || b.Dy() > lim.side || int64(b.Dx())*int64(b.Dy()) > lim.pixels {
		return fail(ErrSize, nil, "%s image decodes to %d×%d pixels, beyond the limits of %d pixels a side and %s megapixels",
			f.name, b.Dx(), b.Dy(), lim.side, megapixels(lim.pixels))
	}
	return img, nil
}

// megapixels writes n pixels in megapixels with one decimal, or three significant digits
// below 1.
func megapixels(n int64) string {
	if n < 1_000_000 {
		return strconv.FormatFloat(float64(n)/1e6, 'g', 3, 64)
	}
	return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64)
}

// guard runs a third-party decoder step, turning a panic into an error.
func guard[T any](step func() (T, error)) (v T, err error) {
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, &decoderPanic{p}
		}
	}()
	return step()
}

type decoderPanic struct{ v any }

func (p *decoderPanic) Error() string { return fmt.Sprintf("decoder panicked: %v", p.v) }

// describe turns a decoder's error into an *Error that says in words what is wrong: truncated
// (the data stops early), unsupported (a variant the decoder does not handle) or corrupt.
func describe(name, format, part string, err error) error {
	what := format
	if part != "" {
		what += " " + part
	}
	msg := err.Error()
	var dp *decoderPanic
	switch {
	case errors.As(err, &dp):
		return &Error{File: name, Problem: "corrupt " + what + " (the " + format + " decoder crashed on it)", Kind: ErrCorrupt, Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(msg, "unexpected EOF") || strings.Contains(msg, "not enough pixel data") || strings.Contains(msg, "not enough image data") ||
		strings.Contains(msg, "short") && strings.Contains(msg, "data"):
		return &Error{File: name, Problem: "truncated " + what, Kind: ErrTruncated, Err: err}
	case strings.Contains(msg, "unsupported"):
		return &Error{File: name, Problem: "unsupported " + what, Kind: ErrUnsupported, Err: err}
	default:
		return &Error{File: name, Problem: "corrupt " + what, Kind: ErrCorrupt, Err: err}
	}
}

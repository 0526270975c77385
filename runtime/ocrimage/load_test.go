package ocrimage

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/gif"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestDecodeReadsEveryFormat(t *testing.T) {
	want := Gray(sample())
	for name, data := range encodings(t, sample()) {
		t.Run(name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(data), "sample."+strings.ToLower(name))
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if img.Bounds() != want.Rect {
				t.Fatalf("bounds %v, want %v", img.Bounds(), want.Rect)
			}
			got := Gray(img)
			tol := 0
			if name == "JPEG" {
				tol = 40 // block artefacts at the rectangles' edges
			}
			for i := range got.Pix {
				if d := int(got.Pix[i]) - int(want.Pix[i]); d > tol || d < -tol {
					t.Fatalf("pixel %d: grey %d, want %d ± %d", i, got.Pix[i], want.Pix[i], tol)
				}
			}
		})
	}
}

func TestLoadReadsAFileAndNamesItInErrors(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "line.png")
	if err := os.WriteFile(path, encodings(t, sample())["PNG"], 0o644); err != nil {
		t.Fatal(err)
	}
	img, err := Load(path)
	if err != nil || img.Bounds().Dx() != 24 {
		t.Fatalf("Load(%s) = %v, %v", path, img, err)
	}
	missing := filepath.Join(dir, "missing.png")
	_, err = Load(missing)
	if err == nil || !strings.HasPrefix(err.Error(), missing+": ") || !errors.Is(err, ErrRead) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Load(missing) error %v: want one naming %s, ErrRead and os.ErrNotExist", err, missing)
	}
}

func TestDecodeRefusesBadFilesNamingFileAndProblem(t *testing.T) {
	files := encodings(t, sample())
	zeroGIF := func() []byte {
		var b bytes.Buffer
		if err := gif.Encode(&b, image.NewPaletted(image.Rect(0, 0, 1, 1), color.Palette{color.Black, color.White}), nil); err != nil {
			t.Fatal(err)
		}
		d := b.Bytes()
		d[6], d[7], d[8], d[9] = 0, 0, 0, 0 // logical screen 0×0
		return d
	}()
	bigJPEG := encodings(t, Gray(noisy(textPage(t, []string{"Some text"}, 30, 0, 5, 5, 200, 60).img, 30, 1)))["JPEG"]
	cases := []struct {
		name string
		data []byte
		kind error
		says string // part of the message
	}{
		{"notes.txt", []byte("hello world, this is text\n"), ErrNotImage, `not an image (starts with "hello world, th")`},
		{"empty.png", nil, ErrEmpty, "empty file"},
		{"cut-signature.png", []byte("\x89PNG\r"), ErrTruncated, "truncated PNG"},
		{"cut-header.png", files["PNG"][:20], ErrTruncated, "truncated PNG header"},
		{"cut-data.png", files["PNG"][:len(files["PNG"])-20], ErrTruncated, "truncated PNG"},
		{"cut.jpg", bigJPEG[:len(bigJPEG)*2/3], ErrTruncated, "truncated JPEG: "},
		{"cut-header.jpg", files["JPEG"][:30], ErrTruncated, "truncated JPEG header"},
		{"cut.gif", files["GIF"][:len(files["GIF"])-8], ErrTruncated, "truncated GIF"},
		{"cut.bmp", files["BMP"][:len(files["BMP"])-30], ErrTruncated, "truncated BMP"},
		{"cut.webp", files["WebP"][:len(files["WebP"])-6], ErrTruncated, "truncated WebP"},
		{"cut.tiff", files["TIFF"][:len(files["TIFF"])/2], ErrCorrupt, "TIFF"},
		{"zero.gif", zeroGIF, ErrSize, "zero size (0×0 pixels)"},
		{"zero.png", pngHeader(0, 0), ErrCorrupt, "corrupt PNG header"},
		{"huge.png", pngHeader(100000, 100000), ErrSize, "PNG image is 100000×100000 pixels (10000.0 megapixels); the limits are 30000 pixels a side and 40.0 megapixels"},
		{"wide.png", pngHeader(30001, 1), ErrSize, "30001×1"},
		{"many.png", pngHeader(7000, 7000), ErrSize, "49.0 megapixels"},
		{"bad-crc.png", append(pngHeader(10, 10)[:29], 0, 0, 0, 0), ErrCorrupt, "corrupt PNG header"},
		{"wave.webp", []byte("RIFF\x24\x00\x00\x00WAVEfmt "), ErrNotImage, "not an image"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img, err := Decode(bytes.NewReader(c.data), c.name)
			if err == nil {
				t.Fatalf("decoded a %v image; want an error", img.Bounds())
			}
			t.Log(err)
			var e *Error
			if !errors.As(err, &e) || e.File != c.name {
				t.Fatalf("error %q (%T) is not an *Error naming %s", err, err, c.name)
			}
			if !strings.HasPrefix(err.Error(), c.name+": ") || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("error %q: want it to start with %q and contain %q", err, c.name+": ", c.says)
			}
			if c.kind == ErrCorrupt {
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnsupported) {
					t.Fatalf("error %q: want corrupt, truncated or unsupported", err)
				}
			} else if !errors.Is(err, c.kind) {
				t.Fatalf("error %q is not %v", err, c.kind)
			}
		})
	}
}

// A 100000×100000 header must be refused before the decoder allocates anything like 10 GB:
// the refusal should cost what reading a header costs.
func TestHugeHeaderIsRefusedWithoutDecoding(t *testing.T) {
	data := pngHeader(100000, 100000)
	allocs := testing.AllocsPerRun(5, func() {
		if _, err := Decode(bytes.NewReader(data), "huge.png"); !errors.Is(err, ErrSize) {
			t.Fatalf("error %v, want ErrSize", err)
		}
	})
	if allocs > 100 {
		t.Errorf("%v allocations to refuse a huge header", allocs)
	}
}

func TestDecoderPanicsBecomeErrors(t *testing.T) {
	_, err := guard(func() (image.Image, error) { panic("index out of range") })
	if err == nil {
		t.Fatal("guard let a panic through as success")
	}
	e := describe("evil.bmp", "BMP", "", err)
	if !errors.Is(e, ErrCorrupt) || !strings.HasPrefix(e.Error(), "evil.bmp: corrupt BMP (the BMP decoder crashed on it)") {
		t.Fatalf("described as %q", e)
	}
}

func TestDecodeWorksOnAnImageOffsetFromTheOrigin(t *testing.T) {
	// Gray keeps bounds; an image whose origin is not 0,0 (a SubImage) keeps its coordinates.
	src := sample()
	sub := src.SubImage(image.Rect(2, 1, 22, 9))
	g := Gray(sub)
	if g.Rect != sub.Bounds() {
		t.Fatalf("Gray moved bounds %v to %v", sub.Bounds(), g.Rect)
	}
	m := image.NewRGBA(sub.Bounds())
	draw.Draw(m, m.Rect, sub, m.Rect.Min, draw.Src)
	if got := Gray(m); !bytes.Equal(got.Pix, g.Pix) {
		t.Fatal("Gray of a SubImage differs from Gray of its copy")
	}
}

// TIFF tags hold file offsets; x/image/tiff, given a plain io.Reader, buffers the file up to
// the offset a tag names. A few bytes naming an offset of 4 GB must not allocate 4 GB.
func TestCorruptTIFFOffsetsAllocateLittle(t *testing.T) {
	for name, data := range map[string][]byte{
		"IFD at 4 GB":        []byte("II*\x00\xf0\xff\xff\xff"),
		"fuzzer's 4 GB case": []byte("II*\x00\xff\xff\xa3\xd0\xc1[\r\x00\x00\x01\x03\x00\x01\x00\x00\x00\x18\x00\x00\x00"),
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Decode(bytes.NewReader(data), name)
		runtime.ReadMemStats(&after)
		if err == nil {
			t.Fatalf("%s: decoded", name)
		}
		if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 8 {
			t.Errorf("%s: %d MB allocated to refuse %d bytes (%v)", name, mb, len(data), err)
		}
	}
}

package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Typeface picks one of the Go fonts.
type Typeface int

// The app's typefaces: Regular for the UI and the recognised text, Bold for headings, Mono for
// key names and paths.
const (
	Regular Typeface = iota
	Bold
	Mono
)

// fonts parses the Go fonts once and keeps a face per (typeface, pixel size).
type fonts struct {
	mu    sync.Mutex
	fonts [3]*opentype.Font
	faces map[[2]int]font.Face
}

func newFonts() (*fonts, error) {
	f := &fonts{faces: map[[2]int]font.Face{}}
	for i, ttf := range [][]byte{goregular.TTF, gobold.TTF, gomono.TTF} {
		p, err := opentype.Parse(ttf)
		if err != nil {
			return nil, fmt.Errorf("font: %w", err)
		}
		f.fonts[i] = p
	}
	return f, nil
}

// face is the typeface at px pixels (the em size); px is rounded to whole pixels, so text is
// as crisp at 2× as at 1×.
func (f *fonts) face(t Typeface, px float32) font.Face {
	size := int(px + 0.5)
	if size < 6 {
		size = 6
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	k := [2]int{int(t), size}
	if fc, ok := f.faces[k]; ok {
		return fc
	}
	fc, err := opentype.NewFace(f.fonts[t], &opentype.FaceOptions{Size: float64(size), DPI: 72, Hinting: font.HintingFull})
	if err != nil { // cannot happen for the embedded fonts at a positive size
		fc, _ = opentype.NewFace(f.fonts[Regular], &opentype.FaceOptions{Size: 12, DPI: 72})
	}
	f.faces[k] = fc
	return fc
}

// width is the advance of s in pixels.
func width(fc font.Face, s string) int { return font.MeasureString(fc, s).Ceil() }

// lineHeight is the distance between baselines in pixels.
func lineHeight(fc font.Face) int {
	m := fc.Metrics()
	return (m.Ascent + m.Descent).Ceil() + m.Height.Ceil()/5
}

// text draws s with its top-left corner at (x, y) and returns its width.
func text(dst draw.Image, fc font.Face, x, y int, c color.Color, s string) int {
	d := font.Drawer{Dst: dst, Src: image.NewUniform(c), Face: fc, Dot: fixed.P(x, y+fc.Metrics().Ascent.Ceil())}
	d.DrawString(s)
	return (d.Dot.X - fixed.I(x)).Ceil()
}

// ellipsize cuts s to fit w pixels, ending it with "…" when it had to be cut.
func ellipsize(fc font.Face, s string, w int) string {
	if width(fc, s) <= w {
		return s
	}
	r := []rune(s)
	for n := len(r) - 1; n > 0; n-- {
		if t := string(r[:n]) + "…"; width(fc, t) <= w {
			return t
		}
	}
	return "…"
}

// wrap breaks s into lines of at most w pixels, at spaces where it can and inside a word
// only where a word alone is wider than w. An empty s gives one empty line.
func wrap(fc font.Face, s string, w int) []string {
	if w <= 0 {
		return []string{s}
	}
	var out []string
	cur := ""
	for _, word := range strings.Split(s, " ") {
		cand := word
		if cur != "" {
			cand = cur + " " + word
		}
		if width(fc, cand) <= w {
			cur = cand
			continue
		}
		if cur != "" {
			out = append(out, cur)
		}
		cur = word
		for width(fc, cur) > w { // a word wider than the line: cut it
			r := []rune(cur)
			n := len(r) - 1
			for n > 1 && width(fc, string(r[:n])) > w {
				n--
			}
			out = append(out, string(r[:n]))
			cur = string(r[n:])
		}
	}
	return append(out, cur)
}

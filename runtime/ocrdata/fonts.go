package ocrdata

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/gobolditalic"
	"golang.org/x/image/font/gofont/goitalic"
	"golang.org/x/image/font/gofont/gomedium"
	"golang.org/x/image/font/gofont/gomediumitalic"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/gomonobold"
	"golang.org/x/image/font/gofont/gomonobolditalic"
	"golang.org/x/image/font/gofont/gomonoitalic"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/sfnt"
	"golang.org/x/image/math/fixed"
)

// Split says which part of the data a font family belongs to. Validation
// families are never used to render training lines.
type Split int

const (
	// Train is the split the trainer samples from.
	Train Split = iota
	// Validation holds out whole font families for evaluation.
	Validation
)

// String returns "train" or "validation".
func (s Split) String() string {
	switch s {
	case Train:
		return "train"
	case Validation:
		return "validation"
	}
	return fmt.Sprintf("Split(%d)", int(s))
}

// Family is one font family in the catalog.
type Family struct {
	// Name is the family name, e.g. "Noto Serif".
	Name string
	// Kind is "serif", "sans" or "mono".
	Kind string
	// Split is the split every face of the family belongs to.
	Split Split
	// Package is the Debian package that installs the files; empty for the
	// Go fonts, which are compiled in.
	Package string
	// Faces are the styles the catalog uses from the family.
	Faces []FaceFile
}

// FaceFile names one face (style) of a family and where it comes from.
type FaceFile struct {
	// Style is e.g. "Regular", "Bold", "Italic", "Bold Italic", "Light".
	Style string
	// Path is the absolute file path for Debian fonts, or the import path of
	// the embedding package (golang.org/x/image/font/gofont/...) for the Go
	// fonts.
	Path string

	data []byte // embedded font data; nil for files
}

const (
	fontsTT = "/usr/share/fonts/truetype/"
	fontsOT = "/usr/share/fonts/opentype/"
	gofont  = "golang.org/x/image/font/gofont/"
)

func ff(style, path string) FaceFile { return FaceFile{Style: style, Path: path} }

func goface(style, name string, data []byte) FaceFile {
	return FaceFile{Style: style, Path: gofont + name, data: data}
}

// catalog is the fixed list behind Families. Its order is part of the
// determinism contract: faces are drawn by index.
var catalog = []Family{
	{Name: "Go", Kind: "sans", Faces: []FaceFile{
		goface("Regular", "goregular", goregular.TTF),
		goface("Bold", "gobold", gobold.TTF),
		goface("Italic", "goitalic", goitalic.TTF),
		goface("Bold Italic", "gobolditalic", gobolditalic.TTF),
		goface("Medium", "gomedium", gomedium.TTF),
		goface("Medium Italic", "gomediumitalic", gomediumitalic.TTF),
	}},
	{Name: "Go Mono", Kind: "mono", Faces: []FaceFile{
		goface("Regular", "gomono", gomono.TTF),
		goface("Bold", "gomonobold", gomonobold.TTF),
		goface("Italic", "gomonoitalic", gomonoitalic.TTF),
		goface("Bold Italic", "gomonobolditalic", gomonobolditalic.TTF),
	}},
	{Name: "Lato", Kind: "sans", Package: "fonts-lato", Faces: []FaceFile{
		ff("Regular", fontsTT+"lato/Lato-Regular.ttf"),
		ff("Bold", fontsTT+"lato/Lato-Bold.ttf"),
		ff("Italic", fontsTT+"lato/Lato-Italic.ttf"),
		ff("Bold Italic", fontsTT+"lato/Lato-BoldItalic.ttf"),
		ff("Light", fontsTT+"lato/Lato-Light.ttf"),
		ff("Black", fontsTT+"lato/Lato-Black.ttf"),
	}},
	{Name: "Open Sans", Kind: "sans", Package: "fonts-open-sans", Faces: []FaceFile{
		ff("Regular", fontsTT+"open-sans/OpenSans-Regular.ttf"),
		ff("Bold", fontsTT+"open-sans/OpenSans-Bold.ttf"),
		ff("Italic", fontsTT+"open-sans/OpenSans-Italic.ttf"),
		ff("Bold Italic", fontsTT+"open-sans/OpenSans-BoldItalic.ttf"),
		ff("Light", fontsTT+"open-sans/OpenSans-Light.ttf"),
		ff("Semibold", fontsTT+"open-sans/OpenSans-Semibold.ttf"),
		ff("Condensed Bold", fontsTT+"open-sans/OpenSans-CondBold.ttf"),
	}},
	{Name: "Carlito", Kind: "sans", Package: "fonts-crosextra-carlito", Faces: []FaceFile{
		ff("Regular", fontsTT+"crosextra/Carlito-Regular.ttf"),
		ff("Bold", fontsTT+"crosextra/Carlito-Bold.ttf"),
		ff("Italic", fontsTT+"crosextra/Carlito-Italic.ttf"),
		ff("Bold Italic", fontsTT+"crosextra/Carlito-BoldItalic.ttf"),
	}},
	{Name: "Caladea", Kind: "serif", Split: Validation, Package: "fonts-crosextra-caladea", Faces: []FaceFile{
		ff("Regular", fontsTT+"crosextra/Caladea-Regular.ttf"),
		ff("Bold", fontsTT+"crosextra/Caladea-Bold.ttf"),
		ff("Italic", fontsTT+"crosextra/Caladea-Italic.ttf"),
		ff("Bold Italic", fontsTT+"crosextra/Caladea-BoldItalic.ttf"),
	}},
	{Name: "Linux Libertine", Kind: "serif", Package: "fonts-linuxlibertine", Faces: []FaceFile{
		ff("Regular", fontsOT+"linux-libertine/LinLibertine_R.otf"),
		ff("Bold", fontsOT+"linux-libertine/LinLibertine_RB.otf"),
		ff("Italic", fontsOT+"linux-libertine/LinLibertine_RI.otf"),
		ff("Bold Italic", fontsOT+"linux-libertine/LinLibertine_RBI.otf"),
		ff("Semibold", fontsOT+"linux-libertine/LinLibertine_RZ.otf"),
	}},
	{Name: "Linux Biolinum", Kind: "sans", Package: "fonts-linuxlibertine", Faces: []FaceFile{
		ff("Regular", fontsOT+"linux-libertine/LinBiolinum_R.otf"),
		ff("Bold", fontsOT+"linux-libertine/LinBiolinum_RB.otf"),
		ff("Italic", fontsOT+"linux-libertine/LinBiolinum_RI.otf"),
	}},
	{Name: "Noto Sans", Kind: "sans", Package: "fonts-noto-core", Faces: []FaceFile{
		ff("Regular", fontsTT+"noto/NotoSans-Regular.ttf"),
		ff("Bold", fontsTT+"noto/NotoSans-Bold.ttf"),
		ff("Italic", fontsTT+"noto/NotoSans-Italic.ttf"),
		ff("Bold Italic", fontsTT+"noto/NotoSans-BoldItalic.ttf"),
	}},
	{Name: "Noto Serif", Kind: "serif", Package: "fonts-noto-core", Faces: []FaceFile{
		ff("Regular", fontsTT+"noto/NotoSerif-Regular.ttf"),
		ff("Bold", fontsTT+"noto/NotoSerif-Bold.ttf"),
		ff("Italic", fontsTT+"noto/NotoSerif-Italic.ttf"),
		ff("Bold Italic", fontsTT+"noto/NotoSerif-BoldItalic.ttf"),
	}},
	{Name: "Noto Sans Mono", Kind: "mono", Package: "fonts-noto-mono", Faces: []FaceFile{
		ff("Regular", fontsTT+"noto/NotoSansMono-Regular.ttf"),
		ff("Bold", fontsTT+"noto/NotoSansMono-Bold.ttf"),
	}},
	{Name: "Roboto", Kind: "sans", Package: "fonts-roboto-unhinted", Faces: []FaceFile{
		ff("Regular", fontsTT+"roboto/unhinted/RobotoTTF/Roboto-Regular.ttf"),
		ff("Bold", fontsTT+"roboto/unhinted/RobotoTTF/Roboto-Bold.ttf"),
		ff("Italic", fontsTT+"roboto/unhinted/RobotoTTF/Roboto-Italic.ttf"),
		ff("Bold Italic", fontsTT+"roboto/unhinted/RobotoTTF/Roboto-BoldItalic.ttf"),
		ff("Light", fontsTT+"roboto/unhinted/RobotoTTF/Roboto-Light.ttf"),
		ff("Medium", fontsTT+"roboto/unhinted/RobotoTTF/Roboto-Medium.ttf"),
	}},
	{Name: "Roboto Condensed", Kind: "sans", Package: "fonts-roboto-unhinted", Faces: []FaceFile{
		ff("Regular", fontsTT+"roboto/unhinted/RobotoCondensed-Regular.ttf"),
		ff("Bold", fontsTT+"roboto/unhinted/RobotoCondensed-Bold.ttf"),
		ff("Italic", fontsTT+"roboto/unhinted/RobotoCondensed-Italic.ttf"),
		ff("Bold Italic", fontsTT+"roboto/unhinted/RobotoCondensed-BoldItalic.ttf"),
	}},
	{Name: "Cantarell", Kind: "sans", Split: Validation, Package: "fonts-cantarell", Faces: []FaceFile{
		ff("Regular", fontsOT+"cantarell/Cantarell-Regular.otf"),
		ff("Bold", fontsOT+"cantarell/Cantarell-Bold.otf"),
		ff("Light", fontsOT+"cantarell/Cantarell-Light.otf"),
	}},
	{Name: "EB Garamond", Kind: "serif", Package: "fonts-ebgaramond", Faces: []FaceFile{
		ff("Regular", fontsOT+"ebgaramond/EBGaramond12-Regular.otf"),
		ff("Bold", fontsOT+"ebgaramond/EBGaramond12-Bold.otf"),
		ff("Italic", fontsOT+"ebgaramond/EBGaramond12-Italic.otf"),
	}},
	{Name: "Inconsolata", Kind: "mono", Package: "fonts-inconsolata", Faces: []FaceFile{
		ff("Regular", fontsTT+"inconsolata/Inconsolata.otf"),
	}},
	{Name: "Courier Prime", Kind: "mono", Split: Validation, Package: "fonts-courier-prime", Faces: []FaceFile{
		ff("Regular", fontsOT+"courier-prime/Courier Prime.otf"),
		ff("Bold", fontsOT+"courier-prime/Courier Prime Bold.otf"),
		ff("Italic", fontsOT+"courier-prime/Courier Prime Italic.otf"),
		ff("Bold Italic", fontsOT+"courier-prime/Courier Prime Bold Italic.otf"),
	}},
	{Name: "Charis SIL", Kind: "serif", Split: Validation, Package: "fonts-sil-charis", Faces: []FaceFile{
		ff("Regular", fontsTT+"charis/CharisSIL-Regular.ttf"),
		ff("Bold", fontsTT+"charis/CharisSIL-Bold.ttf"),
		ff("Italic", fontsTT+"charis/CharisSIL-Italic.ttf"),
		ff("Bold Italic", fontsTT+"charis/CharisSIL-BoldItalic.ttf"),
	}},
	{Name: "CMU Serif", Kind: "serif", Package: "fonts-cmu", Faces: []FaceFile{
		ff("Regular", fontsTT+"cmu/cmunrm.ttf"),
		ff("Bold", fontsTT+"cmu/cmunbx.ttf"),
		ff("Italic", fontsTT+"cmu/cmunti.ttf"),
		ff("Bold Italic", fontsTT+"cmu/cmunbi.ttf"),
	}},
	{Name: "CMU Sans Serif", Kind: "sans", Package: "fonts-cmu", Faces: []FaceFile{
		ff("Regular", fontsTT+"cmu/cmunss.ttf"),
		ff("Bold", fontsTT+"cmu/cmunsx.ttf"),
		ff("Oblique", fontsTT+"cmu/cmunsi.ttf"),
		ff("Bold Oblique", fontsTT+"cmu/cmunso.ttf"),
	}},
	{Name: "CMU Typewriter Text", Kind: "mono", Package: "fonts-cmu", Faces: []FaceFile{
		ff("Regular", fontsTT+"cmu/cmuntt.ttf"),
		ff("Bold", fontsTT+"cmu/cmuntb.ttf"),
		ff("Italic", fontsTT+"cmu/cmunit.ttf"),
		ff("Bold Italic", fontsTT+"cmu/cmuntx.ttf"),
	}},
}

// Families returns the font catalog: every family the package may use,
// whether or not its files are installed, in a fixed order. The result is a
// copy; changing it changes nothing here.
func Families() []Family {
	out := make([]Family, len(catalog))
	for i, f := range catalog {
		f.Faces = slices.Clone(f.Faces)
		out[i] = f
	}
	return out
}

// firstASCII and lastASCII bound the printable ASCII range every face must
// cover and every text may use.
const (
	firstASCII = 32
	lastASCII  = 126
	numASCII   = lastASCII - firstASCII + 1
)

// glyph is one printable-ASCII glyph in font units, y down.
type glyph struct {
	index   sfnt.GlyphIndex
	advance float32
	segs    []segment
	// ink bounds of the control points; empty (min > max) for space.
	minX, minY, maxX, maxY float32
}

// segment is one outline operator with up to three points in font units.
type segment struct {
	op  sfnt.SegmentOp
	pts [3][2]float32
}

// Face is a parsed font face ready to render. Its outlines for printable
// ASCII are decoded once, at load, so rendering only scales them. A Face is
// safe for concurrent use.
type Face struct {
	// Family is the family name from the catalog.
	Family string
	// Style is the style from the catalog, e.g. "Bold Italic".
	Style string
	// Kind is "serif", "sans" or "mono".
	Kind string
	// Split is the family's split.
	Split Split
	// Path is where the face came from (see FaceFile.Path).
	Path string

	font      *sfnt.Font
	upem      float32
	capHeight float32 // height of 'H' in font units
	ascent    float32 // font units, positive up
	descent   float32 // font units, positive down
	hasKern   bool
	glyphs    [numASCII]glyph
}

// Name returns "Family Style", e.g. "Noto Serif Bold Italic".
func (f *Face) Name() string { return f.Family + " " + f.Style }

// kern returns the kerning between two ASCII characters in font units, or
// 0 when the font has no kern table (the 'kern' table only: GPOS kerning
// is not read by sfnt).
func (f *Face) kern(buf *sfnt.Buffer, a, b byte) float32 {
	if !f.hasKern {
		return 0
	}
	k, err := f.font.Kern(buf, f.glyphs[a-firstASCII].index, f.glyphs[b-firstASCII].index,
		fixed.Int26_6(f.font.UnitsPerEm()), font.HintingNone)
	if err != nil {
		return 0
	}
	return float32(k)
}

// parseFace parses data and decodes the printable-ASCII outlines. It fails
// when the font does not cover printable ASCII (symbol fonts, collections).
func parseFace(fam Family, file FaceFile, data []byte) (*Face, error) {
	f, err := sfnt.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", file.Path, err)
	}
	face := &Face{Family: fam.Name, Style: file.Style, Kind: fam.Kind, Split: fam.Split,
		Path: file.Path, font: f, upem: float32(f.UnitsPerEm())}
	var buf sfnt.Buffer
	ppem := fixed.Int26_6(f.UnitsPerEm()) // coordinates come back in font units
	m, err := f.Metrics(&buf, ppem, font.HintingNone)
	if err != nil {
		return nil, fmt.Errorf("metrics of %s: %w", file.Path, err)
	}
	face.ascent, face.descent = float32(m.Ascent), float32(m.Descent)
	for i := range numASCII {
		r := rune(firstASCII + i)
		gi, err := f.GlyphIndex(&buf, r)
		if err != nil || gi == 0 {
			return nil, fmt.Errorf("%s does not cover printable ASCII: no glyph for %q", file.Path, r)
		}
		adv, err := f.GlyphAdvance(&buf, gi, ppem, font.HintingNone)
		if err != nil {
			return nil, fmt.Errorf("advance of %q in %s: %w", r, file.Path, err)
		}
		segs, err := f.LoadGlyph(&buf, gi, ppem, nil)
		if err != nil {
			return nil, fmt.Errorf("outline of %q in %s: %w", r, file.Path, err)
		}
		g := glyph{index: gi, advance: float32(adv), minX: 1e9, minY: 1e9, maxX: -1e9, maxY: -1e9}
		if len(segs) > 0 {
			g.segs = make([]segment, len(segs))
		}
		for j, s := range segs {
			g.segs[j].op = s.Op
			for k := range 3 {
				x, y := float32(s.Args[k].X), float32(s.Args[k].Y)
				g.segs[j].pts[k] = [2]float32{x, y}
				if k < opArgs(s.Op) {
					g.minX, g.maxX = min(g.minX, x), max(g.maxX, x)
					g.minY, g.maxY = min(g.minY, y), max(g.maxY, y)
				}
			}
		}
		if r != ' ' && len(segs) == 0 {
			return nil, fmt.Errorf("%s has an empty glyph for %q", file.Path, r)
		}
		face.glyphs[i] = g
	}
	h := face.glyphs['H'-firstASCII]
	face.capHeight = -h.minY
	if face.capHeight <= 0 {
		return nil, fmt.Errorf("%s: glyph 'H' has no height above the baseline", file.Path)
	}
	a, v := face.glyphs['A'-firstASCII].index, face.glyphs['V'-firstASCII].index
	if _, err := f.Kern(&buf, a, v, ppem, font.HintingNone); err == nil {
		face.hasKern = true
	}
	return face, nil
}

func opArgs(op sfnt.SegmentOp) int {
	switch op {
	case sfnt.SegmentOpQuadTo:
		return 2
	case sfnt.SegmentOpCubeTo:
		return 3
	}
	return 1
}

// fontSet is the loaded catalog under one file-system root.
type fontSet struct {
	faces   []*Face  // catalog order, installed and usable faces only
	missing []string // Debian packages with at least one missing file, sorted
	skipped []string // "path: reason" for faces present but unusable
}

// loadFonts reads every catalog face under root ("" or "/" for the real
// system). Missing files are recorded, not fatal.
func loadFonts(root string) *fontSet {
	set := &fontSet{}
	miss := map[string]bool{}
	for _, fam := range catalog {
		for _, file := range fam.Faces {
			data := file.data
			if data == nil {
				var err error
				data, err = os.ReadFile(filepath.Join(root, file.Path))
				if errors.Is(err, fs.ErrNotExist) {
					miss[fam.Package] = true
					continue
				}
				if err != nil {
					set.skipped = append(set.skipped, fmt.Sprintf("%s: %v", file.Path, err))
					continue
				}
			}
			face, err := parseFace(fam, file, data)
			if err != nil {
				set.skipped = append(set.skipped, err.Error())
				continue
			}
			set.faces = append(set.faces, face)
		}
	}
	for p := range miss {
		set.missing = append(set.missing, p)
	}
	slices.Sort(set.missing)
	return set
}

// split returns the faces of one split, or an error naming the packages to
// install when there are none.
func (s *fontSet) split(sp Split) ([]*Face, error) {
	var out []*Face
	for _, f := range s.faces {
		if f.Split == sp {
			out = append(out, f)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	var pkgs []string
	for _, fam := range catalog {
		if fam.Split == sp && fam.Package != "" && !slices.Contains(pkgs, fam.Package) {
			pkgs = append(pkgs, fam.Package)
		}
	}
	msg := fmt.Sprintf("ocrdata: no usable %s font faces; install the Debian packages: apt-get install %s",
		sp, strings.Join(pkgs, " "))
	if len(s.skipped) > 0 {
		msg += "; unusable faces: " + strings.Join(s.skipped, "; ")
	}
	return nil, errors.New(msg)
}

var (
	systemFontsOnce sync.Once
	systemFontSet   *fontSet
)

// systemFonts loads the catalog from the real file system once.
func systemFonts() *fontSet {
	systemFontsOnce.Do(func() { systemFontSet = loadFonts("/") })
	return systemFontSet
}

// fontsUnder returns the system set for root "" or "/", else a fresh load
// (used by tests and by Options.FontRoot).
func fontsUnder(root string) *fontSet {
	if root == "" || root == "/" {
		return systemFonts()
	}
	return loadFonts(root)
}

// Load returns the installed, usable faces of a split in catalog order,
// parsing every font file once per process. It fails, naming the Debian
// packages to install, when the split has no usable face (the Go fonts are
// compiled in, so Train always has some).
func Load(split Split) ([]*Face, error) {
	return systemFonts().split(split)
}

// Missing returns the sorted Debian packages whose catalog files are not
// installed, e.g. ["fonts-noto-mono"]; empty when everything is present.
func Missing() []string {
	return slices.Clone(systemFonts().missing)
}

// Skipped returns "file: reason" for faces whose files exist but could not
// be used (parse errors, incomplete ASCII coverage); normally empty.
func Skipped() []string {
	return slices.Clone(systemFonts().skipped)
}

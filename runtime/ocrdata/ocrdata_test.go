package ocrdata

import (
	"bytes"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x6f6372)) }

func trainGenerator(t testing.TB) *Generator {
	t.Helper()
	g, err := New(Options{Split: Train})
	require.NoError(t, err)
	return g
}

func TestTheSameSeedGivesByteIdenticalLines(t *testing.T) {
	g := trainGenerator(t)
	for _, cond := range Conditions() {
		t.Run(cond, func(t *testing.T) {
			for seed := range uint64(5) {
				a, err := g.SampleCondition(newRand(seed), cond)
				require.NoError(t, err)
				b, err := g.SampleCondition(newRand(seed), cond)
				require.NoError(t, err)
				require.Equal(t, a.Text, b.Text)
				require.Equal(t, a.Font, b.Font)
				require.Equal(t, a.Detail, b.Detail)
				require.Equal(t, a.Image.Rect, b.Image.Rect)
				require.True(t, bytes.Equal(a.Image.Pix, b.Image.Pix), "seed %d: pixels differ", seed)
			}
		})
	}
	// And Sample, which also draws the condition.
	a, err := g.Sample(newRand(99))
	require.NoError(t, err)
	b, err := g.Sample(newRand(99))
	require.NoError(t, err)
	require.Equal(t, a.Condition, b.Condition)
	require.True(t, bytes.Equal(a.Image.Pix, b.Image.Pix))
	c, err := g.Sample(newRand(100))
	require.NoError(t, err)
	require.False(t, a.Text == c.Text && bytes.Equal(a.Image.Pix, c.Image.Pix), "different seeds gave the same line")
}

func TestEveryConditionRendersInkInsideTheCrop(t *testing.T) {
	g := trainGenerator(t)
	faces := g.Faces()
	for _, cond := range Conditions() {
		t.Run(cond, func(t *testing.T) {
			rng := newRand(7)
			for i := range 40 {
				face := faces[rng.IntN(len(faces))]
				text := g.text.Text(rng)
				size := 10 + 30*rng.Float64()
				p, err := drawParams(rng, cond, size)
				require.NoError(t, err)
				c, err := compose(rng, text, face, size, &p)
				require.NoError(t, err, "%s %q", face.Name(), text)
				crop := image.Rect(0, 0, c.w, c.h)
				require.False(t, c.ink.Empty(), "%s %q: no ink", face.Name(), text)
				require.True(t, c.ink.In(crop), "%s %q: ink %v outside crop %v", face.Name(), text, c.ink, crop)
				var inside float32
				for y := c.ink.Min.Y; y < c.ink.Max.Y; y++ {
					for x := c.ink.Min.X; x < c.ink.Max.X; x++ {
						inside += c.cov[y*c.w+x]
					}
				}
				require.Greater(t, inside, float32(size), "%s %q: too little ink", face.Name(), text)
				// Heights follow the font: at most the rotated line plus margins.
				require.LessOrEqual(t, c.h, int(6*size)+c.ink.Dy(), "%s %q: crop %v", face.Name(), text, crop)

				img := p.apply(rng, c.cov, c.w, c.h)
				require.Equal(t, crop, img.Rect)
				lo, hi := slices.Min(img.Pix), slices.Max(img.Pix)
				require.GreaterOrEqual(t, int(hi)-int(lo), 20, "line %d %s: image nearly flat", i, p.detail())
			}
		})
	}
}

func TestRenderDrawsTextDarkOnLightUnlessInverted(t *testing.T) {
	faces, err := Load(Train)
	require.NoError(t, err)
	mean := func(m *image.Gray) float64 {
		var s float64
		for _, v := range m.Pix {
			s += float64(v)
		}
		return s / float64(len(m.Pix))
	}
	for seed := range uint64(10) {
		l, err := Render(newRand(seed), "Hello, World", faces[0], 20, Clean)
		require.NoError(t, err)
		require.Greater(t, mean(l.Image), 150.0)
		require.Equal(t, "Hello, World", l.Text)
		require.Equal(t, "Go Regular", l.Font)
		l, err = Render(newRand(seed), "Hello, World", faces[0], 20, Inverted)
		require.NoError(t, err)
		require.Less(t, mean(l.Image), 110.0)
	}
}

func TestRenderRejectsBadInput(t *testing.T) {
	faces, err := Load(Train)
	require.NoError(t, err)
	f := faces[0]
	for _, tc := range []struct {
		name, text, cond string
		size             float64
		face             *Face
		want             string
	}{
		{"unknown condition", "abc", "smudge", 20, f, "unknown condition"},
		{"non-ASCII text", "caf\u00e9", Clean, 20, f, "not printable ASCII"},
		{"control character", "a\tb", Clean, 20, f, "not printable ASCII"},
		{"only spaces", "   ", Clean, 20, f, "no visible characters"},
		{"empty text", "", Clean, 20, f, "empty text"},
		{"tiny size", "abc", Clean, 1, f, "cap height"},
		{"nil face", "abc", Clean, 20, nil, "nil face"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Render(newRand(1), tc.text, tc.face, tc.size, tc.cond)
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestValidationAndTrainingUseDisjointFamilies(t *testing.T) {
	kinds := map[string]bool{}
	var val []string
	for _, f := range Families() {
		if f.Split == Validation {
			val = append(val, f.Name)
			kinds[f.Kind] = true
		}
	}
	require.Equal(t, []string{"Caladea", "Cantarell", "Courier Prime", "Charis SIL"}, val)
	require.Len(t, kinds, 3, "validation families should span serif, sans and mono")

	train, err := Load(Train)
	require.NoError(t, err)
	trainFam := map[string]bool{}
	for _, f := range train {
		require.Equal(t, Train, f.Split)
		trainFam[f.Family] = true
	}
	valid, err := Load(Validation)
	if err != nil {
		if os.Getenv("MOEGPU_REQUIRE_GPU") == "1" { // CI: scripts/setup.sh installs every font
			t.Fatalf("validation fonts not installed: %v", err)
		}
		t.Skipf("validation fonts not installed here: %v", err)
	}
	for _, f := range valid {
		require.Equal(t, Validation, f.Split)
		require.False(t, trainFam[f.Family], "family %s is in both splits", f.Family)
	}
	gv, err := New(Options{Split: Validation})
	require.NoError(t, err)
	rng := newRand(3)
	for range 50 {
		l, err := gv.Sample(rng)
		require.NoError(t, err)
		require.True(t, slices.ContainsFunc(val, func(fam string) bool { return strings.HasPrefix(l.Font, fam+" ") }),
			"validation line drawn in %s", l.Font)
	}
}

func TestFacesCoverPrintableASCIIAndAllCatalogFilesParse(t *testing.T) {
	t.Logf("missing packages: %v", Missing())
	require.Empty(t, Skipped(), "catalog faces that exist but cannot be used")
	for _, sp := range []Split{Train, Validation} {
		faces, err := Load(sp)
		if err != nil {
			t.Logf("%s: %v", sp, err)
			continue
		}
		for _, f := range faces {
			for c := firstASCII; c <= lastASCII; c++ {
				g := f.glyphs[c-firstASCII]
				require.NotZero(t, g.index, "%s: %q", f.Name(), rune(c))
				if c != ' ' {
					require.NotEmpty(t, g.segs, "%s: %q", f.Name(), rune(c))
				}
				require.Greater(t, g.advance, float32(0), "%s: %q", f.Name(), rune(c))
			}
			var all []byte
			for c := firstASCII + 1; c <= lastASCII; c++ {
				all = append(all, byte(c))
			}
			for i := 0; i < len(all); i += MaxTextLen {
				_, err := Render(newRand(1), string(all[i:min(len(all), i+MaxTextLen)]), f, 14, Clean)
				require.NoError(t, err, f.Name())
			}
		}
	}
}

func TestParseFaceRejectsFontsWithoutASCII(t *testing.T) {
	_, err := parseFace(catalog[0], FaceFile{Path: "junk.ttf"}, []byte("not a font"))
	require.ErrorContains(t, err, "junk.ttf")
}

func checkTexts(t *testing.T, s *TextSource, n int) map[byte]bool {
	t.Helper()
	rng := newRand(11)
	seen := map[byte]bool{}
	for range n {
		x := s.Text(rng)
		require.GreaterOrEqual(t, len(x), 1)
		require.LessOrEqual(t, len(x), MaxTextLen, "%q", x)
		require.True(t, isPrintableASCII(x), "%q", x)
		require.Equal(t, strings.TrimSpace(x), x, "%q", x)
		require.NotContains(t, x, "  ", "%q", x)
		for i := 0; i < len(x); i++ {
			seen[x[i]] = true
		}
	}
	return seen
}

func TestTextIsPrintableASCIIOfOneTo32CharactersAndUsesEveryCharacter(t *testing.T) {
	s := DefaultTextSource()
	t.Log(s.Origin())
	seen := checkTexts(t, s, 50000)
	var missing []string
	for c := byte(firstASCII); c <= lastASCII; c++ {
		if !seen[c] {
			missing = append(missing, string(c))
		}
	}
	require.Empty(t, missing, "characters never drawn")
	rng := newRand(5)
	for range 30 {
		t.Logf("%q", s.Text(rng))
	}
}

func TestToASCIIFoldsQuotesDashesAndAccents(t *testing.T) {
	for in, want := range map[string]string{
		"\u201cquoted\u201d \u2018x\u2019":  `"quoted" 'x'`,
		"a \u2013 b\u2014c":                 "a - b-c",
		"caf\u00e9 na\u00efve \u00c6sop":    "cafe naive AEsop",
		"wait\u2026":                        "wait...",
		"  tab\tand\n\nnewline\u00a0nbsp  ": "tab and newline nbsp",
		"\u4e2d\u6587 kept":                 "kept",
		"5 \u20ac":                          "5 EUR",
	} {
		require.Equal(t, want, ToASCII(in), "%q", in)
	}
	require.Equal(t, "word", Overstrike("_\bw_\bo_\br_\bd"))
	require.Equal(t, "bold", Overstrike("b\bbo\bol\bld\bd"))
}

func TestTheEmbeddedSampleStandsInWithoutSystemFiles(t *testing.T) {
	nowhere := filepath.Join(t.TempDir(), "absent")
	s := NewTextSource(nowhere, nowhere)
	require.Contains(t, s.Origin(), "embedded")
	require.GreaterOrEqual(t, len(s.paras), 100)
	require.NotEmpty(t, s.words)
	checkTexts(t, s, 5000)

	// No Debian fonts either: training falls back to the Go fonts, and the
	// validation split names the packages to install.
	root := t.TempDir()
	g, err := New(Options{Split: Train, FontRoot: root, FortuneDir: nowhere, WordsFile: nowhere})
	require.NoError(t, err)
	for _, f := range g.Faces() {
		require.True(t, strings.HasPrefix(f.Path, gofont), f.Path)
	}
	rng := newRand(2)
	for range 20 {
		l, err := g.Sample(rng)
		require.NoError(t, err)
		require.NotEmpty(t, l.Image.Pix)
	}
	_, err = New(Options{Split: Validation, FontRoot: root})
	require.ErrorContains(t, err, "apt-get install fonts-crosextra-caladea fonts-cantarell fonts-courier-prime fonts-sil-charis")
	set := loadFonts(root)
	require.Contains(t, set.missing, "fonts-lato")
	require.Contains(t, set.missing, "fonts-cmu")
	require.NotContains(t, set.missing, "")
}

func TestWriteEvalSetRoundTrips(t *testing.T) {
	split := Validation
	if _, err := Load(Validation); err != nil {
		split = Train
	}
	dir := t.TempDir()
	require.NoError(t, WriteEvalSet(dir, split, 3, 42))
	dir2 := t.TempDir()
	require.NoError(t, WriteEvalSet(dir2, split, 3, 42))

	g, err := New(Options{Split: split})
	require.NoError(t, err)
	for _, cond := range Conditions() {
		rng := rand.New(rand.NewPCG(42, conditionSeed(cond)))
		ents, err := os.ReadDir(filepath.Join(dir, cond))
		require.NoError(t, err)
		require.Len(t, ents, 6, "%s: %v", cond, ents)
		for i := range 3 {
			want, err := g.SampleCondition(rng, cond)
			require.NoError(t, err)
			base := filepath.Join(dir, cond, []string{"0000", "0001", "0002"}[i])
			gt, err := os.ReadFile(base + ".gt.txt")
			require.NoError(t, err)
			require.Equal(t, want.Text, string(gt))
			raw, err := os.ReadFile(base + ".png")
			require.NoError(t, err)
			img, err := png.Decode(bytes.NewReader(raw))
			require.NoError(t, err)
			gray, ok := img.(*image.Gray)
			require.True(t, ok, "%s: decoded %T, want *image.Gray", base, img)
			require.Equal(t, want.Image.Rect, gray.Rect)
			require.True(t, bytes.Equal(want.Image.Pix, gray.Pix), base)
			raw2, err := os.ReadFile(filepath.Join(dir2, cond, filepath.Base(base)+".png"))
			require.NoError(t, err)
			require.True(t, bytes.Equal(raw, raw2), "%s: the same seed wrote different bytes", base)
		}
	}
	m, err := os.ReadFile(filepath.Join(dir, "manifest.tsv"))
	require.NoError(t, err)
	require.Len(t, strings.Split(strings.TrimSpace(string(m)), "\n"), 1+3*len(Conditions()))

	// A smaller set over the same directory leaves no stale lines behind.
	require.NoError(t, WriteEvalSet(dir, split, 2, 42))
	ents, err := os.ReadDir(filepath.Join(dir, Mixed))
	require.NoError(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	require.Equal(t, []string{"0000.gt.txt", "0000.png", "0001.gt.txt", "0001.png"}, names)
	require.Error(t, WriteEvalSet(dir, split, 0, 1))

	// Files of the user's own are never removed: a numbered file the earlier set did not
	// write stays, and so do other files, whatever their names.
	mine := filepath.Join(dir, Clean, "0005.png")
	require.NoError(t, os.WriteFile(mine, []byte("mine"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o644))
	require.NoError(t, WriteEvalSet(dir, split, 1, 42))
	for _, f := range []string{mine, filepath.Join(dir, "notes.txt")} {
		got, err := os.ReadFile(f)
		require.NoError(t, err)
		require.Equal(t, "mine", string(got), f)
	}
	_, err = os.Stat(filepath.Join(dir, Mixed, "0001.png"))
	require.ErrorIs(t, err, os.ErrNotExist, "the earlier set's line 0001 is removed")

	// A folder of other files that is not an eval set is refused, and left as it was.
	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, "0000.png"), []byte("mine"), 0o644))
	err = WriteEvalSet(other, split, 1, 42)
	require.ErrorContains(t, err, "not an eval set")
	ents, err = os.ReadDir(other)
	require.NoError(t, err)
	require.Len(t, ents, 1)
}

func TestSampleFollowsTheTrainingMix(t *testing.T) {
	g := trainGenerator(t)
	rng := newRand(8)
	counts := map[string]int{}
	const n = 16000
	for range n {
		u := rng.Float64() * g.weights[len(g.weights)-1]
		i, _ := slices.BinarySearch(g.weights, u)
		counts[g.conds[i]]++
	}
	require.InDelta(t, 0.25, float64(counts[Clean])/n, 0.02)
	for _, c := range Conditions()[1:] {
		require.InDelta(t, 0.75/8, float64(counts[c])/n, 0.015, c)
	}
	_, err := New(Options{Conditions: []string{"fog"}})
	require.ErrorContains(t, err, "fog")
}

// TestContactSheet renders a sheet of sample lines, grouped by condition,
// to the PNG named by OCRDATA_SHEET, for a person to look at.
func TestContactSheet(t *testing.T) {
	out := os.Getenv("OCRDATA_SHEET")
	if out == "" {
		t.Skip("set OCRDATA_SHEET=path.png to render a contact sheet")
	}
	split := Train
	if os.Getenv("OCRDATA_SHEET_SPLIT") == "validation" {
		split = Validation
	}
	g, err := New(Options{Split: split})
	require.NoError(t, err)
	seed, _ := strconv.ParseUint(os.Getenv("OCRDATA_SHEET_SEED"), 10, 64)
	rng := newRand(2024 + seed)
	var lines []Line
	perCond, conds := 3, Conditions()
	if c := os.Getenv("OCRDATA_SHEET_CONDITION"); c != "" { // one condition, more lines
		perCond, conds = 8, []string{c}
	}
	for _, cond := range conds {
		for range perCond {
			l, err := g.SampleCondition(rng, cond)
			require.NoError(t, err)
			lines = append(lines, l)
			t.Logf("%-12s %-28s %5.1fpx %4dx%-3d %-40s %q", cond, l.Font, l.CapHeight, l.Image.Rect.Dx(), l.Image.Rect.Dy(), l.Detail, l.Text)
		}
	}
	const gap = 6
	w, h := 0, gap
	for _, l := range lines {
		w = max(w, l.Image.Rect.Dx())
		h += l.Image.Rect.Dy() + gap
	}
	sheet := image.NewGray(image.Rect(0, 0, w+2*gap, h))
	for i := range sheet.Pix {
		sheet.Pix[i] = 128 // mid grey separates crops from paper
	}
	y := gap
	for _, l := range lines {
		for r := range l.Image.Rect.Dy() {
			copy(sheet.Pix[(y+r)*sheet.Stride+gap:], l.Image.Pix[r*l.Image.Stride:r*l.Image.Stride+l.Image.Rect.Dx()])
		}
		y += l.Image.Rect.Dy() + gap
	}
	if z, _ := strconv.Atoi(os.Getenv("OCRDATA_SHEET_ZOOM")); z > 1 { // nearest-neighbour, to see pixels
		big := image.NewGray(image.Rect(0, 0, sheet.Rect.Dx()*z, sheet.Rect.Dy()*z))
		for y := range big.Rect.Dy() {
			for x := range big.Rect.Dx() {
				big.Pix[y*big.Stride+x] = sheet.Pix[(y/z)*sheet.Stride+x/z]
			}
		}
		sheet = big
	}
	var b bytes.Buffer
	require.NoError(t, png.Encode(&b, sheet))
	require.NoError(t, os.WriteFile(out, b.Bytes(), 0o644))
}

func BenchmarkSample(b *testing.B) {
	g := trainGenerator(b)
	rng := newRand(1)
	b.ResetTimer()
	for b.Loop() {
		if _, err := g.Sample(rng); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/line")
}

func BenchmarkSampleCondition(b *testing.B) {
	g := trainGenerator(b)
	for _, cond := range Conditions() {
		b.Run(cond, func(b *testing.B) {
			rng := newRand(1)
			for b.Loop() {
				if _, err := g.SampleCondition(rng, cond); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/line")
		})
	}
}

func TestGeneratorsAreSafeForConcurrentUse(t *testing.T) {
	g := trainGenerator(t)
	want := make([][]byte, 4)
	for i := range want {
		l, err := g.Sample(newRand(uint64(i)))
		require.NoError(t, err)
		want[i] = l.Image.Pix
	}
	errs := make(chan error, len(want))
	for i := range want {
		go func() {
			l, err := g.Sample(newRand(uint64(i)))
			if err == nil && !bytes.Equal(l.Image.Pix, want[i]) {
				err = os.ErrInvalid
			}
			errs <- err
		}()
	}
	for range want {
		require.NoError(t, <-errs)
	}
}

// FortuneFiles keeps the text files of a fortune directory, in name order; FortuneLines cuts
// at "%" lines and applies overstrikes.
func TestFortuneFilesAndLines(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"zen", "art", "art.dat", "art.u8", ".hidden", "ascii-art"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, n), []byte("x\n"), 0o644))
	}
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	files, err := FortuneFiles(dir)
	require.NoError(t, err)
	require.Equal(t, []string{filepath.Join(dir, "art"), filepath.Join(dir, "zen")}, files)
	_, err = FortuneFiles(filepath.Join(dir, "missing"))
	require.Error(t, err)

	got := FortuneLines("one\n_\bb_\bo_\bl_\bd\n%\n\n%  \nlast")
	require.Equal(t, [][]string{{"one", "bold"}, {""}, {"last"}}, got)
}

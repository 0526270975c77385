package main

// The app's tests run the real window under Xvfb: the test binary starts itself again as the
// app (TestMain, MOEGPU_OCR_APP_ARGS) on a display of its own, drives it through the --script
// hook (the handlers GLFW's callbacks call), and checks the state JSON it writes and a
// screenshot read back from the X server (XGetImage on the window, as `xwd -id` does). Set
// MOEGPU_OCR_SHOTS=DIR to keep the screenshots.

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"

	"github.com/moegpu/moegpu/assets/models"
	"github.com/moegpu/moegpu/internal/gputest"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

const appArgsEnv = "MOEGPU_OCR_APP_ARGS"

func TestMain(m *testing.M) {
	if js := os.Getenv(appArgsEnv); js != "" {
		var args []string
		if err := json.Unmarshal([]byte(js), &args); err != nil {
			os.Stderr.WriteString("bad " + appArgsEnv + ": " + err.Error() + "\n")
			os.Exit(2)
		}
		os.Exit(run(args, os.Stderr))
	}
	gputest.Main(m)
}

// required reports whether missing tools must fail the test (CI) rather than skip it.
func required() bool { return os.Getenv("MOEGPU_REQUIRE_GPU") == "1" }

// needTool skips (or, when required, fails) a test without an external program.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if required() {
			t.Fatalf("MOEGPU_REQUIRE_GPU=1 but %s is not installed (apt-get install %s; scripts/setup.sh does)", name, pkg)
		}
		t.Skipf("%s is not installed (apt-get install %s)", name, pkg)
	}
}

// startX starts an Xvfb of its own (Xvfb picks a free display number and tells it through
// -displayfd) and returns the DISPLAY value.
func startX(t *testing.T) string {
	t.Helper()
	needTool(t, "Xvfb", "xvfb")
	// A display number of its own per test, never one just freed: a server killed a moment
	// ago can leave its socket behind, and a new server reusing the number was seen to refuse
	// the app's connection while other test binaries ran.
	n := nextDisplay()
	cmd := exec.Command("Xvfb", fmt.Sprintf(":%d", n), "-screen", "0", "2600x1700x24", "-nolisten", "tcp", "-noreset")
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // lets it remove its lock and socket
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sock := fmt.Sprintf("/tmp/.X11-unix/X%d", n)
	for start := time.Now(); time.Since(start) < 20*time.Second; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return fmt.Sprintf(":%d", n)
		}
	}
	t.Fatalf("Xvfb :%d did not start within 20 s", n)
	return ""
}

var displayCounter atomic.Int32

// nextDisplay picks a display number no X server holds, different for every call in this
// process and unlikely to collide with another process's (it starts from the pid).
func nextDisplay() int {
	for {
		n := 100 + (os.Getpid()*7+int(displayCounter.Add(1)))%800
		if _, err := os.Stat(fmt.Sprintf("/tmp/.X%d-lock", n)); os.IsNotExist(err) {
			return n
		}
	}
}

// startApp starts the app (this test binary) on display with args; wait for it with the
// returned func, which gives its output and fails the test on a non-zero exit.
func startApp(t *testing.T, display string, args ...string) func() string {
	t.Helper()
	js, err := json.Marshal(args)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), appArgsEnv+"="+string(js), "DISPLAY="+display, "XDG_RUNTIME_DIR="+t.TempDir())
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Start())
	done := false
	t.Cleanup(func() {
		if !done {
			cancel()
			_ = cmd.Wait()
		}
	})
	return func() string {
		t.Helper()
		err := cmd.Wait()
		done = true
		cancel()
		require.NoError(t, err, "app output:\n%s", out.String())
		return out.String()
	}
}

// writeScript writes the hook's commands to a file.
func writeScript(t *testing.T, dir string, lines ...string) string {
	t.Helper()
	p := filepath.Join(dir, "script.txt")
	require.NoError(t, os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
	return p
}

func readState(t *testing.T, path string) appState {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var st appState
	require.NoError(t, json.Unmarshal(b, &st))
	return st
}

func readPNG(t *testing.T, path string) *image.RGBA {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err)
	rgba := image.NewRGBA(img.Bounds())
	draw.Draw(rgba, rgba.Bounds(), img, img.Bounds().Min, draw.Src)
	keepShot(t, path)
	return rgba
}

// keepShot copies a screenshot to $MOEGPU_OCR_SHOTS, when set, for a person to look at.
func keepShot(t *testing.T, path string) {
	dir := os.Getenv("MOEGPU_OCR_SHOTS")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(path)
	if err == nil {
		name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()) + "-" + filepath.Base(path)
		_ = os.WriteFile(filepath.Join(dir, name), b, 0o644)
	}
}

// sampleLines is the text of the test's sample image.
var sampleLines = []string{
	"The quick brown fox jumps over the lazy dog.",
	"Invoice 2024-03-17: total 1,284.50 EUR",
	"moegpu reads text on any GPU",
	"Call 555 010 7788 before 5 pm",
}

// writeSample renders lines in Go Regular, black on white, px pixels high, into a PNG.
func writeSample(t *testing.T, path string, px float64, lines ...string) {
	t.Helper()
	f, err := opentype.Parse(goregular.TTF)
	require.NoError(t, err)
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: px, DPI: 72, Hinting: font.HintingFull})
	require.NoError(t, err)
	w := 0
	for _, l := range lines {
		w = max(w, font.MeasureString(face, l).Ceil())
	}
	lh := int(px * 1.6)
	img := image.NewRGBA(image.Rect(0, 0, w+2*int(px), len(lines)*lh+int(px)))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for i, l := range lines {
		d := font.Drawer{Dst: img, Src: image.Black, Face: face, Dot: fixed.P(int(px), int(px)/2+i*lh+int(px))}
		d.DrawString(l)
	}
	out, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, png.Encode(out, img))
	require.NoError(t, out.Close())
}

// count is how many pixels of r in img satisfy ok.
func count(img *image.RGBA, r image.Rectangle, ok func(c color.RGBA) bool) int {
	n := 0
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if ok(img.RGBAAt(x, y)) {
				n++
			}
		}
	}
	return n
}

func dark(c color.RGBA) bool { return int(c.R)+int(c.G)+int(c.B) < 200 }

// near reports whether c is within 40 of want in every channel.
func near(want color.RGBA) func(color.RGBA) bool {
	return func(c color.RGBA) bool {
		d := func(a, b uint8) int { return max(int(a)-int(b), int(b)-int(a)) }
		return d(c.R, want.R) < 40 && d(c.G, want.G) < 40 && d(c.B, want.B) < 40
	}
}

func rect(r [4]int) image.Rectangle { return image.Rect(r[0], r[1], r[2], r[3]) }

// checkShot checks a screenshot of a window showing a read image: the image is drawn in the
// image view (dark ink on the white page, the line boxes in the accent colour, the selected
// one in amber), and the text panel holds rendered text.
func checkShot(t *testing.T, shot *image.RGBA, st appState) {
	t.Helper()
	require.Equal(t, st.Framebuffer[0], shot.Bounds().Dx())
	require.Equal(t, st.Framebuffer[1], shot.Bounds().Dy())
	iv, tp := rect(st.ImageView), rect(st.TextPanel)
	area := iv.Dx() * iv.Dy()
	white := count(shot, iv, func(c color.RGBA) bool { return c.R > 245 && c.G > 245 && c.B > 245 })
	assert.Greater(t, white, area/20, "the page (white) fills part of the image view")
	assert.Greater(t, count(shot, iv, dark), 500, "the image's ink is drawn")
	assert.Greater(t, count(shot, iv, near(colAccent)), 200, "line boxes are drawn in the accent colour")
	if st.Selected >= 0 {
		assert.Greater(t, count(shot, iv, near(colSelect)), 100, "the selected box is amber")
		assert.Greater(t, count(shot, tp, near(colSelectBG)), 500, "the selected row is highlighted")
	}
	assert.Greater(t, count(shot, tp, dark), 80, "the text panel holds rendered text")
	// Rendered text is antialiased: greys between ink and paper.
	assert.Greater(t, count(shot, tp, func(c color.RGBA) bool { s := int(c.R) + int(c.G) + int(c.B); return s > 200 && s < 600 }), 100)
}

// The app opens an image given on the command line, reads it off the UI thread, and shows the
// image, the line boxes, the text beside it and the timings, at 1× and 2× scale.
func TestWindowShowsImageBoxesAndText(t *testing.T) {
	display := startX(t)
	for _, scale := range []string{"1", "2"} {
		t.Run("scale"+scale, func(t *testing.T) {
			dir := t.TempDir()
			sample := filepath.Join(dir, "sample.png")
			writeSample(t, sample, 24, sampleLines...)
			script := writeScript(t, dir,
				"wait 120",
				"select 2",
				"state "+filepath.Join(dir, "state.json"),
				"screenshot "+filepath.Join(dir, "shot.png"),
				"key f1",
				"screenshot "+filepath.Join(dir, "help.png"),
				"quit")
			wait := startApp(t, display, "--engine", "fake", "--scale", scale, "--width", "1000", "--height", "600", "--script", script, sample)
			wait()
			st := readState(t, filepath.Join(dir, "state.json"))
			assert.Equal(t, "sample.png", st.Image)
			assert.Equal(t, "ready", st.Engine)
			assert.False(t, st.Busy)
			require.Len(t, st.Lines, len(sampleLines), "one box per text line")
			assert.Equal(t, "line 1\nline 2\nline 3\nline 4", st.Text)
			assert.Equal(t, 1, st.Selected)
			assert.Greater(t, st.Lines[0].Ms, 0.0)
			assert.Equal(t, 0.6, st.Lines[3].Confidence, "the fake engine doubts its last line")
			shot := readPNG(t, filepath.Join(dir, "shot.png"))
			assert.Greater(t, count(shot, rect(st.ImageView), near(colDoubt)), 50, "the doubted line's box is purple")
			assert.Greater(t, count(shot, rect(st.TextPanel), near(colDoubt)), 20, "the doubted line's text is purple")
			for i := 1; i < len(st.Lines); i++ {
				assert.Greater(t, st.Lines[i].Box.Min.Y, st.Lines[i-1].Box.Max.Y-2, "lines in reading order")
			}
			s, _ := strconv.ParseFloat(scale, 32)
			assert.Equal(t, float32(s), st.Scale)
			assert.Equal(t, int(1000*s), st.Framebuffer[0])
			assert.Contains(t, st.WindowAdapter, "[vulkan]")
			checkShot(t, readPNG(t, filepath.Join(dir, "shot.png")), st)
			// The help card dims the rest of the window: the toolbar's left edge (which the card
			// never covers) is no longer white.
			toolbar := image.Rect(0, 0, int(10*s), st.ImageView[1])
			white := func(c color.RGBA) bool { return c.R > 245 && c.G > 245 && c.B > 245 }
			assert.Greater(t, count(readPNG(t, filepath.Join(dir, "shot.png")), toolbar, white), toolbar.Dx()*toolbar.Dy()/2)
			assert.Zero(t, count(readPNG(t, filepath.Join(dir, "help.png")), toolbar, white))
		})
	}
}

// A dropped file and a pasted image (put on the X clipboard by xclip, read back by the app
// through xclip) are both opened and read.
func TestDropAndPasteOpenImages(t *testing.T) {
	display := startX(t)
	needTool(t, "xclip", "xclip")
	dir := t.TempDir()
	dropped := filepath.Join(dir, "dropped.png")
	writeSample(t, dropped, 24, sampleLines[:3]...)
	pasted := filepath.Join(dir, "pasted.png")
	writeSample(t, pasted, 30, "pasted from the clipboard", "second line")
	notImage := filepath.Join(dir, "notes.png")
	require.NoError(t, os.WriteFile(notImage, []byte("this is text, not a picture"), 0o644))

	// xclip keeps serving the selection in the background until another client takes it.
	clip := exec.Command("xclip", "-selection", "clipboard", "-t", "image/png", "-i", pasted)
	clip.Env = append(os.Environ(), "DISPLAY="+display)
	require.NoError(t, clip.Run())

	script := writeScript(t, dir,
		"wait 120",
		"drop "+dropped,
		"wait 120",
		"state "+filepath.Join(dir, "dropped.json"),
		"paste",
		"wait 120",
		"state "+filepath.Join(dir, "pasted.json"),
		"screenshot "+filepath.Join(dir, "pasted.png.shot.png"),
		"drop "+notImage,
		"wait 120",
		"state "+filepath.Join(dir, "bad.json"),
		"screenshot "+filepath.Join(dir, "bad.png"),
		"quit")
	startApp(t, display, "--engine", "fake", "--script", script)()

	st := readState(t, filepath.Join(dir, "dropped.json"))
	assert.Equal(t, "dropped.png", st.Image)
	assert.Equal(t, dropped, st.Path)
	assert.Len(t, st.Lines, 3)
	assert.Empty(t, st.Error)

	st = readState(t, filepath.Join(dir, "pasted.json"))
	assert.Equal(t, "pasted image", st.Image)
	assert.Empty(t, st.Path)
	b, err := os.ReadFile(pasted)
	require.NoError(t, err)
	cfg, err := png.DecodeConfig(strings.NewReader(string(b)))
	require.NoError(t, err)
	assert.Equal(t, [2]int{cfg.Width, cfg.Height}, [2]int{st.Width, st.Height})
	assert.Len(t, st.Lines, 2)
	checkShot(t, readPNG(t, filepath.Join(dir, "pasted.png.shot.png")), st)

	// A file that is not an image: the error is in the window (banner), the previous image stays.
	st = readState(t, filepath.Join(dir, "bad.json"))
	assert.Contains(t, st.Error, "notes.png")
	assert.Equal(t, "pasted image", st.Image)
	shot := readPNG(t, filepath.Join(dir, "bad.png"))
	assert.Greater(t, count(shot, rect(st.ImageView), near(colErrorBG)), 2000, "the error banner is drawn")
}

// Ctrl+C puts all the text on the X clipboard, Ctrl+Shift+C the selected line; another
// client (xclip) reads it while the window owns the selection.
func TestCopyPutsTextOnClipboard(t *testing.T) {
	display := startX(t)
	needTool(t, "xclip", "xclip")
	dir := t.TempDir()
	sample := filepath.Join(dir, "sample.png")
	writeSample(t, sample, 24, sampleLines...)
	p := func(n string) string { return filepath.Join(dir, n) }
	script := writeScript(t, dir,
		"wait 120",
		"key ctrl+c",
		"state "+p("all.json"),
		"hold "+p("go1")+" 60",
		"select 3",
		"key ctrl+shift+c",
		"state "+p("line.json"),
		"hold "+p("go2")+" 60",
		"key ctrl+s", // the save prompt, with the default path next to the image
		"key enter",
		"wait 30",
		"quit")
	wait := startApp(t, display, "--engine", "fake", "--script", script, sample)
	readClip := func() string {
		t.Helper()
		c := exec.Command("xclip", "-selection", "clipboard", "-o")
		c.Env = append(os.Environ(), "DISPLAY="+display)
		out, err := c.Output()
		require.NoError(t, err)
		return string(out)
	}
	waitFile := func(path string) {
		t.Helper()
		for i := 0; i < 1200; i++ {
			if _, err := os.Stat(path); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s did not appear", path)
	}
	waitFile(p("all.json"))
	assert.Equal(t, "line 1\nline 2\nline 3\nline 4", readClip())
	assert.Equal(t, "line 1\nline 2\nline 3\nline 4", readState(t, p("all.json")).Copied)
	require.NoError(t, os.WriteFile(p("go1"), nil, 0o644))
	waitFile(p("line.json"))
	assert.Equal(t, "line 3", readClip())
	require.NoError(t, os.WriteFile(p("go2"), nil, 0o644))
	wait()
	saved, err := os.ReadFile(p("sample.txt"))
	require.NoError(t, err)
	assert.Equal(t, "line 1\nline 2\nline 3\nline 4\n", string(saved))
}

// Errors appear in the window, never as a crash: a missing model (the text panel and a banner
// say where it was looked for) and a file that is not an image.
func TestErrorsShowInWindow(t *testing.T) {
	display := startX(t)
	dir := t.TempDir()
	sample := filepath.Join(dir, "sample.png")
	writeSample(t, sample, 24, sampleLines[:2]...)
	script := writeScript(t, dir,
		"wait 120",
		"state "+filepath.Join(dir, "state.json"),
		"screenshot "+filepath.Join(dir, "shot.png"),
		"quit")
	startApp(t, display, "--model", filepath.Join(dir, "no-such-model"), "--script", script, sample)()
	st := readState(t, filepath.Join(dir, "state.json"))
	assert.Equal(t, "failed", st.Engine)
	assert.Contains(t, st.ModelError, "no OCR model at")
	assert.Contains(t, st.ModelError, "no-such-model")
	assert.Contains(t, st.DocError, "no OCR model")
	assert.Equal(t, "sample.png", st.Image, "the image is shown even without a model")
	shot := readPNG(t, filepath.Join(dir, "shot.png"))
	assert.Greater(t, count(shot, rect(st.ImageView), near(colErrorBG)), 2000, "the error banner is drawn")
	assert.Greater(t, count(shot, rect(st.TextPanel), near(colError)), 100, "the text panel says what is wrong, in red")
}

// testModelDir is the model the real-model test runs: $MOEGPU_OCR_MODEL, else the shipped one.
func testModelDir() string {
	if d := os.Getenv("MOEGPU_OCR_MODEL"); d != "" {
		return d
	}
	return filepath.Join("..", "..", models.OCRSmall)
}

// With a real model (the shipped one, or $MOEGPU_OCR_MODEL: any checkpoint of `moegpu train
// --task ocr`) the app reads the sample and shows its text, boxes and timing.
func TestRealModelReadsSample(t *testing.T) {
	model := testModelDir()
	if _, err := os.Stat(filepath.Join(model, ocr.WeightsFile)); err != nil {
		t.Fatalf("no OCR model at %s (the shipped %s, or MOEGPU_OCR_MODEL): %v", model, models.OCRSmall, err)
	}
	display := startX(t)
	dir := t.TempDir()
	sample := filepath.Join(dir, "sample.png")
	writeSample(t, sample, 24, sampleLines...)
	script := writeScript(t, dir,
		"wait 600",
		"select 1",
		"state "+filepath.Join(dir, "state.json"),
		"screenshot "+filepath.Join(dir, "shot.png"),
		"quit")
	args := []string{"--model", model, "--script", script, sample}
	if b := os.Getenv("MOEGPU_BACKEND"); b != "" {
		args = append([]string{"--backend", b}, args...)
	}
	startApp(t, display, args...)()
	st := readState(t, filepath.Join(dir, "state.json"))
	require.Equal(t, "ready", st.Engine, "model error: %s", st.ModelError)
	require.Empty(t, st.DocError)
	require.Len(t, st.Lines, len(sampleLines))
	assert.NotEmpty(t, st.Adapter)
	assert.Greater(t, st.DecodeMs, 0.0)
	edits, chars := 0, 0
	for i, l := range st.Lines {
		t.Logf("line %d (%.0f ms): %q (want %q)", i+1, l.Ms, l.Text, sampleLines[i])
		edits += levenshtein(l.Text, sampleLines[i])
		chars += len([]rune(sampleLines[i]))
	}
	cer := float64(edits) / float64(chars)
	t.Logf("CER %.3f on %s (%s)", cer, model, st.Adapter)
	if os.Getenv("MOEGPU_OCR_MODEL") == "" { // the shipped model must read clean Go Regular
		assert.Less(t, cer, 0.2)
	}
	checkShot(t, readPNG(t, filepath.Join(dir, "shot.png")), st)
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur := make([]int, len(rb)+1)
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev = cur
	}
	return prev[len(rb)]
}

// The sample's lines are found by the same line splitter the model uses, so the fake
// engine's boxes are the real ones.
func TestSampleLinesAreFound(t *testing.T) {
	dir := t.TempDir()
	sample := filepath.Join(dir, "sample.png")
	writeSample(t, sample, 24, sampleLines...)
	keepShot(t, sample)
	img, err := ocrimage.Load(sample)
	require.NoError(t, err)
	lines, err := ocrimage.Prepare(img, 0, 0)
	require.NoError(t, err)
	assert.Len(t, lines, len(sampleLines))
}

// A right-drag over part of the image reads only that region (Ctrl+Z goes back to the whole
// image), and F6 captures the screen (X11) while the window steps aside.
func TestRegionAndScreenCapture(t *testing.T) {
	display := startX(t)
	dir := t.TempDir()
	sample := filepath.Join(dir, "sample.png")
	writeSample(t, sample, 24, sampleLines...)
	p := func(n string) string { return filepath.Join(dir, n) }
	// writeSample puts line i's baseline at 12 + 38i + 24: rows 0–88 hold lines 1 and 2 whole
	// and nothing of line 3.
	script := writeScript(t, dir,
		"wait 120",
		"dragimg 0 0 10000 88",
		"wait 120",
		"state "+p("region.json"),
		"screenshot "+p("region.png"),
		"key ctrl+z",
		"wait 120",
		"state "+p("back.json"),
		"capture",
		"wait 120",
		"state "+p("capture.json"),
		"quit")
	startApp(t, display, "--engine", "fake", "--script", script, sample)()
	st := readState(t, p("region.json"))
	assert.Equal(t, "sample.png (region)", st.Image)
	assert.Len(t, st.Lines, 2)
	cfg, err := png.DecodeConfig(mustOpen(t, sample))
	require.NoError(t, err)
	assert.Equal(t, [2]int{cfg.Width, 88}, [2]int{st.Width, st.Height})
	checkShot(t, readPNG(t, p("region.png")), st)
	st = readState(t, p("back.json"))
	assert.Equal(t, "sample.png", st.Image)
	assert.Len(t, st.Lines, 4)
	st = readState(t, p("capture.json"))
	assert.Equal(t, "screen capture", st.Image)
	assert.Equal(t, [2]int{2600, 1700}, [2]int{st.Width, st.Height}, "the whole Xvfb screen")
	assert.Empty(t, st.Error)
	assert.Empty(t, st.DocError)
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	return f
}

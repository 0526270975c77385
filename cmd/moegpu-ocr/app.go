package main

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	xdraw "golang.org/x/image/draw"

	"github.com/go-gl/glfw/v3.3/glfw"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/ocr"
	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// options are the app's command-line settings.
type options struct {
	image     string        // opened at start, if set
	model     string        // model directory
	device    gpu.Options   // the OCR model's adapter
	ocr       ocr.Options   // batch, f16
	engine    string        // "model" or "fake"
	fakeDelay time.Duration // the fake engine's time per line
	scale     float32       // UI scale; 0: the window system's content scale
	width     int           // window size in screen coordinates at 1×
	height    int
	script    string // debug hook: a file of commands (see hook.go)
}

// Engine states.
const (
	engineLoading = iota
	engineReady
	engineFailed
)

// document is the image on show and what is known of its text.
type document struct {
	img    image.Image
	name   string // what the window calls it: the file name, or "pasted image"
	path   string // its file, "" when pasted
	w, h   int
	seq    int // which image this is, counting from 1
	tex    *gpu.Texture
	texSc  float64 // texture pixels per image pixel (below 1 when the image was shrunk to fit the adapter)
	upload *image.RGBA

	job     int // the recognition job that serves this image
	busy    bool
	done    int // segments read so far
	total   int
	started time.Time
	took    time.Duration
	res     *ocr.Result
	err     error
}

// view is how the image is shown: zoom relative to fit, and the image point at the view's
// centre.
type view struct {
	zoom   float64
	cx, cy float64
}

// prompt is the one-line input the open and save commands use.
type prompt struct {
	title  string
	value  string
	accept func(string)
	hint   string
}

// App is the OCR window: its document, view, UI state, and the worker that runs the engine.
// Everything but the inbox belongs to the UI (main) thread.
type App struct {
	opt   options
	fonts *fonts
	win   *glfw.Window
	dev   *gpu.Device
	surf  *gpu.Surface
	scale float32
	fbW   int
	fbH   int

	// worker
	mu       sync.Mutex
	inbox    []func()
	closed   bool          // the event loop has ended (guarded by mu)
	want     job           // the next image for the worker (guarded by mu); newer replaces older
	kick     chan struct{} // wakes the worker
	nextJob  int
	docs     int           // images shown so far
	workerOK chan struct{} // closed when the worker has closed the engine

	engineState int
	adapter     string
	modelErr    error

	doc      document
	view     view
	selected int
	scroll   int // text panel scroll, pixels
	// ensureRowVisible asks the next panel drawing to scroll the selected row into view.
	ensureRowVisible bool

	help     bool
	prompt   *prompt
	errMsg   string
	notice   string
	noticeAt time.Time
	copied   string // the last text put on the clipboard
	loads    int    // image loads and pastes under way

	// captureAt is when the window hid itself for a screen capture (zero: none under way).
	captureAt time.Time
	// region is the rectangle being dragged out to read only part of the image (window
	// pixels, the drag's start and its current end), when regioning.
	regioning bool
	region    [4]float64
	// whole is the image a region was cut from, for Ctrl+Z.
	whole *document

	// input
	mouseX, mouseY float64 // window pixels (framebuffer)
	dragging       bool
	dragMoved      bool
	dragX, dragY   float64

	// rendering
	lay       layout
	uiDirty   bool
	needFrame bool
	tex       map[string]*gpu.Texture
	texAt     map[string]image.Rectangle
	hidden    map[string]bool
	rows      []rowHit
	frames    int
	drawErr   error

	script *script
	quit   bool
	exit   int
}

// job is one image for the worker.
type job struct {
	id  int
	img image.Image
}

// post queues f to run on the UI thread and wakes the event loop. Safe from any goroutine.
func (a *App) post(f func()) {
	a.mu.Lock()
	a.inbox = append(a.inbox, f)
	closed := a.closed
	a.mu.Unlock()
	if closed { // GLFW is gone (or going): nothing to wake
		return
	}
	defer func() { _ = recover() }() // GLFW reports a terminated library by panicking
	glfw.PostEmptyEvent()
}

// runInbox runs what the worker and loaders posted.
func (a *App) runInbox() {
	a.mu.Lock()
	fs := a.inbox
	a.inbox = nil
	a.mu.Unlock()
	for _, f := range fs {
		a.guard("event", f)
	}
}

// guard runs f, turning a panic (a defect, or a GLFW programmer error) into an error shown in
// the window instead of a crash.
func (a *App) guard(what string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			a.fail(fmt.Errorf("%s: internal error: %v", what, r))
		}
	}()
	f()
}

// startWorker loads the engine and then serves recognition jobs, one at a time, off the UI
// thread.
func (a *App) startWorker(open func() (Engine, error)) {
	a.kick = make(chan struct{}, 1)
	a.workerOK = make(chan struct{})
	go func() {
		defer close(a.workerOK)
		eng, err := open()
		a.post(func() {
			if err != nil {
				a.engineState, a.modelErr = engineFailed, err
				if a.doc.busy {
					a.doc.busy, a.doc.err = false, err
				}
			} else {
				a.engineState, a.adapter = engineReady, eng.Adapter()
				if a.doc.busy { // an image came before the model
					a.submit(job{id: a.doc.job, img: a.doc.img})
				}
			}
			a.dirty()
		})
		for range a.kick {
			a.mu.Lock()
			j := a.want
			a.want = job{}
			a.mu.Unlock()
			if j.img == nil || eng == nil {
				continue
			}
			id := j.id
			res, err := eng.Recognize(j.img, func(done, total int) {
				a.post(func() {
					if a.doc.job == id {
						a.doc.done, a.doc.total = done, total
						a.dirty()
					}
				})
			})
			a.post(func() { a.finish(id, res, err) })
		}
		if eng != nil {
			eng.Close()
		}
	}()
}

// submit hands j to the worker, replacing any image it has not started on.
func (a *App) submit(j job) {
	a.mu.Lock()
	a.want = j
	a.mu.Unlock()
	select {
	case a.kick <- struct{}{}:
	default: // the worker has a wake-up pending already
	}
}

// finish takes a job's result.
func (a *App) finish(id int, res ocr.Result, err error) {
	if a.doc.job != id {
		return
	}
	a.doc.busy = false
	a.doc.took = time.Since(a.doc.started)
	if err != nil {
		a.doc.err = fmt.Errorf("recognition failed: %w", err)
		a.fail(a.doc.err)
		return
	}
	a.doc.res = &res
	a.selected = -1
	if len(res.Lines) > 0 {
		a.selected = 0
	}
	a.dirty()
}

// dirty asks for the panels to be drawn again.
func (a *App) dirty() { a.uiDirty, a.needFrame = true, true }

// fail shows an error in the window.
func (a *App) fail(err error) {
	if err == nil {
		return
	}
	a.errMsg = err.Error()
	fmt.Fprintln(os.Stderr, "moegpu-ocr:", a.errMsg)
	a.dirty()
}

// say shows a short notice in the status bar for a few seconds.
func (a *App) say(format string, args ...any) {
	a.notice, a.noticeAt = fmt.Sprintf(format, args...), time.Now()
	a.dirty()
}

// openPath loads an image file off the UI thread and shows it.
func (a *App) openPath(path string) {
	path = expandHome(strings.TrimSpace(path))
	if path == "" {
		return
	}
	a.say("Opening %s…", filepath.Base(path))
	a.loads++
	go func() {
		img, err := ocrimage.Load(path)
		a.post(func() {
			a.loads--
			a.notice = ""
			if err != nil {
				a.fail(err)
				return
			}
			a.setImage(img, filepath.Base(path), path)
		})
	}()
}

// drop opens files dropped on the window (the first image of them).
func (a *App) drop(names []string) {
	if len(names) == 0 {
		return
	}
	if len(names) > 1 {
		a.say("%d files dropped: opening %s", len(names), filepath.Base(names[0]))
	}
	a.openPath(names[0])
}

// paste opens the clipboard's image, or the image file whose path the clipboard holds.
func (a *App) paste() {
	text := ""
	a.guard("paste", func() { text = a.win.GetClipboardString() })
	a.say("Pasting…")
	a.loads++
	// Reading the clipboard through xclip runs off the UI thread: when this window owns the
	// selection, the X server asks it for the data, and the event loop must be free to answer.
	go func() {
		img, err := clipboardImage()
		a.post(func() {
			a.loads--
			a.notice = ""
			switch {
			case err == nil:
				a.setImage(img, "pasted image", "")
			case errors.Is(err, errNoClipboardImage) && looksLikePath(text):
				a.openPath(pathFromClipboard(text))
			default:
				a.fail(err)
			}
		})
	}()
}

// setImage shows img and starts reading it.
func (a *App) setImage(img image.Image, name, path string) {
	b := img.Bounds()
	if a.doc.tex != nil {
		a.doc.tex.Release()
	}
	a.docs++
	a.doc = document{img: img, name: name, path: path, w: b.Dx(), h: b.Dy(), seq: a.docs}
	// The RGBA copy the texture is made from is converted off the UI thread (a 40-megapixel
	// photo takes a while).
	seq := a.docs
	a.loads++
	go func() {
		up, sc := displayCopy(img, 8192)
		a.post(func() {
			a.loads--
			if a.doc.seq == seq {
				a.doc.upload, a.doc.texSc = up, sc
				a.needFrame = true
			}
		})
	}()
	a.view = view{zoom: 1, cx: float64(b.Dx()) / 2, cy: float64(b.Dy()) / 2}
	a.selected, a.scroll, a.errMsg, a.whole = -1, 0, "", nil
	a.win.SetTitle(name + " — moegpu OCR")
	a.recognise()
}

// recognise queues the document for the worker.
func (a *App) recognise() {
	if a.doc.img == nil {
		return
	}
	a.nextJob++
	a.doc.job = a.nextJob
	a.doc.busy, a.doc.res, a.doc.err, a.doc.done, a.doc.total = true, nil, nil, 0, 0
	a.doc.started = time.Now()
	switch a.engineState {
	case engineReady:
		a.submit(job{id: a.doc.job, img: a.doc.img})
	case engineFailed:
		a.doc.busy, a.doc.err = false, a.modelErr
	}
	a.dirty()
}

// displayCopy converts img to RGBA for upload, shrunk so no side exceeds limit pixels.
func displayCopy(img image.Image, limit int) (*image.RGBA, float64) {
	b := img.Bounds()
	sc := 1.0
	if m := max(b.Dx(), b.Dy()); m > limit {
		sc = float64(limit) / float64(m)
	}
	w, h := max(1, int(float64(b.Dx())*sc)), max(1, int(float64(b.Dy())*sc))
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if sc == 1 {
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
	} else {
		xdraw.ApproxBiLinear.Scale(dst, dst.Bounds(), img, b, draw.Src, nil)
	}
	return dst, float64(w) / float64(b.Dx())
}

// text is the recognised text, one line per line.
func (a *App) text() string {
	if a.doc.res == nil {
		return ""
	}
	return a.doc.res.Text()
}

// copyAll puts all recognised text on the clipboard.
func (a *App) copyAll() {
	if a.doc.res == nil || len(a.doc.res.Lines) == 0 {
		a.say("Nothing to copy yet")
		return
	}
	a.setClipboard(a.text())
	a.say("Copied %d lines", len(a.doc.res.Lines))
}

// copyLine puts the selected line on the clipboard.
func (a *App) copyLine() {
	if a.doc.res == nil || a.selected < 0 || a.selected >= len(a.doc.res.Lines) {
		a.say("Select a line first (click its box or its text, or use ↑ ↓)")
		return
	}
	a.setClipboard(a.doc.res.Lines[a.selected].Text)
	a.say("Copied line %d", a.selected+1)
}

func (a *App) setClipboard(s string) {
	a.guard("copy", func() {
		a.win.SetClipboardString(s)
		a.copied = s
	})
}

// askOpen shows the path prompt for opening a file.
func (a *App) askOpen() {
	start := ""
	if a.doc.path != "" {
		start = filepath.Dir(a.doc.path) + string(filepath.Separator)
	} else if wd, err := os.Getwd(); err == nil {
		start = wd + string(filepath.Separator)
	}
	a.prompt = &prompt{title: "Open image", value: start, accept: a.openPath, hint: "Tab completes · Enter opens · Esc cancels"}
	a.dirty()
}

// askSave shows the path prompt for saving the text.
func (a *App) askSave() {
	if a.doc.res == nil {
		a.say("Nothing to save yet")
		return
	}
	a.prompt = &prompt{title: "Save text as", value: a.defaultSavePath(), accept: a.save, hint: "Enter saves · Esc cancels"}
	a.dirty()
}

func (a *App) defaultSavePath() string {
	if a.doc.path != "" {
		return strings.TrimSuffix(a.doc.path, filepath.Ext(a.doc.path)) + ".txt"
	}
	dir, err := os.Getwd()
	if err != nil {
		dir = "."
	}
	return filepath.Join(dir, "ocr-"+time.Now().Format("20060102-150405")+".txt")
}

// save writes the text to path (atomically: a crash leaves the old file or the new one).
func (a *App) save(path string) {
	path = expandHome(strings.TrimSpace(path))
	if a.doc.res == nil || path == "" {
		return
	}
	if err := atomicfile.Write(path, []byte(a.text()+"\n")); err != nil {
		a.fail(fmt.Errorf("save: %w", err))
		return
	}
	a.say("Saved %s", path)
}

// capture hides the window and, a moment later (captureStep), reads the screen as the image.
func (a *App) capture() {
	if !canCapture {
		a.say("Screen capture works on X11 only")
		return
	}
	a.guard("capture", func() { a.win.Hide() })
	a.captureAt = time.Now()
}

// captureStep finishes a capture once the window has had time to leave the screen.
func (a *App) captureStep() {
	if a.captureAt.IsZero() || time.Since(a.captureAt) < 350*time.Millisecond {
		return
	}
	a.captureAt = time.Time{}
	img, err := grabScreen()
	a.guard("capture", func() { a.win.Show() })
	if err != nil {
		a.fail(err)
		return
	}
	a.setImage(img, "screen capture", "")
	a.say("Screen captured: Shift+drag or right-drag a region to read only that part")
}

// cropTo reads only the part of the image under window rectangle r (x0, y0, x1, y1).
func (a *App) cropTo(r [4]float64) {
	if a.doc.img == nil {
		return
	}
	sc, x0, y0 := a.imageXform()
	b := a.doc.img.Bounds()
	ir := image.Rect(int(math.Floor((math.Min(r[0], r[2])-x0)/sc)), int(math.Floor((math.Min(r[1], r[3])-y0)/sc)),
		int(math.Ceil((math.Max(r[0], r[2])-x0)/sc)), int(math.Ceil((math.Max(r[1], r[3])-y0)/sc))).Add(b.Min).Intersect(b)
	if ir.Dx() < 4 || ir.Dy() < 4 {
		a.say("The region is too small")
		return
	}
	dst := image.NewRGBA(image.Rect(0, 0, ir.Dx(), ir.Dy()))
	draw.Draw(dst, dst.Bounds(), a.doc.img, ir.Min, draw.Src)
	whole := &document{img: a.doc.img, name: a.doc.name, path: a.doc.path}
	if a.whole != nil { // a region of a region: Ctrl+Z still goes back to the whole image
		whole = a.whole
	}
	a.setImage(dst, whole.name+" (region)", "")
	a.whole = whole
	a.say("Reading a %d×%d region (Ctrl+Z: back to the whole image)", ir.Dx(), ir.Dy())
}

// uncrop goes back from a region to the whole image it was cut from.
func (a *App) uncrop() {
	if a.whole == nil {
		return
	}
	w := a.whole
	a.setImage(w.img, w.name, w.path)
}

// selectLine selects line i (clamped) and brings its row and box into view.
func (a *App) selectLine(i int) {
	if a.doc.res == nil || len(a.doc.res.Lines) == 0 {
		return
	}
	i = max(0, min(i, len(a.doc.res.Lines)-1))
	a.selected = i
	a.ensureRowVisible = true
	if a.view.zoom > 1 { // bring the box into view
		b := a.doc.res.Lines[i].Box
		a.view.cx, a.view.cy = float64(b.Min.X+b.Max.X)/2, float64(b.Min.Y+b.Max.Y)/2
		a.clampView()
	}
	a.dirty()
}

func expandHome(p string) string {
	if strings.HasPrefix(p, "~/") {
		if h, err := os.UserHomeDir(); err == nil {
			return filepath.Join(h, p[2:])
		}
	}
	return p
}

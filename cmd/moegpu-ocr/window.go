package main

import (
	"fmt"
	"image"
	"io"
	"math"
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"

	"github.com/moegpu/moegpu/gpu"
)

// newApp makes the app for opt (no window yet).
func newApp(opt options) (*App, error) {
	f, err := newFonts()
	if err != nil {
		return nil, err
	}
	return &App{opt: opt, fonts: f, selected: -1, tex: map[string]*gpu.Texture{}, texAt: map[string]image.Rectangle{}, hidden: map[string]bool{}}, nil
}

// run opens the window and runs the event loop until the window closes. It returns the
// process's exit code. Only failures that leave nothing to draw with (no display, no adapter
// that can present to the window) end it early; they are printed to stderr and set as the
// window's title.
func (a *App) run(stderr io.Writer) int {
	if err := initWindowSystem(); err != nil {
		fmt.Fprintf(stderr, "moegpu-ocr: no window system: %v (is DISPLAY set? under X11 without a screen, run it in Xvfb)\n", err)
		return 1
	}
	defer glfw.Terminate()
	w, h := a.opt.width, a.opt.height
	if a.opt.scale > 0 {
		w, h = int(float32(w)*a.opt.scale), int(float32(h)*a.opt.scale)
	}
	win, err := glfw.CreateWindow(w, h, "moegpu OCR", nil, nil)
	if err != nil {
		fmt.Fprintf(stderr, "moegpu-ocr: cannot open a window: %v\n", err)
		return 1
	}
	defer win.Destroy()
	a.win = win
	a.scale = a.opt.scale
	if a.scale <= 0 {
		a.scale, _ = win.GetContentScale()
		if a.scale <= 0 {
			a.scale = 1
		}
	}
	a.fbW, a.fbH = win.GetFramebufferSize()
	dev, surf, err := gpu.OpenSurface(surfaceTarget(win), gpu.Options{}, a.fbW, a.fbH)
	if err != nil {
		msg := fmt.Sprintf("no GPU adapter can draw this window: %v", err)
		fmt.Fprintln(stderr, "moegpu-ocr:", msg)
		win.SetTitle("moegpu OCR — " + msg)
		return 2
	}
	a.dev, a.surf = dev, surf
	defer func() {
		for _, t := range a.tex {
			t.Release()
		}
		if a.doc.tex != nil {
			a.doc.tex.Release()
		}
		surf.Release()
		dev.Close()
	}()
	a.callbacks()
	a.startWorker(a.engineOpener())
	defer a.stopWorker()
	if a.opt.script != "" {
		s, err := loadScript(a.opt.script)
		if err != nil {
			fmt.Fprintln(stderr, "moegpu-ocr:", err)
			return 2
		}
		a.script = s
	}
	if a.opt.image != "" {
		a.openPath(a.opt.image)
	}
	a.dirty()
	lastUI := time.Now()
	for !a.quit && !win.ShouldClose() {
		a.runInbox()
		if a.script != nil {
			a.guard("script", a.script.step(a))
		}
		a.guard("capture", a.captureStep)
		if a.notice != "" && time.Since(a.noticeAt) > 4*time.Second {
			a.notice = ""
			a.dirty()
		}
		if a.doc.busy && time.Since(lastUI) > 250*time.Millisecond { // the progress bar moves
			a.dirty()
		}
		if a.needFrame {
			if a.uiDirty {
				lastUI = time.Now()
			}
			a.draw()
		}
		wait := 1.0
		if a.doc.busy || a.script != nil || a.notice != "" || a.loads > 0 || !a.captureAt.IsZero() {
			wait = 0.05
		}
		glfw.WaitEventsTimeout(wait)
	}
	return a.exit
}

// engineOpener is what the worker calls first: the real model, or the fake for tests.
func (a *App) engineOpener() func() (Engine, error) {
	if a.opt.engine == "fake" {
		return func() (Engine, error) { return fakeEngine{Delay: a.opt.fakeDelay}, nil }
	}
	dir, dopt, ropt := a.opt.model, a.opt.device, a.opt.ocr
	return func() (Engine, error) { return openEngine(dir, dopt, ropt) }
}

// stopWorker ends the worker after its current image, giving it a few seconds to release the
// model.
func (a *App) stopWorker() {
	a.mu.Lock()
	a.closed = true
	a.mu.Unlock()
	close(a.kick)
	select {
	case <-a.workerOK:
	case <-time.After(5 * time.Second):
	}
}

// callbacks wires GLFW's events to the app's handlers, each guarded so a defect shows as a
// message instead of a crash.
func (a *App) callbacks() {
	w := a.win
	w.SetFramebufferSizeCallback(func(_ *glfw.Window, fw, fh int) {
		a.guard("resize", func() {
			a.fbW, a.fbH = fw, fh
			if err := a.surf.Resize(fw, fh); err != nil {
				a.fail(err)
			}
			a.dirty()
		})
	})
	w.SetContentScaleCallback(func(_ *glfw.Window, x, _ float32) {
		if a.opt.scale <= 0 && x > 0 {
			a.scale = x
			a.dirty()
		}
	})
	w.SetRefreshCallback(func(*glfw.Window) { a.needFrame = true })
	w.SetDropCallback(func(_ *glfw.Window, names []string) { a.guard("drop", func() { a.drop(names) }) })
	w.SetKeyCallback(func(_ *glfw.Window, k glfw.Key, _ int, act glfw.Action, mods glfw.ModifierKey) {
		a.guard("key", func() { a.onKey(k, act, mods) })
	})
	w.SetCharCallback(func(_ *glfw.Window, r rune) { a.guard("key", func() { a.onChar(r) }) })
	w.SetMouseButtonCallback(func(_ *glfw.Window, b glfw.MouseButton, act glfw.Action, mods glfw.ModifierKey) {
		a.guard("click", func() { a.onMouse(b, act, mods) })
	})
	w.SetCursorPosCallback(func(_ *glfw.Window, x, y float64) {
		a.guard("pointer", func() { a.onMove(a.toPixels(x, y)) })
	})
	w.SetScrollCallback(func(_ *glfw.Window, _, dy float64) { a.guard("scroll", func() { a.onScroll(dy) }) })
}

// toPixels converts GLFW's screen coordinates to framebuffer pixels.
func (a *App) toPixels(x, y float64) (float64, float64) {
	ww, wh := a.win.GetSize()
	if ww <= 0 || wh <= 0 {
		return x, y
	}
	return x * float64(a.fbW) / float64(ww), y * float64(a.fbH) / float64(wh)
}

// onKey handles a key press: the prompt's editing keys when a prompt is open, else the
// shortcuts (help lists them).
func (a *App) onKey(k glfw.Key, act glfw.Action, mods glfw.ModifierKey) {
	if act == glfw.Release {
		return
	}
	ctrl, shift := mods&glfw.ModControl != 0, mods&glfw.ModShift != 0
	if p := a.prompt; p != nil {
		switch {
		case k == glfw.KeyEnter || k == glfw.KeyKPEnter:
			a.prompt = nil
			p.accept(p.value)
		case k == glfw.KeyEscape:
			a.prompt = nil
		case k == glfw.KeyBackspace:
			if r := []rune(p.value); len(r) > 0 {
				p.value = string(r[:len(r)-1])
			}
		case k == glfw.KeyTab:
			p.value = complete(p.value)
		case ctrl && k == glfw.KeyV:
			p.value += pathFromClipboard(a.win.GetClipboardString())
		case ctrl && k == glfw.KeyU:
			p.value = ""
		default:
			return
		}
		a.dirty()
		return
	}
	if act == glfw.Repeat && !(k == glfw.KeyUp || k == glfw.KeyDown || k == glfw.KeyPageUp || k == glfw.KeyPageDown) {
		return
	}
	n := 0
	if a.doc.res != nil {
		n = len(a.doc.res.Lines)
	}
	switch {
	case k == glfw.KeyF1:
		a.help = !a.help
		a.dirty()
	case k == glfw.KeyEscape:
		switch {
		case a.help:
			a.help = false
		case a.errMsg != "":
			a.errMsg = ""
		default:
			a.selected = -1
		}
		a.dirty()
	case ctrl && k == glfw.KeyO:
		a.askOpen()
	case ctrl && k == glfw.KeyV:
		a.paste()
	case ctrl && shift && k == glfw.KeyC:
		a.copyLine()
	case ctrl && k == glfw.KeyC:
		a.copyAll()
	case ctrl && k == glfw.KeyS:
		a.askSave()
	case ctrl && k == glfw.KeyQ:
		a.quit = true
	case ctrl && k == glfw.KeyZ:
		a.uncrop()
	case k == glfw.KeyF6:
		a.capture()
	case (ctrl && k == glfw.KeyR) || k == glfw.KeyF5:
		a.errMsg = ""
		a.recognise()
	case k == glfw.KeyEnter || k == glfw.KeyKPEnter:
		a.copyLine()
	case k == glfw.KeyDown || k == glfw.KeyJ && !ctrl:
		a.selectLine(a.selected + 1)
	case k == glfw.KeyUp || k == glfw.KeyK && !ctrl:
		a.selectLine(max(0, a.selected-1))
	case k == glfw.KeyPageDown:
		a.selectLine(a.selected + 10)
	case k == glfw.KeyPageUp:
		a.selectLine(max(0, a.selected-10))
	case k == glfw.KeyHome:
		a.selectLine(0)
	case k == glfw.KeyEnd:
		a.selectLine(n - 1)
	case k == glfw.KeyKPAdd:
		a.zoomKey(1.25)
	case k == glfw.KeyKPSubtract:
		a.zoomKey(1 / 1.25)
	case k == glfw.KeyKP0:
		a.fit()
	}
}

// onChar handles typed characters: text for the prompt, else the keys that are characters on
// every layout (? + - 0).
func (a *App) onChar(r rune) {
	if a.prompt != nil {
		a.prompt.value += string(r)
		a.dirty()
		return
	}
	switch r {
	case '?':
		a.help = !a.help
		a.dirty()
	case '+', '=':
		a.zoomKey(1.25)
	case '-':
		a.zoomKey(1 / 1.25)
	case '0':
		a.fit()
	}
}

func (a *App) onMouse(b glfw.MouseButton, act glfw.Action, mods glfw.ModifierKey) {
	x, y := a.mouseX, a.mouseY
	pt := image.Pt(int(x), int(y))
	// A right-drag, or a Shift+drag, cuts out a region to read.
	if act == glfw.Release && a.regioning {
		a.regioning = false
		a.needFrame = true
		a.cropTo(a.region)
		return
	}
	regionDrag := b == glfw.MouseButtonRight || (b == glfw.MouseButtonLeft && mods&glfw.ModShift != 0)
	if act == glfw.Press && regionDrag && a.doc.img != nil && a.prompt == nil && !a.help && pt.In(a.lay.imageView) {
		a.regioning, a.region = true, [4]float64{x, y, x, y}
		return
	}
	if b != glfw.MouseButtonLeft {
		return
	}
	if act == glfw.Release {
		if a.dragging && !a.dragMoved && pt.In(a.lay.imageView) {
			if i := a.boxAt(x, y); i >= 0 {
				a.selectLine(i)
			}
		}
		a.dragging = false
		return
	}
	if a.help {
		a.help = false
		a.dirty()
		return
	}
	if a.prompt != nil {
		return
	}
	switch {
	case pt.In(a.lay.toolbar):
		for _, bt := range a.lay.buttons {
			if pt.In(bt.r) && bt.enabled(a) {
				bt.action(a)
				a.dirty()
			}
		}
	case pt.In(a.lay.textPanel):
		for _, r := range a.rows {
			if pt.In(r.r) {
				a.selected = r.line
				a.ensureRowVisible = true
				a.dirty()
			}
		}
	case pt.In(a.lay.imageView):
		a.dragging, a.dragMoved, a.dragX, a.dragY = true, false, x, y
	}
}

func (a *App) onMove(x, y float64) {
	oldHover := a.hoverButton()
	a.mouseX, a.mouseY = x, y
	if a.hoverButton() != oldHover {
		a.dirty()
	}
	if a.regioning {
		a.region[2], a.region[3] = x, y
		a.needFrame = true
		return
	}
	if !a.dragging {
		return
	}
	dx, dy := x-a.dragX, y-a.dragY
	if math.Abs(dx)+math.Abs(dy) > float64(a.px(3)) {
		a.dragMoved = true
	}
	if a.dragMoved && a.view.zoom > 1 {
		sc, _, _ := a.imageXform()
		a.view.cx -= dx / sc
		a.view.cy -= dy / sc
		a.clampView()
		a.dragX, a.dragY = x, y
		a.needFrame = true
	}
}

// hoverButton is the toolbar button under the pointer, or -1.
func (a *App) hoverButton() int {
	pt := image.Pt(int(a.mouseX), int(a.mouseY))
	for i, b := range a.lay.buttons {
		if pt.In(b.r) {
			return i
		}
	}
	return -1
}

func (a *App) onScroll(dy float64) {
	pt := image.Pt(int(a.mouseX), int(a.mouseY))
	switch {
	case pt.In(a.lay.imageView):
		a.zoomAt(math.Pow(1.15, dy), a.mouseX, a.mouseY)
	case pt.In(a.lay.textPanel):
		a.scroll -= int(dy * float64(a.px(48)))
		a.dirty()
	}
}

// initWindowSystem starts GLFW and sets the window hints. go-gl's Init only logs a platform
// error (such as a display that cannot be opened) and returns nil, after which every GLFW call
// panics with NotInitialized: that panic is turned back into the error it stands for.
func initWindowSystem() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("GLFW did not start: %v", r)
		}
	}()
	if err := glfw.Init(); err != nil {
		return err
	}
	glfw.WindowHint(glfw.ClientAPI, glfw.NoAPI)
	glfw.WindowHint(glfw.ScaleToMonitor, glfw.True)
	return nil
}

package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/image/font"

	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/runtime/ocr"
)

// The app's colours.
var (
	colBG        = rgb(0xE9, 0xEB, 0xEF) // the image view behind the image
	colPanel     = rgb(0xFF, 0xFF, 0xFF)
	colBar       = rgb(0xF8, 0xF9, 0xFA)
	colBorder    = rgb(0xD5, 0xD9, 0xDF)
	colText      = rgb(0x1F, 0x23, 0x28)
	colMuted     = rgb(0x6B, 0x72, 0x80)
	colButton    = rgb(0xF1, 0xF3, 0xF5)
	colAccent    = rgb(0x25, 0x63, 0xEB)
	colSelect    = rgb(0xF5, 0x9E, 0x0B)
	colSelectBG  = rgb(0xFF, 0xF4, 0xD6)
	colDoubt     = rgb(0xC0, 0x26, 0xD3) // a line the model doubts (see doubtful)
	colError     = rgb(0xB9, 0x1C, 0x1C)
	colErrorBG   = rgb(0xFE, 0xE2, 0xE2)
	colProgress  = rgb(0x25, 0x63, 0xEB)
	colTrack     = rgb(0xDB, 0xE1, 0xEA)
	colBackdrop  = color.RGBA{0x11, 0x14, 0x18, 0xA0}
	colCardTitle = rgb(0x11, 0x18, 0x27)
)

func rgb(r, g, b uint8) color.RGBA { return color.RGBA{r, g, b, 0xFF} }

// doubtLevel is the confidence (ocr.LineResult.Confidence) under which a line's box and text
// are drawn in colDoubt: on held-out lines, nine in ten lines under it are misread, and fewer
// than one in eighty lines read exactly fall under it.
const doubtLevel = 0.9

// doubtful says whether the model doubts line l (a confidence of 0 means none was computed).
func doubtful(l ocr.LineResult) bool { return l.Confidence > 0 && l.Confidence < doubtLevel }

// f4 is a colour as the GPU quads take it, with alpha a.
func f4(c color.RGBA, a float32) [4]float32 {
	return [4]float32{float32(c.R) / 255, float32(c.G) / 255, float32(c.B) / 255, a}
}

// layout is where the window's parts are, in framebuffer pixels.
type layout struct {
	W, H      int
	toolbar   image.Rectangle
	imageView image.Rectangle
	textPanel image.Rectangle
	status    image.Rectangle
	buttons   []button
}

// button is a toolbar button.
type button struct {
	r       image.Rectangle
	label   string
	tip     string
	action  func(*App)
	enabled func(*App) bool
}

// rowHit is where one recognised line's row is in the text panel (window pixels).
type rowHit struct {
	r    image.Rectangle
	line int
}

// px converts a size at 1× to framebuffer pixels.
func (a *App) px(v float32) int { return int(v*a.scale + 0.5) }

// font sizes at 1×.
const (
	sizeUI    = 14
	sizeText  = 16
	sizeSmall = 12
	sizeTitle = 15
	sizeBig   = 22
)

func (a *App) face(t Typeface, size float32) font.Face { return a.fonts.face(t, size*a.scale) }

func hasResult(a *App) bool { return a.doc.res != nil && len(a.doc.res.Lines) > 0 }

// computeLayout places the toolbar, image view, text panel, status bar and buttons.
func (a *App) computeLayout() {
	W, H := a.fbW, a.fbH
	l := layout{W: W, H: H}
	tb, st := a.px(44), a.px(30)
	tw := int(0.38 * float64(W))
	tw = max(tw, a.px(280))
	tw = min(tw, W-a.px(240))
	tw = max(tw, W/3)
	l.toolbar = image.Rect(0, 0, W, tb)
	l.status = image.Rect(0, H-st, W, H)
	l.textPanel = image.Rect(W-tw, tb, W, H-st)
	l.imageView = image.Rect(0, tb, W-tw, H-st)
	fc := a.face(Regular, sizeUI)
	x := a.px(12) + width(a.face(Bold, sizeTitle), "moegpu OCR") + a.px(16)
	always := func(*App) bool { return true }
	haveDoc := func(a *App) bool { return a.doc.img != nil }
	lineSel := func(a *App) bool { return hasResult(a) && a.selected >= 0 }
	for _, b := range []button{
		{label: "Open", tip: "Ctrl+O", action: (*App).askOpen, enabled: always},
		{label: "Paste", tip: "Ctrl+V", action: (*App).paste, enabled: always},
		{label: "Capture", tip: "F6", action: (*App).capture, enabled: func(*App) bool { return canCapture }},
		{label: "Copy all", tip: "Ctrl+C", action: (*App).copyAll, enabled: hasResult},
		{label: "Copy line", tip: "Ctrl+Shift+C", action: (*App).copyLine, enabled: lineSel},
		{label: "Save .txt", tip: "Ctrl+S", action: (*App).askSave, enabled: hasResult},
		{label: "−", tip: "-", action: func(a *App) { a.zoomKey(1 / 1.25) }, enabled: haveDoc},
		{label: "Fit", tip: "0", action: (*App).fit, enabled: haveDoc},
		{label: "+", tip: "+", action: func(a *App) { a.zoomKey(1.25) }, enabled: haveDoc},
		{label: "Help", tip: "F1", action: func(a *App) { a.help = !a.help; a.dirty() }, enabled: always},
	} {
		w := width(fc, b.label) + 2*a.px(12)
		if b.label == "−" || b.label == "+" {
			w = a.px(30)
		}
		if b.label == "−" || b.label == "Help" {
			x += a.px(10)
		}
		b.r = image.Rect(x, a.px(7), x+w, tb-a.px(7))
		x += w + a.px(6)
		l.buttons = append(l.buttons, b)
	}
	a.lay = l
}

// imageXform maps image pixels to window pixels: window = origin + scale·image.
func (a *App) imageXform() (sc, x0, y0 float64) {
	v := a.lay.imageView.Inset(a.px(16))
	if a.doc.w == 0 || v.Dx() <= 0 || v.Dy() <= 0 {
		return 1, 0, 0
	}
	fit := math.Min(float64(v.Dx())/float64(a.doc.w), float64(v.Dy())/float64(a.doc.h))
	sc = fit * a.view.zoom
	vcx, vcy := float64(v.Min.X+v.Max.X)/2, float64(v.Min.Y+v.Max.Y)/2
	return sc, vcx - a.view.cx*sc, vcy - a.view.cy*sc
}

// clampView keeps the view centre on the image, and the image centred when it fits.
func (a *App) clampView() {
	if a.view.zoom <= 1 {
		a.view.cx, a.view.cy = float64(a.doc.w)/2, float64(a.doc.h)/2
		return
	}
	a.view.cx = math.Max(0, math.Min(float64(a.doc.w), a.view.cx))
	a.view.cy = math.Max(0, math.Min(float64(a.doc.h), a.view.cy))
}

// zoomAt multiplies the zoom by f, keeping the image point under (mx, my) in place.
func (a *App) zoomAt(f, mx, my float64) {
	if a.doc.img == nil {
		return
	}
	sc, x0, y0 := a.imageXform()
	px, py := (mx-x0)/sc, (my-y0)/sc
	a.view.zoom = math.Max(0.25, math.Min(40, a.view.zoom*f))
	sc2, _, _ := a.imageXform()
	v := a.lay.imageView.Inset(a.px(16))
	vcx, vcy := float64(v.Min.X+v.Max.X)/2, float64(v.Min.Y+v.Max.Y)/2
	a.view.cx, a.view.cy = px-(mx-vcx)/sc2, py-(my-vcy)/sc2
	a.clampView()
	a.needFrame = true
	a.uiDirty = true // the status bar shows the zoom
}

// zoomKey zooms about the view's centre.
func (a *App) zoomKey(f float64) {
	v := a.lay.imageView
	a.zoomAt(f, float64(v.Min.X+v.Max.X)/2, float64(v.Min.Y+v.Max.Y)/2)
}

// fit shows the whole image.
func (a *App) fit() {
	a.view.zoom = 1
	a.clampView()
	a.dirty()
}

// boxAt is the line whose box is under window point (x, y), or -1.
func (a *App) boxAt(x, y float64) int {
	if !hasResult(a) {
		return -1
	}
	sc, x0, y0 := a.imageXform()
	px, py := (x-x0)/sc, (y-y0)/sc
	slack := float64(a.px(3)) / sc
	best, bestArea := -1, math.Inf(1)
	for i, l := range a.doc.res.Lines {
		b := l.Box
		if px >= float64(b.Min.X)-slack && px <= float64(b.Max.X)+slack && py >= float64(b.Min.Y)-slack && py <= float64(b.Max.Y)+slack {
			if ar := float64(b.Dx() * b.Dy()); ar < bestArea {
				best, bestArea = i, ar
			}
		}
	}
	return best
}

// draw renders a frame: the image and its boxes through the GPU, with the panels as textures.
func (a *App) draw() {
	if a.surf == nil || a.fbW == 0 || a.fbH == 0 {
		return
	}
	if a.doc.upload != nil {
		t, err := a.surf.NewTexture("image", a.doc.upload)
		a.doc.upload = nil
		if err != nil {
			a.fail(fmt.Errorf("show image: %w", err))
		} else {
			a.doc.tex = t
		}
	}
	if a.uiDirty {
		a.uiDirty = false
		a.renderPanels()
	}
	var q []gpu.Quad
	iv := a.lay.imageView
	if a.doc.tex != nil {
		sc, x0, y0 := a.imageXform()
		q = append(q, gpu.Quad{Tex: a.doc.tex, Color: gpu.White, Clip: iv,
			Dst: [4]float32{float32(x0), float32(y0), float32(x0 + sc*float64(a.doc.w)), float32(y0 + sc*float64(a.doc.h))}})
		if a.doc.res != nil {
			q = append(q, a.boxQuads(sc, x0, y0, iv)...)
		}
	}
	if a.regioning { // the region being dragged out
		r := a.region
		X0, Y0 := float32(math.Min(r[0], r[2])), float32(math.Min(r[1], r[3]))
		X1, Y1 := float32(math.Max(r[0], r[2])), float32(math.Max(r[1], r[3]))
		t, c := float32(a.px(2)), f4(colAccent, 1)
		q = append(q,
			gpu.Quad{Dst: [4]float32{X0, Y0, X1, Y1}, Color: f4(colAccent, 0.12), Clip: iv},
			gpu.Quad{Dst: [4]float32{X0, Y0, X1, Y0 + t}, Color: c, Clip: iv},
			gpu.Quad{Dst: [4]float32{X0, Y1 - t, X1, Y1}, Color: c, Clip: iv},
			gpu.Quad{Dst: [4]float32{X0, Y0, X0 + t, Y1}, Color: c, Clip: iv},
			gpu.Quad{Dst: [4]float32{X1 - t, Y0, X1, Y1}, Color: c, Clip: iv})
	}
	for _, name := range []string{"toolbar", "text", "status", "overlay"} {
		if t := a.tex[name]; t != nil && !a.hidden[name] {
			r := a.texAt[name]
			q = append(q, gpu.Quad{Tex: t, Color: gpu.White, Dst: [4]float32{float32(r.Min.X), float32(r.Min.Y), float32(r.Max.X), float32(r.Max.Y)}})
		}
	}
	err := a.surf.Draw(f4(colBG, 1), q)
	a.frames++
	a.needFrame = false
	if err != nil && a.drawErr == nil {
		a.drawErr = err
		a.fail(fmt.Errorf("drawing the window: %w", err))
	}
}

// boxQuads outlines every line's box, the selected one filled.
func (a *App) boxQuads(sc, x0, y0 float64, clip image.Rectangle) []gpu.Quad {
	var q []gpu.Quad
	t := float32(math.Max(1, math.Round(1.5*float64(a.scale))))
	for i, l := range a.doc.res.Lines {
		b := l.Box
		X0, Y0 := float32(x0+sc*float64(b.Min.X)), float32(y0+sc*float64(b.Min.Y))
		X1, Y1 := float32(x0+sc*float64(b.Max.X)), float32(y0+sc*float64(b.Max.Y))
		// Outline just outside the box, so the ink stays visible.
		X0, Y0, X1, Y1 = X0-t, Y0-t, X1+t, Y1+t
		c, w := f4(colAccent, 0.85), t
		if doubtful(l) {
			c = f4(colDoubt, 0.85)
		}
		if i == a.selected {
			c, w = f4(colSelect, 1), 2*t
			q = append(q, gpu.Quad{Dst: [4]float32{X0, Y0, X1, Y1}, Color: f4(colSelect, 0.18), Clip: clip})
		}
		q = append(q,
			gpu.Quad{Dst: [4]float32{X0 - w, Y0 - w, X1 + w, Y0}, Color: c, Clip: clip},
			gpu.Quad{Dst: [4]float32{X0 - w, Y1, X1 + w, Y1 + w}, Color: c, Clip: clip},
			gpu.Quad{Dst: [4]float32{X0 - w, Y0, X0, Y1}, Color: c, Clip: clip},
			gpu.Quad{Dst: [4]float32{X1, Y0, X1 + w, Y1}, Color: c, Clip: clip},
		)
	}
	return q
}

// upload puts a panel image into the named texture (made anew when its size changed) to be
// drawn at r.
func (a *App) upload(name string, img *image.RGBA, r image.Rectangle) {
	t := a.tex[name]
	if t != nil && (t.W != img.Bounds().Dx() || t.H != img.Bounds().Dy()) {
		t.Release()
		t = nil
	}
	var err error
	if t == nil {
		t, err = a.surf.NewTexture(name, img)
	} else {
		err = t.Write(img)
	}
	if err != nil {
		delete(a.tex, name)
		a.fail(fmt.Errorf("panel %s: %w", name, err))
		return
	}
	a.tex[name] = t
	a.texAt[name] = r
	a.hidden[name] = false
}

// renderPanels draws the toolbar, text panel, status bar and overlay into images and uploads
// them.
func (a *App) renderPanels() {
	a.computeLayout()
	a.upload("toolbar", a.renderToolbar(), a.lay.toolbar)
	a.upload("text", a.renderText(), a.lay.textPanel)
	a.upload("status", a.renderStatus(), a.lay.status)
	if ov := a.renderOverlay(); ov != nil {
		a.upload("overlay", ov, image.Rect(0, 0, a.fbW, a.fbH))
	} else {
		a.hidden["overlay"] = true
	}
}

func fill(dst draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(dst, r, image.NewUniform(c), image.Point{}, draw.Over)
}

func canvas(r image.Rectangle, c color.Color) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, max(1, r.Dx()), max(1, r.Dy())))
	if c != nil {
		draw.Draw(img, img.Bounds(), image.NewUniform(c), image.Point{}, draw.Src)
	}
	return img
}

func (a *App) renderToolbar() *image.RGBA {
	l := a.lay
	img := canvas(l.toolbar, colPanel)
	fill(img, image.Rect(0, l.toolbar.Dy()-a.px(1), l.W, l.toolbar.Dy()), colBorder)
	title := a.face(Bold, sizeTitle)
	text(img, title, a.px(12), (l.toolbar.Dy()-lineHeight(title))/2+a.px(1), colCardTitle, "moegpu OCR")
	fc := a.face(Regular, sizeUI)
	end := a.px(12)
	for _, b := range l.buttons {
		on := b.enabled(a)
		bg, fg := colButton, colText
		if !on {
			fg = colMuted
		}
		if on && image.Pt(int(a.mouseX), int(a.mouseY)).In(b.r) {
			bg = rgb(0xE4, 0xE8, 0xEE)
		}
		fill(img, b.r, colBorder)
		fill(img, b.r.Inset(a.px(1)), bg)
		tw := width(fc, b.label)
		text(img, fc, b.r.Min.X+(b.r.Dx()-tw)/2, b.r.Min.Y+(b.r.Dy()-lineHeight(fc))/2+a.px(1), fg, b.label)
		end = b.r.Max.X
	}
	if a.doc.img != nil {
		name := fmt.Sprintf("%s · %d×%d · %.0f%%", a.doc.name, a.doc.w, a.doc.h, 100*a.zoomPercent())
		room := l.W - end - a.px(28)
		if room > a.px(60) {
			s := ellipsize(fc, name, room)
			text(img, fc, l.W-a.px(14)-width(fc, s), (l.toolbar.Dy()-lineHeight(fc))/2+a.px(1), colMuted, s)
		}
	}
	return img
}

// zoomPercent is the image's scale on screen (1 = one image pixel per framebuffer pixel).
func (a *App) zoomPercent() float64 {
	sc, _, _ := a.imageXform()
	return sc
}

func (a *App) renderText() *image.RGBA {
	r := a.lay.textPanel
	img := canvas(r, colPanel)
	fill(img, image.Rect(0, 0, a.px(1), r.Dy()), colBorder)
	pad := a.px(14)
	head := a.face(Bold, sizeTitle)
	small := a.face(Regular, sizeSmall)
	hh := a.px(40)
	text(img, head, pad, (hh-lineHeight(head))/2, colCardTitle, "Text")
	if res := a.doc.res; res != nil {
		s := fmt.Sprintf("%d lines · %.0f ms", len(res.Lines), res.PrepareMs+res.DecodeMs)
		text(img, small, r.Dx()-pad-width(small, s), (hh-lineHeight(small))/2+a.px(1), colMuted, s)
	}
	fill(img, image.Rect(a.px(1), hh-a.px(1), r.Dx(), hh), colBorder)
	body := image.Rect(0, hh, r.Dx(), r.Dy())
	a.rows = a.rows[:0]
	fc := a.face(Regular, sizeText)
	msg := func(c color.RGBA, s string) {
		y := hh + pad
		for _, l := range wrap(fc, s, r.Dx()-2*pad) {
			text(img, fc, pad, y, c, l)
			y += lineHeight(fc)
		}
	}
	switch {
	case a.doc.img == nil && a.engineState == engineFailed:
		msg(colError, a.modelErr.Error())
	case a.doc.img == nil:
		msg(colMuted, "The recognised text appears here, one row per line. Click a row or a box to select it.")
	case a.doc.err != nil:
		msg(colError, a.doc.err.Error())
	case a.doc.busy && a.engineState == engineLoading:
		msg(colMuted, "Loading the OCR model…")
	case a.doc.busy:
		msg(colMuted, fmt.Sprintf("Reading… %s", a.progressText()))
	case a.doc.res != nil && len(a.doc.res.Lines) == 0:
		msg(colMuted, "No text found in this image.")
	case a.doc.res != nil:
		a.renderRows(img, body, pad)
	}
	return img
}

// renderRows lays out one row per recognised line (number, wrapped text, time) and draws the
// visible ones, scrolled.
func (a *App) renderRows(img *image.RGBA, body image.Rectangle, pad int) {
	fc := a.face(Regular, sizeText)
	small := a.face(Regular, sizeSmall)
	lines := a.doc.res.Lines
	numW := width(small, fmt.Sprint(len(lines))) + a.px(10)
	timeW := width(small, "000.0 ms") + a.px(8)
	textX := pad + numW
	textW := body.Dx() - textX - timeW - pad
	lh := lineHeight(fc)
	type row struct {
		y, h  int
		parts []string
	}
	rows := make([]row, len(lines))
	y := 0
	for i, l := range lines {
		t := l.Text
		if t == "" {
			t = "∅"
		}
		rows[i] = row{y: y, parts: wrap(fc, t, textW)}
		rows[i].h = len(rows[i].parts)*lh + 2*a.px(7)
		y += rows[i].h
	}
	total := y
	if a.ensureRowVisible && a.selected >= 0 && a.selected < len(rows) {
		a.ensureRowVisible = false
		s := rows[a.selected]
		if s.y < a.scroll {
			a.scroll = s.y
		} else if s.y+s.h > a.scroll+body.Dy() {
			a.scroll = s.y + s.h - body.Dy()
		}
	}
	a.scroll = max(0, min(a.scroll, total-body.Dy()))
	sub := img.SubImage(body).(*image.RGBA)
	for i, rw := range rows {
		top := body.Min.Y + rw.y - a.scroll
		if top+rw.h < body.Min.Y || top > body.Max.Y {
			continue
		}
		rr := image.Rect(a.px(1), top, body.Max.X, top+rw.h)
		if i == a.selected {
			fill(sub, rr, colSelectBG)
			fill(sub, image.Rect(a.px(1), top, a.px(4), top+rw.h), colSelect)
		} else if i > 0 {
			fill(sub, image.Rect(pad, top, body.Max.X-pad, top+a.px(1)), rgb(0xEE, 0xF0, 0xF3))
		}
		ty := top + a.px(7)
		num := fmt.Sprint(i + 1)
		text(sub, small, pad+numW-a.px(10)-width(small, num), ty+(lh-lineHeight(small))/2+a.px(1), colMuted, num)
		col := colText
		if doubtful(lines[i]) {
			col = colDoubt
		}
		for k, p := range rw.parts {
			text(sub, fc, textX, ty+k*lh, col, p)
		}
		ms := fmt.Sprintf("%.1f ms", lines[i].Ms)
		text(sub, small, body.Max.X-pad-width(small, ms), ty+(lh-lineHeight(small))/2+a.px(1), colMuted, ms)
		a.rows = append(a.rows, rowHit{r: rr.Intersect(body).Add(a.lay.textPanel.Min), line: i})
	}
	if total > body.Dy() { // a scroll indicator
		h := max(a.px(24), body.Dy()*body.Dy()/total)
		y := body.Min.Y + (body.Dy()-h)*a.scroll/max(1, total-body.Dy())
		fill(img, image.Rect(body.Max.X-a.px(5), y, body.Max.X-a.px(2), y+h), rgb(0xC4, 0xC9, 0xD1))
	}
}

func (a *App) progressText() string {
	el := time.Since(a.doc.started).Seconds()
	if a.doc.total == 0 {
		return fmt.Sprintf("%.1f s", el)
	}
	return fmt.Sprintf("%d/%d segments · %.1f s", a.doc.done, a.doc.total, el)
}

func (a *App) renderStatus() *image.RGBA {
	r := a.lay.status
	img := canvas(r, colBar)
	fill(img, image.Rect(0, 0, r.Dx(), a.px(1)), colBorder)
	fc := a.face(Regular, sizeSmall)
	pad := a.px(12)
	ty := (r.Dy() - lineHeight(fc)) / 2
	// Right: the adapter.
	right := "F1 help"
	switch a.engineState {
	case engineLoading:
		right = "loading model… · " + right
	case engineReady:
		right = "OCR on " + a.adapter + " · " + right
	case engineFailed:
		right = "no model · " + right
	}
	if a.dev != nil {
		right = right + " · window: " + string(a.dev.Info.Backend)
	}
	right = ellipsize(fc, right, r.Dx()/2)
	rw := width(fc, right)
	text(img, fc, r.Dx()-pad-rw, ty, colMuted, right)
	x := pad
	left := ""
	col := colText
	switch {
	case a.notice != "" && time.Since(a.noticeAt) < 4*time.Second:
		left = a.notice
	case a.doc.busy && a.engineState == engineLoading:
		left = "Loading the OCR model…"
	case a.doc.busy:
		// A progress bar, then the count.
		bw := a.px(160)
		bh := a.px(6)
		by := (r.Dy() - bh) / 2
		fill(img, image.Rect(x, by, x+bw, by+bh), colTrack)
		frac := 0.0
		if a.doc.total > 0 {
			frac = float64(a.doc.done) / float64(a.doc.total)
		} else { // before the first batch: a moving block
			ph := math.Mod(time.Since(a.doc.started).Seconds(), 1.5) / 1.5
			x0 := x + int(ph*float64(bw-bw/4))
			fill(img, image.Rect(x0, by, x0+bw/4, by+bh), colProgress)
		}
		fill(img, image.Rect(x, by, x+int(frac*float64(bw)), by+bh), colProgress)
		x += bw + pad
		left = "Reading " + a.progressText()
	case a.doc.err != nil:
		left, col = "Failed: "+a.doc.err.Error(), colError
	case a.doc.res != nil:
		res := a.doc.res
		n := max(1, len(res.Lines))
		left = fmt.Sprintf("%d lines · prepare %.0f ms · decode %.0f ms (%.1f ms/line) · wall %.2f s",
			len(res.Lines), res.PrepareMs, res.DecodeMs, res.DecodeMs/float64(n), a.doc.took.Seconds())
	case a.engineState == engineFailed:
		left, col = "The OCR model could not be loaded (see the message)", colError
	default:
		left = "Ready"
	}
	text(img, fc, x, ty, col, ellipsize(fc, left, r.Dx()-x-rw-3*pad))
	return img
}

// renderOverlay draws what lies over everything: the empty-window hint, the error banner,
// the path prompt and the help card. Nil when there is none of them.
func (a *App) renderOverlay() *image.RGBA {
	if a.doc.img != nil && a.errMsg == "" && !a.help && a.prompt == nil && !(a.engineState == engineFailed) {
		return nil
	}
	img := image.NewRGBA(image.Rect(0, 0, a.fbW, a.fbH))
	iv := a.lay.imageView
	if a.doc.img == nil {
		big, fc := a.face(Bold, sizeBig), a.face(Regular, sizeUI+1)
		lines := []struct {
			f font.Face
			s string
		}{{big, "Drop an image here"}, {fc, "or paste one (Ctrl+V), or open a file (Ctrl+O)"}, {fc, "F1 lists every shortcut"}}
		y := (iv.Min.Y+iv.Max.Y)/2 - a.px(40)
		for _, l := range lines {
			text(img, l.f, (iv.Min.X+iv.Max.X-width(l.f, l.s))/2, y, colMuted, l.s)
			y += lineHeight(l.f) + a.px(6)
		}
	}
	banner := a.errMsg
	if banner == "" && a.engineState == engineFailed && a.modelErr != nil {
		banner = a.modelErr.Error()
	}
	if banner != "" {
		fc := a.face(Regular, sizeUI)
		pad := a.px(12)
		w := iv.Dx() - 2*a.px(16)
		parts := wrap(fc, banner, w-2*pad)
		if len(parts) > 6 {
			parts = append(parts[:5], "…")
		}
		h := len(parts)*lineHeight(fc) + 2*pad + lineHeight(a.face(Regular, sizeSmall))
		r := image.Rect(iv.Min.X+a.px(16), iv.Min.Y+a.px(12), iv.Min.X+a.px(16)+w, iv.Min.Y+a.px(12)+h)
		fill(img, r, colError)
		fill(img, r.Inset(a.px(1)), colErrorBG)
		for i, p := range parts {
			text(img, fc, r.Min.X+pad, r.Min.Y+pad+i*lineHeight(fc), colError, p)
		}
		if a.errMsg != "" {
			sm := a.face(Regular, sizeSmall)
			text(img, sm, r.Min.X+pad, r.Max.Y-pad-lineHeight(sm)+a.px(4), colMuted, "Esc dismisses")
		}
	}
	if a.prompt != nil {
		a.renderPrompt(img)
	}
	if a.help {
		a.renderHelp(img)
	}
	return img
}

// card draws a centred white card of w × h over a dimmed window and returns its rectangle.
func (a *App) card(img *image.RGBA, w, h, top int) image.Rectangle {
	fill(img, img.Bounds(), colBackdrop)
	w, h = min(w, a.fbW-2*a.px(12)), min(h, a.fbH-2*a.px(12))
	x := (a.fbW - w) / 2
	y := top
	if y < 0 {
		y = (a.fbH - h) / 2
	}
	r := image.Rect(x, y, x+w, y+h)
	fill(img, r.Inset(-a.px(1)), colBorder)
	fill(img, r, colPanel)
	return r
}

// helpKeys lists the shortcuts the help card shows.
var helpKeys = [][2]string{
	{"Ctrl+O", "open an image file (a path prompt with Tab completion)"},
	{"drag & drop", "drop an image file on the window to open it"},
	{"Ctrl+V", "paste an image from the clipboard (or a copied file path)"},
	{"F6", "capture the screen (X11): the window steps aside for it"},
	{"Shift+drag, right-drag", "read only that region of the image; Ctrl+Z: whole image"},
	{"Ctrl+C", "copy all the text"},
	{"Ctrl+Shift+C, Enter", "copy the selected line"},
	{"Ctrl+S", "save the text as .txt"},
	{"↑ ↓  Home End", "select a line (its box and its text light up)"},
	{"purple", "a line the model doubts (confidence under 0.9): check it"},
	{"click", "select the line under a box or text row"},
	{"+ −  0, wheel", "zoom in, out, fit; the wheel zooms at the pointer"},
	{"drag", "pan the zoomed image"},
	{"F5, Ctrl+R", "read the image again"},
	{"F1, ?", "this help"},
	{"Esc", "close help, a prompt or a message"},
	{"Ctrl+Q", "quit"},
}

func (a *App) renderHelp(img *image.RGBA) {
	key, fc, head := a.face(Mono, sizeUI), a.face(Regular, sizeUI), a.face(Bold, sizeBig)
	kw := 0
	for _, k := range helpKeys {
		kw = max(kw, width(key, k[0]))
	}
	dw := 0
	for _, k := range helpKeys {
		dw = max(dw, width(fc, k[1]))
	}
	pad := a.px(22)
	lh := lineHeight(fc) + a.px(6)
	r := a.card(img, kw+dw+3*pad, len(helpKeys)*lh+3*pad+lineHeight(head)+a.px(20), -1)
	text(img, head, r.Min.X+pad, r.Min.Y+pad, colCardTitle, "Keyboard shortcuts")
	y := r.Min.Y + pad + lineHeight(head) + a.px(14)
	for _, k := range helpKeys {
		text(img, key, r.Min.X+pad, y, colAccent, k[0])
		text(img, fc, r.Min.X+2*pad+kw, y, colText, k[1])
		y += lh
	}
	sm := a.face(Regular, sizeSmall)
	text(img, sm, r.Min.X+pad, r.Max.Y-pad, colMuted, "Esc or F1 closes this card")
}

func (a *App) renderPrompt(img *image.RGBA) {
	p := a.prompt
	head, mono, sm := a.face(Bold, sizeTitle), a.face(Mono, sizeUI), a.face(Regular, sizeSmall)
	pad := a.px(18)
	comps := completions(p.value, 8)
	lh := lineHeight(mono)
	h := 2*pad + lineHeight(head) + a.px(10) + lh + a.px(16) + lineHeight(sm) + a.px(8) + len(comps)*lh
	r := a.card(img, a.px(640), h, a.lay.toolbar.Max.Y+a.px(30))
	text(img, head, r.Min.X+pad, r.Min.Y+pad, colCardTitle, p.title)
	y := r.Min.Y + pad + lineHeight(head) + a.px(10)
	in := image.Rect(r.Min.X+pad, y-a.px(6), r.Max.X-pad, y+lh+a.px(6))
	fill(img, in, colAccent)
	fill(img, in.Inset(a.px(1)), colPanel)
	shown := p.value
	room := in.Dx() - 2*a.px(8) - a.px(4)
	for width(mono, shown) > room && len([]rune(shown)) > 1 { // keep the end (the cursor) in view
		shown = string([]rune(shown)[1:])
	}
	cx := in.Min.X + a.px(8) + text(img, mono, in.Min.X+a.px(8), y, colText, shown)
	fill(img, image.Rect(cx+a.px(1), y, cx+a.px(3), y+lh), colAccent) // the cursor
	y += lh + a.px(16)
	text(img, sm, r.Min.X+pad, y, colMuted, p.hint)
	y += lineHeight(sm) + a.px(8)
	for _, c := range comps {
		text(img, mono, r.Min.X+pad, y, colMuted, ellipsize(mono, c, r.Dx()-2*pad))
		y += lh
	}
}

// completions lists up to n entries of the directory a partial path points into that start
// with its last element (directories end in "/"), sorted.
func completions(partial string, n int) []string {
	p := expandHome(partial)
	dir, base := filepath.Split(p)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, base) || (strings.HasPrefix(name, ".") && !strings.HasPrefix(base, ".")) {
			continue
		}
		if e.IsDir() {
			name += "/"
		}
		out = append(out, name)
	}
	sort.Strings(out)
	if len(out) > n {
		out = append(out[:n-1], fmt.Sprintf("… %d more", len(out)-n+1))
	}
	return out
}

// complete extends a partial path by the longest prefix its completions share.
func complete(partial string) string {
	p := expandHome(partial)
	dir, base := filepath.Split(p)
	d := dir
	if d == "" {
		d = "."
	}
	ents, err := os.ReadDir(d)
	if err != nil {
		return partial
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), base) {
			n := e.Name()
			if e.IsDir() {
				n += "/"
			}
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return partial
	}
	pre := names[0]
	for _, n := range names[1:] {
		for !strings.HasPrefix(n, pre) {
			pre = pre[:len(pre)-1]
		}
	}
	return dir + pre
}

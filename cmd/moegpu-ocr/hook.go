package main

// The debug hook: `--script FILE` runs commands inside the event loop, through the same
// handlers GLFW's callbacks call, so a test (or a bug report) can drive the real window and
// read its state back as JSON. One command per line, # starts a comment:
//
//	wait [SECONDS]        until nothing is loading or being read (default limit 600 s)
//	sleep SECONDS         let the loop run
//	open PATH             as Enter in the Ctrl+O prompt
//	drop PATH...          as a drop of those files on the window
//	paste                 as Ctrl+V
//	key SPEC              a key press, e.g. ctrl+c, ctrl+shift+c, f1, down, escape, enter
//	type TEXT             typed characters (the prompt takes them)
//	click X Y             a left click at framebuffer pixel (X, Y)
//	scroll X Y DY         the wheel at (X, Y)
//	drag X0 Y0 X1 Y1      a right-drag (cuts out a region to read)
//	dragimg X0 Y0 X1 Y1   the same with the corners in image pixels
//	capture               as F6 (capture the screen), finished when the image is shown
//	select N              select line N (1-based)
//	state PATH            write the app's state as JSON
//	screenshot PATH       draw, then read the window back from the X server into a PNG
//	hold PATH [SECONDS]   keep the loop running until PATH exists (to let a test read the
//	                      clipboard while the window still owns it)
//	quit [CODE]           close the window; the process exits with CODE (default 0)
//
// A command that fails (a wait that times out, a file that cannot be written) ends the app
// with exit code 3 after printing why.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"image/png"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-gl/glfw/v3.3/glfw"

	"github.com/moegpu/moegpu/internal/atomicfile"
	"github.com/moegpu/moegpu/runtime/ocr"
)

// script is a loaded command list and where it is in it.
type script struct {
	cmds  [][]string
	pc    int
	since time.Time // when the current command started
	phase int       // a multi-step command's progress
}

func loadScript(path string) (*script, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("script: %w", err)
	}
	defer f.Close()
	s := &script{since: time.Now()}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		s.cmds = append(s.cmds, strings.Fields(l))
	}
	return s, sc.Err()
}

// step runs commands until one has to wait for the loop; it returns the func guard runs.
func (s *script) step(a *App) func() {
	return func() {
		for s.pc < len(s.cmds) && !a.quit {
			done, err := s.run(a, s.cmds[s.pc])
			if err != nil {
				fmt.Fprintf(os.Stderr, "moegpu-ocr: script line %q: %v\n", strings.Join(s.cmds[s.pc], " "), err)
				a.quit, a.exit = true, 3
				return
			}
			if !done {
				return
			}
			s.pc++
			s.since, s.phase = time.Now(), 0
		}
		if s.pc >= len(s.cmds) {
			a.script = nil
		}
	}
}

func seconds(args []string, i int, def float64) float64 {
	if i < len(args) {
		if v, err := strconv.ParseFloat(args[i], 64); err == nil {
			return v
		}
	}
	return def
}

func (s *script) run(a *App, c []string) (bool, error) {
	arg := func(i int) string {
		if i < len(c) {
			return c[i]
		}
		return ""
	}
	rest := strings.TrimSpace(strings.TrimPrefix(strings.Join(c, " "), c[0]))
	switch c[0] {
	case "wait":
		idle := !a.doc.busy && a.engineState != engineLoading && a.loads == 0 && !a.needFrame
		a.mu.Lock()
		idle = idle && len(a.inbox) == 0
		a.mu.Unlock()
		if idle {
			return true, nil
		}
		if time.Since(s.since).Seconds() > seconds(c, 1, 600) {
			return false, fmt.Errorf("still busy after %s s", arg(1))
		}
		return false, nil
	case "sleep":
		return time.Since(s.since).Seconds() >= seconds(c, 1, 1), nil
	case "open":
		a.openPath(rest)
	case "drop":
		a.drop(c[1:])
	case "paste":
		a.paste()
	case "key":
		k, mods, err := parseKey(arg(1))
		if err != nil {
			return false, err
		}
		a.onKey(k, glfw.Press, mods)
	case "type":
		for _, r := range rest {
			a.onChar(r)
		}
	case "click", "scroll":
		x, y := seconds(c, 1, 0), seconds(c, 2, 0)
		a.onMove(x, y)
		if c[0] == "scroll" {
			a.onScroll(seconds(c, 3, 1))
		} else {
			a.onMouse(glfw.MouseButtonLeft, glfw.Press, 0)
			a.onMouse(glfw.MouseButtonLeft, glfw.Release, 0)
		}
	case "drag":
		a.onMove(seconds(c, 1, 0), seconds(c, 2, 0))
		a.onMouse(glfw.MouseButtonRight, glfw.Press, 0)
		a.onMove(seconds(c, 3, 0), seconds(c, 4, 0))
		a.onMouse(glfw.MouseButtonRight, glfw.Release, 0)
	case "dragimg": // drag, with the corners in image pixels (clamped to the image by the crop)
		sc, x0, y0 := a.imageXform()
		a.onMove(x0+sc*seconds(c, 1, 0), y0+sc*seconds(c, 2, 0))
		a.onMouse(glfw.MouseButtonRight, glfw.Press, 0)
		a.onMove(x0+sc*seconds(c, 3, 0), y0+sc*seconds(c, 4, 0))
		a.onMouse(glfw.MouseButtonRight, glfw.Release, 0)
	case "capture":
		if s.phase == 0 {
			a.capture()
			s.phase = 1
		}
		return a.captureAt.IsZero(), nil
	case "select":
		n, err := strconv.Atoi(arg(1))
		if err != nil {
			return false, fmt.Errorf("select N: %w", err)
		}
		a.selectLine(n - 1)
	case "state":
		b, err := json.MarshalIndent(a.state(), "", "  ")
		if err != nil {
			return false, err
		}
		return true, atomicfile.Write(arg(1), append(b, '\n'))
	case "screenshot":
		// Draw, let the presentation reach the X server, draw again, then read it back.
		if s.phase == 0 {
			a.dirty()
			s.phase = 1
			return false, nil
		}
		if time.Since(s.since) < 400*time.Millisecond {
			return false, nil
		}
		a.draw()
		if err := a.dev.Wait(); err != nil {
			return false, err
		}
		time.Sleep(100 * time.Millisecond)
		img, err := grabWindow(a.win)
		if err != nil {
			return false, err
		}
		f, err := os.Create(arg(1))
		if err != nil {
			return false, err
		}
		if err := png.Encode(f, img); err != nil {
			f.Close()
			return false, err
		}
		return true, f.Close()
	case "hold":
		if _, err := os.Stat(arg(1)); err == nil {
			return true, nil
		}
		if time.Since(s.since).Seconds() > seconds(c, 2, 60) {
			return false, fmt.Errorf("%s did not appear", arg(1))
		}
		return false, nil
	case "quit":
		a.quit = true
		a.exit = int(seconds(c, 1, 0))
	default:
		return false, fmt.Errorf("unknown command %q", c[0])
	}
	return true, nil
}

// parseKey reads "ctrl+shift+c", "f1", "down", "escape".
func parseKey(spec string) (glfw.Key, glfw.ModifierKey, error) {
	var mods glfw.ModifierKey
	parts := strings.Split(strings.ToLower(spec), "+")
	for _, m := range parts[:len(parts)-1] {
		switch m {
		case "ctrl", "control":
			mods |= glfw.ModControl
		case "shift":
			mods |= glfw.ModShift
		case "alt":
			mods |= glfw.ModAlt
		default:
			return 0, 0, fmt.Errorf("key %q: unknown modifier %q", spec, m)
		}
	}
	name := parts[len(parts)-1]
	named := map[string]glfw.Key{
		"escape": glfw.KeyEscape, "esc": glfw.KeyEscape, "enter": glfw.KeyEnter, "tab": glfw.KeyTab,
		"backspace": glfw.KeyBackspace, "up": glfw.KeyUp, "down": glfw.KeyDown, "home": glfw.KeyHome,
		"end": glfw.KeyEnd, "pageup": glfw.KeyPageUp, "pagedown": glfw.KeyPageDown,
		"f1": glfw.KeyF1, "f5": glfw.KeyF5, "kpadd": glfw.KeyKPAdd, "kpsubtract": glfw.KeyKPSubtract,
	}
	if k, ok := named[name]; ok {
		return k, mods, nil
	}
	if len(name) == 1 && name[0] >= 'a' && name[0] <= 'z' {
		return glfw.KeyA + glfw.Key(name[0]-'a'), mods, nil
	}
	return 0, 0, fmt.Errorf("key %q: unknown key %q", spec, name)
}

// appState is what `state PATH` writes.
type appState struct {
	Image         string           `json:"image"` // the document's name ("" when none)
	Path          string           `json:"path"`  // its file ("" when pasted)
	Width         int              `json:"width"`
	Height        int              `json:"height"`
	Busy          bool             `json:"busy"`
	Engine        string           `json:"engine"` // loading, ready or failed
	Adapter       string           `json:"adapter"`
	ModelError    string           `json:"model_error,omitempty"`
	Error         string           `json:"error,omitempty"` // the message banner
	DocError      string           `json:"doc_error,omitempty"`
	Lines         []ocr.LineResult `json:"lines"`
	Text          string           `json:"text"`
	PrepareMs     float64          `json:"prepare_ms"`
	DecodeMs      float64          `json:"decode_ms"`
	Selected      int              `json:"selected"` // 0-based, -1 when none
	Zoom          float64          `json:"zoom"`
	Scale         float32          `json:"scale"`
	Framebuffer   [2]int           `json:"framebuffer"`
	ImageView     [4]int           `json:"image_view"` // x0, y0, x1, y1 in framebuffer pixels
	TextPanel     [4]int           `json:"text_panel"`
	Help          bool             `json:"help"`
	Prompt        string           `json:"prompt,omitempty"`
	Copied        string           `json:"copied"`
	Frames        int              `json:"frames"`
	WindowAdapter string           `json:"window_adapter"`
	SurfaceFormat string           `json:"surface_format"`
}

func (a *App) state() appState {
	st := appState{Image: a.doc.name, Path: a.doc.path, Width: a.doc.w, Height: a.doc.h, Busy: a.doc.busy,
		Adapter: a.adapter, Error: a.errMsg, Selected: a.selected, Zoom: a.view.zoom, Scale: a.scale,
		Framebuffer: [2]int{a.fbW, a.fbH}, Help: a.help, Copied: a.copied, Frames: a.frames,
		WindowAdapter: a.dev.Info.Label(), SurfaceFormat: a.surf.Format(), Lines: []ocr.LineResult{}}
	st.Engine = [...]string{"loading", "ready", "failed"}[a.engineState]
	if a.modelErr != nil {
		st.ModelError = a.modelErr.Error()
	}
	if a.doc.err != nil {
		st.DocError = a.doc.err.Error()
	}
	if r := a.doc.res; r != nil {
		st.Lines, st.Text, st.PrepareMs, st.DecodeMs = r.Lines, r.Text(), r.PrepareMs, r.DecodeMs
	}
	iv, tp := a.lay.imageView, a.lay.textPanel
	st.ImageView = [4]int{iv.Min.X, iv.Min.Y, iv.Max.X, iv.Max.Y}
	st.TextPanel = [4]int{tp.Min.X, tp.Min.Y, tp.Max.X, tp.Max.Y}
	if a.prompt != nil {
		st.Prompt = a.prompt.title + ": " + a.prompt.value
	}
	return st
}

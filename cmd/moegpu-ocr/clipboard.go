package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/moegpu/moegpu/runtime/ocrimage"
)

// GLFW reads only text from the clipboard. Images come through the desktop's clipboard tool:
// xclip on X11, wl-paste on Wayland (whichever is installed; scripts/setup.sh installs xclip).

// errNoClipboardImage: the clipboard holds no image (it may hold text).
var errNoClipboardImage = errors.New("the clipboard holds no image")

// imageTypes are the clipboard formats the app takes, best first.
var imageTypes = []string{"image/png", "image/bmp", "image/jpeg", "image/gif", "image/tiff", "image/webp"}

// clipboardImage reads an image from the clipboard. Call it off the UI thread.
func clipboardImage() (image.Image, error) {
	var list, get func(typ string) *exec.Cmd
	switch {
	case os.Getenv("WAYLAND_DISPLAY") != "" && has("wl-paste"):
		list = func(string) *exec.Cmd { return exec.Command("wl-paste", "--list-types") }
		get = func(t string) *exec.Cmd { return exec.Command("wl-paste", "--no-newline", "--type", t) }
	case os.Getenv("DISPLAY") != "" && has("xclip"):
		list = func(string) *exec.Cmd { return exec.Command("xclip", "-selection", "clipboard", "-t", "TARGETS", "-o") }
		get = func(t string) *exec.Cmd { return exec.Command("xclip", "-selection", "clipboard", "-t", t, "-o") }
	default:
		return nil, fmt.Errorf("%w that the app can read: pasting images needs xclip on X11 (apt-get install xclip) or wl-paste on Wayland", errNoClipboardImage)
	}
	out, err := runFor(list(""), 3*time.Second)
	if err != nil {
		return nil, errNoClipboardImage // an empty clipboard makes xclip fail
	}
	have := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		have[l] = true
	}
	for _, t := range imageTypes {
		if !have[t] {
			continue
		}
		data, err := runFor(get(t), 10*time.Second)
		if err != nil {
			return nil, fmt.Errorf("paste: reading the clipboard's %s: %w", t, err)
		}
		return ocrimage.Decode(bytes.NewReader(data), "clipboard image ("+t+")")
	}
	return nil, errNoClipboardImage
}

// runFor runs cmd, giving up after d.
func runFor(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	c := exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	var stderr bytes.Buffer
	c.Stderr = &stderr
	out, err := c.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return nil, fmt.Errorf("%s: %w: %s", cmd.Args[0], err, msg)
		}
		return nil, fmt.Errorf("%s: %w", cmd.Args[0], err)
	}
	return out, nil
}

func has(tool string) bool {
	_, err := exec.LookPath(tool)
	return err == nil
}

// looksLikePath reports whether clipboard text names one existing file (as a file manager's
// "copy" of a file gives it: a path or a file:// URI).
func looksLikePath(s string) bool {
	p := pathFromClipboard(s)
	if p == "" {
		return false
	}
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// pathFromClipboard is the first line of s as a path, file:// URIs decoded.
func pathFromClipboard(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	if strings.HasPrefix(s, "file://") {
		if u, err := url.Parse(s); err == nil {
			return u.Path
		}
	}
	return expandHome(s)
}

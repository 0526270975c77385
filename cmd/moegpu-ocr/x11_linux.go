//go:build linux && !wayland

package main

/*
#cgo LDFLAGS: -lX11
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <stdlib.h>

static int moe_x_failed;
static int moe_x_ignore(Display *d, XErrorEvent *e) { moe_x_failed = 1; return 0; }

static int moe_shift(unsigned long m) {
	int s = 0;
	if (!m) return 0;
	while (!(m & 1)) { m >>= 1; s++; }
	return s;
}

static Window moe_root(Display *d) { return DefaultRootWindow(d); }
static int moe_screen_w(Display *d) { return DisplayWidth(d, DefaultScreen(d)); }
static int moe_screen_h(Display *d) { return DisplayHeight(d, DefaultScreen(d)); }

// moe_grab copies w × h pixels of a window into out (RGBA). Returns 0 on failure (the window
// is not viewable, say), with Xlib's error handler swapped so a failure cannot exit the
// process.
static int moe_grab(Display *d, Window win, int w, int h, unsigned char *out) {
	XSync(d, False);
	XErrorHandler old = XSetErrorHandler(moe_x_ignore);
	moe_x_failed = 0;
	XImage *im = XGetImage(d, win, 0, 0, (unsigned)w, (unsigned)h, AllPlanes, ZPixmap);
	XSync(d, False);
	XSetErrorHandler(old);
	if (!im || moe_x_failed) {
		if (im) XDestroyImage(im);
		return 0;
	}
	int rs = moe_shift(im->red_mask), gs = moe_shift(im->green_mask), bs = moe_shift(im->blue_mask);
	unsigned long rm = im->red_mask >> rs, gm = im->green_mask >> gs, bm = im->blue_mask >> bs;
	for (int y = 0; y < h; y++) {
		for (int x = 0; x < w; x++) {
			unsigned long p = XGetPixel(im, x, y);
			unsigned char *o = out + 4 * ((size_t)y * w + x);
			o[0] = rm ? (unsigned char)(((p >> rs) & rm) * 255 / rm) : 0;
			o[1] = gm ? (unsigned char)(((p >> gs) & gm) * 255 / gm) : 0;
			o[2] = bm ? (unsigned char)(((p >> bs) & bm) * 255 / bm) : 0;
			o[3] = 255;
		}
	}
	XDestroyImage(im);
	return 1;
}
*/
import "C"

import (
	"fmt"
	"image"
	"unsafe"

	"github.com/go-gl/glfw/v3.3/glfw"

	"github.com/moegpu/moegpu/gpu"
)

// surfaceTarget is the X11 display and window the GPU surface presents into.
func surfaceTarget(w *glfw.Window) gpu.SurfaceTarget {
	return gpu.SurfaceTarget{XlibDisplay: unsafe.Pointer(glfw.GetX11Display()), XlibWindow: uint32(w.GetX11Window())}
}

// grabWindow reads the window's pixels back from the X server: what is on screen, after the
// GPU presented it (the same as `xwd -id WINDOW`).
func grabWindow(w *glfw.Window) (*image.RGBA, error) {
	fw, fh := w.GetFramebufferSize()
	if fw <= 0 || fh <= 0 {
		return nil, fmt.Errorf("screenshot: the window has no size")
	}
	img := image.NewRGBA(image.Rect(0, 0, fw, fh))
	d := (*C.Display)(unsafe.Pointer(glfw.GetX11Display()))
	if C.moe_grab(d, C.Window(w.GetX11Window()), C.int(fw), C.int(fh), (*C.uchar)(unsafe.Pointer(&img.Pix[0]))) == 0 {
		return nil, fmt.Errorf("screenshot: the X server would not give the window's pixels (not mapped?)")
	}
	return img, nil
}

// canCapture reports whether the screen can be captured (X11: yes).
const canCapture = true

// grabScreen reads the whole screen (the X root window) from the X server.
func grabScreen() (*image.RGBA, error) {
	d := (*C.Display)(unsafe.Pointer(glfw.GetX11Display()))
	w, h := int(C.moe_screen_w(d)), int(C.moe_screen_h(d))
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("capture: the screen has no size")
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	if C.moe_grab(d, C.moe_root(d), C.int(w), C.int(h), (*C.uchar)(unsafe.Pointer(&img.Pix[0]))) == 0 {
		return nil, fmt.Errorf("capture: the X server would not give the screen's pixels")
	}
	return img, nil
}

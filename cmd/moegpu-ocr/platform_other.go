//go:build !linux || wayland

package main

import (
	"errors"
	"image"

	"github.com/go-gl/glfw/v3.3/glfw"

	"github.com/moegpu/moegpu/gpu"
)

// This build of the app draws on X11 only: elsewhere (macOS, Windows, Wayland) the surface has
// no window handles, and the window shows no frame but says so in its title.

const canCapture = false

var errPlatform = errors.New("this build of moegpu-ocr draws on X11 only")

func surfaceTarget(*glfw.Window) gpu.SurfaceTarget { return gpu.SurfaceTarget{} }

func grabWindow(*glfw.Window) (*image.RGBA, error) { return nil, errPlatform }

func grabScreen() (*image.RGBA, error) { return nil, errPlatform }

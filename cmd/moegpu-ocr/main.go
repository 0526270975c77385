// Command moegpu-ocr is the desktop OCR app: a window that turns a screenshot, a pasted image
// or a dropped file into text, with the OCR model running through moegpu on the machine's GPU.
// The window itself is drawn through WebGPU as well (a wgpu surface on the GLFW window; the
// image, its line boxes and the text panels are textures and quads of one blit shader).
//
//	moegpu-ocr [flags] [IMAGE]
//
// Drop an image on the window, paste one with Ctrl+V, or open one with Ctrl+O; the text
// appears beside it, line by line, with each line's box drawn on the image. Ctrl+C copies the
// text, Ctrl+S saves it, F1 lists every shortcut.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	"github.com/moegpu/moegpu/assets/models"
	"github.com/moegpu/moegpu/gpu"
	"github.com/moegpu/moegpu/internal/procenv"
)

// GLFW wants its calls on the process's main thread: keep the main goroutine there.
func init() { runtime.LockOSThread() }

func main() {
	procenv.Restart()
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run parses the flags and runs the window; it returns the exit code.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("moegpu-ocr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: moegpu-ocr [flags] [IMAGE]\n\nA desktop OCR window: drop, paste (Ctrl+V) or open (Ctrl+O) an image; F1 lists the shortcuts.\n\nflags:")
		fs.PrintDefaults()
	}
	var opt options
	var backend, adapter string
	fs.StringVar(&opt.model, "model", "", "OCR model directory (config.json + model.safetensors); default: $MOEGPU_OCR_MODEL, else "+models.OCRSmall+" in the working directory's checkout or the executable's, else the copy built into the app")
	fs.StringVar(&backend, "backend", "auto", "the OCR model's WebGPU backend: vulkan, metal, dx12, gl or auto (the window picks an adapter that can present to it)")
	fs.StringVar(&adapter, "adapter", "", "the OCR model's adapter: index or name substring")
	fs.IntVar(&opt.ocr.Batch, "batch", 16, "line segments read side by side per GPU submission")
	fs.BoolVar(&opt.ocr.F16, "f16", false, "store the model's linear weights in half precision")
	scale := fs.Float64("scale", 0, "UI scale (1, 2, …); 0 takes the window system's content scale (HiDPI)")
	fs.IntVar(&opt.width, "width", 1200, "window width at 1× scale")
	fs.IntVar(&opt.height, "height", 760, "window height at 1× scale")
	fs.StringVar(&opt.engine, "engine", "model", "model, or fake (finds the lines and names them \"line N\" without a model: for tests)")
	fs.DurationVar(&opt.fakeDelay, "fake-delay", 20*time.Millisecond, "with --engine fake: time taken per line")
	fs.StringVar(&opt.script, "script", "", "debug hook: run the commands in this file inside the event loop (see hook.go) and write state JSON / screenshots")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 {
		fmt.Fprintf(stderr, "moegpu-ocr: one image at a time (got %d)\n", fs.NArg())
		return 2
	}
	opt.image = fs.Arg(0)
	if opt.engine != "model" && opt.engine != "fake" {
		fmt.Fprintf(stderr, "moegpu-ocr: --engine %q: want model or fake\n", opt.engine)
		return 2
	}
	if opt.ocr.Batch < 1 || opt.width < 200 || opt.height < 150 || *scale < 0 || *scale > 8 {
		fmt.Fprintln(stderr, "moegpu-ocr: --batch must be ≥ 1, the window at least 200×150, --scale in [0, 8]")
		return 2
	}
	opt.scale = float32(*scale)
	b, err := gpu.ParseBackend(backend)
	if err != nil {
		fmt.Fprintln(stderr, "moegpu-ocr:", err)
		return 2
	}
	opt.device = gpu.Options{Backend: b, Adapter: adapter}
	opt.model = modelDir(opt.model)
	a, err := newApp(opt)
	if err != nil {
		fmt.Fprintln(stderr, "moegpu-ocr:", err)
		return 1
	}
	return a.run(stderr)
}

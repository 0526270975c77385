package gpu

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/cogentcore/webgpu/wgpu"
)

var quietOnce sync.Once

// quietDriverLogs keeps wgpu's and Mesa's diagnostic noise (swapchain
// colour-space warnings, "XDG_RUNTIME_DIR is invalid") away from users.
// MOEGPU_WGPU_LOG=warn|info|debug|trace brings wgpu's log back for debugging.
func quietDriverLogs() {
	quietOnce.Do(func() {
		level := wgpu.LogLevelOff
		switch strings.ToLower(os.Getenv("MOEGPU_WGPU_LOG")) {
		case "error":
			level = wgpu.LogLevelError
		case "warn":
			level = wgpu.LogLevelWarn
		case "info":
			level = wgpu.LogLevelInfo
		case "debug":
			level = wgpu.LogLevelDebug
		case "trace":
			level = wgpu.LogLevelTrace
		}
		wgpu.SetLogLevel(level)
		// Mesa's EGL/Wayland probing complains when XDG_RUNTIME_DIR is
		// missing (containers, CI). Give it a private directory.
		if d := os.Getenv("XDG_RUNTIME_DIR"); d == "" || !isDir(d) {
			dir := filepath.Join(os.TempDir(), "moegpu-runtime-"+strconv.Itoa(os.Getuid()))
			if err := os.MkdirAll(dir, 0o700); err == nil {
				_ = os.Chmod(dir, 0o700)
				_ = os.Setenv("XDG_RUNTIME_DIR", dir)
			}
		}
	})
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

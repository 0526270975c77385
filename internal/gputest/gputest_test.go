package gputest

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// A child process runs TestOpenDevice with the Vulkan loader pointed at no
// driver, so it finds no adapter.
func runChild(t *testing.T, require string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestDeviceOpensHere$", "-test.v")
	cmd.Env = append(os.Environ(),
		"MOEGPU_BACKEND=vulkan",
		"VK_ICD_FILENAMES=/nonexistent/icd.json", "VK_DRIVER_FILES=/nonexistent/icd.json",
		"MOEGPU_REQUIRE_GPU="+require)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestMissingAdapterFailsWhenGPUIsRequired(t *testing.T) {
	out, err := runChild(t, "1")
	if err == nil {
		t.Fatalf("child passed without an adapter:\n%s", out)
	}
	if !strings.Contains(out, "MOEGPU_REQUIRE_GPU=1 but no WebGPU device") {
		t.Fatalf("child failed for another reason:\n%s", out)
	}
}

func TestMissingAdapterSkipsWhenGPUIsOptional(t *testing.T) {
	out, err := runChild(t, "")
	if err != nil {
		t.Fatalf("child failed without MOEGPU_REQUIRE_GPU:\n%s", out)
	}
	if !strings.Contains(out, "SKIP") {
		t.Fatalf("child did not skip:\n%s", out)
	}
}

func TestDeviceOpensHere(t *testing.T) {
	d := Device(t)
	if d.Info.Name == "" {
		t.Fatal("adapter has no name")
	}
}

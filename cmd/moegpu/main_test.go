package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/gputest"
)

func runCLI(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestHelpListsCommands(t *testing.T) {
	code, out, _ := runCLI("--help")
	require.Equal(t, 0, code)
	for _, c := range commands {
		require.Contains(t, out, c.name)
	}
	code, _, errs := runCLI("frobnicate")
	require.Equal(t, 2, code)
	require.Contains(t, errs, "unknown command")
}

func TestInfoJSONListsAdaptersWithTheDocumentedFields(t *testing.T) {
	gputest.Device(t) // skip (or fail under MOEGPU_REQUIRE_GPU) without an adapter
	code, out, errs := runCLI("info", "--json")
	require.Equal(t, 0, code, errs)
	var doc struct {
		Adapters []map[string]any `json:"adapters"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.NotEmpty(t, doc.Adapters)
	for _, a := range doc.Adapters {
		for _, key := range []string{"name", "backend", "device_type", "driver", "features", "limits"} {
			require.Contains(t, a, key)
		}
	}
	code, out, _ = runCLI("info")
	require.Equal(t, 0, code)
	require.Contains(t, out, "storage binding")
}

func TestInfoRejectsAnUnknownBackend(t *testing.T) {
	code, _, errs := runCLI("info", "--backend", "cuda")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "unknown backend")
}

func TestBenchQuickWritesJSON(t *testing.T) {
	gputest.Device(t)
	path := filepath.Join(t.TempDir(), "b.json")
	code, out, errs := runCLI("bench", "kernels", "--quick", "--time", "1ms", "--filter", "softmax", "--json", path)
	require.Equal(t, 0, code, errs)
	require.Contains(t, out, "| softmax |")
	_, err := os.Stat(path)
	require.NoError(t, err)
	code, _, errs = runCLI("bench", "nonsense")
	require.Equal(t, 1, code)
	require.Contains(t, errs, "moegpu bench kernels")
}

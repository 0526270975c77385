package models

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestOCRDirUnpacksTheBuiltInModelOnce runs outside a checkout (the package directory has no
// assets/models/ocr-small): the built-in model is unpacked to the cache, byte for byte the
// shipped files, once; the flag and the environment variable come first.
func TestOCRDirUnpacksTheBuiltInModelOnce(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	t.Setenv(EnvOCRModel, "")
	// Another version's copy unpacked long ago is removed; a recent one is kept (a process of
	// that version may be opening it).
	old, recent := filepath.Join(cache, "moegpu", "ocr-small-000000000000"), filepath.Join(cache, "moegpu", "ocr-small-111111111111")
	for _, d := range []string{old, recent} {
		require.NoError(t, os.MkdirAll(d, 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(d, "config.json"), []byte("{}"), 0o644))
	}
	long := time.Now().Add(-2 * staleAfter)
	require.NoError(t, os.Chtimes(old, long, long))

	dir, note, err := OCRDir("")
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(dir, filepath.Join(cache, "moegpu", "ocr-small-")), dir)
	require.Contains(t, note, dir)
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join(dir, f))
		require.NoError(t, err)
		want, err := os.ReadFile(filepath.Join("ocr-small", f))
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "%s differs from the shipped file", f)
	}
	require.NoDirExists(t, old)
	require.DirExists(t, recent)
	require.NoError(t, os.RemoveAll(recent))
	ents, err := os.ReadDir(filepath.Join(cache, "moegpu"))
	require.NoError(t, err)
	require.Len(t, ents, 1, "no temporary directory is left behind")

	again, note, err := OCRDir("")
	require.NoError(t, err)
	require.Equal(t, dir, again)
	require.Empty(t, note, "the second call finds the unpacked model")

	got, _, err := OCRDir("my/model")
	require.NoError(t, err)
	require.Equal(t, "my/model", got)
	t.Setenv(EnvOCRModel, "env/model")
	got, _, err = OCRDir("")
	require.NoError(t, err)
	require.Equal(t, "env/model", got)
}

// TestOCRDirPrefersTheCheckout: a working directory holding the shipped model's path uses it.
func TestOCRDirPrefersTheCheckout(t *testing.T) {
	t.Setenv(EnvOCRModel, "")
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Chdir("../..")
	dir, note, err := OCRDir("")
	require.NoError(t, err)
	require.Equal(t, OCRSmall, dir)
	require.Empty(t, note)
}

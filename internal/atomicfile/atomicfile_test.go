package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/internal/atomicfile"
)

func TestWriteReplacesTheFileAndLeavesNoTemporaries(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f.json")
	require.NoError(t, os.WriteFile(p, []byte("old"), 0o600))
	require.NoError(t, atomicfile.Write(p, []byte("new")))
	got, err := os.ReadFile(p)
	require.NoError(t, err)
	require.Equal(t, "new", string(got))
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1)
	st, err := os.Stat(p)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o644), st.Mode().Perm())
}

func TestWriteIntoAMissingDirectoryFailsAndKeepsNothing(t *testing.T) {
	require.Error(t, atomicfile.Write(filepath.Join(t.TempDir(), "no", "such", "f"), []byte("x")))
}

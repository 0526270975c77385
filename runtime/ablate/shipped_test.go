package ablate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every shipped spec parses, resolves to valid configs, has at least two seeds per run and
// an estimate of at most an hour.
func TestShippedSpecsResolve(t *testing.T) {
	files, err := filepath.Glob("../../assets/ablations/*.json")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		s, err := LoadSpec(f)
		require.NoError(t, err, f)
		plan, _, err := s.Resolve(t.TempDir())
		require.NoError(t, err, f)
		require.NotNil(t, s.Estimate, "%s: say how long it takes", f)
		assert.LessOrEqual(t, s.Estimate.Minutes, 60.0, f)
		assert.NotEmpty(t, s.Estimate.How, f)
		assert.NotEmpty(t, s.Question, f)
		for _, r := range plan.Runs {
			assert.GreaterOrEqual(t, len(r.Seeds), 2, "%s: run %s", f, r.Name)
		}
		var raw map[string]any
		b, _ := os.ReadFile(f)
		require.NoError(t, json.Unmarshal(b, &raw), f)
		assert.Equal(t, strings.TrimSuffix(filepath.Base(f), ".json"), s.Name, "%s: the file is named after the spec", f)
	}
}

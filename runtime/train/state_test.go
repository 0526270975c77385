package train_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/runtime/train"
)

func TestParseStateRefusesMalformedStateNamingTheProblem(t *testing.T) {
	s, err := train.ParseState([]byte(`{"step": 12, "task": "reverse", "executor": "gpu", "total_steps": 2000}`))
	require.NoError(t, err)
	assert.Equal(t, train.State{Step: 12, Task: "reverse", Executor: "gpu", TotalSteps: 2000}, *s)
	for _, tc := range []struct{ name, src, want string }{
		{"unknown key", `{"step": 1, "stepz": 2}`, `unknown field "stepz"`},
		{"wrong type", `{"step": "1"}`, `key "step"`},
		{"negative step", `{"step": -1}`, "step must not be negative"},
		{"negative total", `{"step": 1, "total_steps": -5}`, "total_steps must not be negative"},
		{"null step", `{"step": null, "task": "copy"}`, `key "step" is null`},
		{"null task", `{"step": 3, "task": null}`, `key "task" is null`},
		{"null document", `null`, "want a JSON object"},
		{"list", `[1]`, "want a JSON object"},
		{"empty", ``, "want a JSON object"},
		{"trailing data", `{"step": 1} {}`, "trailing data"},
		{"truncated", `{"step": 1`, "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := train.ParseState([]byte(tc.src))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// FuzzParseState: ParseState never panics, and a state it accepts encodes and parses back to
// itself.
func FuzzParseState(f *testing.F) {
	f.Add([]byte(`{"step": 12, "task": "reverse", "executor": "gpu", "total_steps": 2000}`))
	f.Add([]byte(`{"step": -1}`))
	f.Add([]byte(`{"step": null, "task": null}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"step": 1e3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := train.ParseState(b)
		if err != nil {
			return
		}
		out, err := json.Marshal(s)
		require.NoError(t, err)
		again, err := train.ParseState(out)
		require.NoError(t, err, "%s", out)
		require.Equal(t, s, again)
	})
}

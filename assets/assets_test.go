package assets_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/moegpu/moegpu/assets"
	"github.com/moegpu/moegpu/runtime/config"
)

func TestShippedConfigsParseAndValidate(t *testing.T) {
	names := assets.Configs()
	require.Contains(t, names, "tiny-dense")
	for _, n := range names {
		for _, spelling := range []string{n, n + ".json", "assets/configs/" + n + ".json"} {
			b, ok := assets.Config(spelling)
			require.True(t, ok, spelling)
			_, err := config.Parse(b)
			require.NoError(t, err, n)
		}
	}
	_, ok := assets.Config("nope")
	require.False(t, ok)
}

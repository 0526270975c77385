// Package assets embeds the shipped model configs, so the CLI's defaults
// work from any directory, not only from a checkout.
package assets

import (
	"embed"
	"path"
	"sort"
	"strings"
)

//go:embed configs/*.json
var configs embed.FS

// Config returns a shipped config by name ("tiny-dense", "tiny-dense.json"
// or "assets/configs/tiny-dense.json").
func Config(name string) ([]byte, bool) {
	base := strings.TrimSuffix(path.Base(name), ".json")
	b, err := configs.ReadFile("configs/" + base + ".json")
	return b, err == nil
}

// Configs lists the shipped config names.
func Configs() []string {
	ents, _ := configs.ReadDir("configs")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".json"))
	}
	sort.Strings(out)
	return out
}

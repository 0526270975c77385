// Package shaders holds the WGSL sources of every op family, embedded into
// the binary. One file per family holds its forward and backward entry
// points; Go code in graph/ dispatches them.
package shaders

import (
	"embed"
	"fmt"
)

//go:embed *.wgsl
var files embed.FS

// Source returns the WGSL text of one op family, e.g. Source("matmul").
func Source(family string) (string, error) {
	b, err := files.ReadFile(family + ".wgsl")
	if err != nil {
		return "", fmt.Errorf("shader family %q: %w", family, err)
	}
	return string(b), nil
}

// MustSource is Source for families known at compile time; a missing file
// is a build defect, caught by the shaders test.
func MustSource(family string) string {
	s, err := Source(family)
	if err != nil {
		panic(err)
	}
	return s
}

// Families lists the embedded shader files, without extension.
func Families() []string {
	ents, _ := files.ReadDir(".")
	var out []string
	for _, e := range ents {
		n := e.Name()
		out = append(out, n[:len(n)-len(".wgsl")])
	}
	return out
}

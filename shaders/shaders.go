// Package shaders holds the WGSL sources of every op family, embedded into
// the binary. One file per family holds its forward and backward entry
// points; Go code in graph/ dispatches them.
package shaders

import (
	"embed"
	"fmt"
	"strings"
	"text/template"
)

//go:embed *.wgsl *.wgsl.tmpl
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

// Template renders a WGSL template (family.wgsl.tmpl) with text/template:
// kernels whose loops must be unrolled for a given tile size are generated
// this way, since shader compilers do not reliably unroll nested loops.
func Template(family string, data any) (string, error) {
	b, err := files.ReadFile(family + ".wgsl.tmpl")
	if err != nil {
		return "", fmt.Errorf("shader template %q: %w", family, err)
	}
	t, err := template.New(family).Parse(string(b))
	if err != nil {
		return "", fmt.Errorf("shader template %q: %w", family, err)
	}
	var out strings.Builder
	if err := t.Execute(&out, data); err != nil {
		return "", fmt.Errorf("shader template %q: %w", family, err)
	}
	return out.String(), nil
}

// Families lists the embedded shader files, without extension.
func Families() []string {
	ents, _ := files.ReadDir(".")
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".wgsl"); ok {
			out = append(out, n)
		}
	}
	return out
}

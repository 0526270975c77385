package graph

import "github.com/moegpu/moegpu/shaders"

func shaderSource(family string) (string, error) { return shaders.Source(family) }

// shaderText is shaderSource for families that exist by construction; a
// missing family is caught by the shaders package test.
func shaderText(family string) string { return shaders.MustSource(family) }

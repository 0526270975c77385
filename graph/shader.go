package graph

import "github.com/moegpu/moegpu/shaders"

func shaderSource(family string) (string, error) { return shaders.Source(family) }

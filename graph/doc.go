// Package graph holds the ops of the runtime and, on top of them, the graph
// builder, reverse-mode autodiff, memory planner and executors.
//
// An op is one unit: its WGSL entry points live in one shader file, and one
// Go file here holds its shape rule, its CPU reference (pure Go, float64
// accumulation: the test oracle), and how it is dispatched on the GPU.
//
// Gradient convention (as in llm.c): kernels that produce a parameter's
// gradient can accumulate (+=) into it; activation gradients are written (=).
package graph

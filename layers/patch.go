package layers

import "github.com/moegpu/moegpu/graph"

// PatchEmbedding turns column strips of text-line images into token vectors: y = strips(image,
// cols) · Wᵀ, W = name.weight (hidden, height·patch), no bias (ViT's patch embedding with
// patches as tall as the line, as a strip im2col plus a linear layer). image is (B, height, W)
// f32, 1 = ink; cols (N) u32 gives each of the N = B·S rows its strip index, graph.NoPatch for
// text rows, which get zeros (so adding y to the token embeddings leaves text rows unchanged).
// Output (N, hidden).
func PatchEmbedding(g *graph.Graph, linear LinearFunc, name string, image, cols *graph.Tensor, height, patch, hidden int, std float64) *graph.Tensor {
	strips := g.Apply1(graph.ColumnPatches{Patch: patch}, image, cols)
	return linear(g, name, strips, height*patch, hidden, std)
}

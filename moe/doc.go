// Package moe is the mixture-of-experts FFN of the runtime: the router
// (affinities, top-k on affinity + bias, gates), the dispatch of token
// slots into expert-contiguous rows (counts, aligned offsets and the
// permutation, all on the GPU), the grouped expert matmuls, the weighted
// combine back to token order with shared and copy (zero-computation)
// experts, the classic load-balancing loss, the router statistics and the
// bias controllers (aux-loss-free sign rule, PID, skip-rate target).
//
// Every op follows graph's rules: a shape rule, a CPU reference in float64
// (the test oracle), a GPU encoding in shaders/moe_*.wgsl, and a backward
// rule made of more ops. Data-dependent sizes (tokens per expert) never come
// back to the host inside a step: kernels read counts and segments from GPU
// buffers and rows beyond them cost only a store of zeros.
//
// Sources: DeepSeek-V3 (arXiv 2412.19437) for sigmoid routing, normalised
// gates, the scaling factor, shared experts and the bias rule;
// arXiv 2408.15664 for aux-loss-free balancing; Switch Transformer and
// GShard for the balance loss; LongCat-Flash (arXiv 2509.01322) for copy
// experts and the skip controller. See ../shared/TECHNIQUES.md §1–4.
package moe

import "github.com/moegpu/moegpu/gpu"

// RowAlign: every expert's segment of permuted rows starts at a multiple of
// RowAlign, so a kernel's block of rows never straddles two experts.
const RowAlign = 8

// invalid marks a row without a slot, or a slot without a row.
const invalid = 0xffffffff

// wg is the workgroup size of the one-invocation-per-item kernels.
const wg = 64

func consts() map[string]string { return map[string]string{"WG": "64u"} }

func grid(dev *gpu.Device, items int) [3]uint32 { return dev.Grid1D(gpu.CeilDiv(items, wg)) }

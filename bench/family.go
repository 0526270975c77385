package bench

import "strings"

// families maps kernel-name prefixes (as gpu.KernelSpec names them, e.g.
// "matmul_nt_v3_8x8", "attn_bwd_dkv_dh16_qb4") to the family a profile
// sums them under; the first matching prefix wins, so longer prefixes come
// first.
var families = []struct{ prefix, family string }{
	{"matmul_nn_f16", "matmul A·B (f16)"},
	{"matmul_nt_f16", "matmul A·Bᵀ (f16)"},
	{"matmul_nn", "matmul A·B"},
	{"matmul_nt", "matmul A·Bᵀ"},
	{"matmul_tn", "matmul Aᵀ·B"},
	{"matmul_tt", "matmul Aᵀ·Bᵀ"},
	{"transpose", "transpose"},
	{"attn_bwd", "attention backward"},
	{"attention_backward", "attention backward"},
	{"attn", "attention"},
	{"attention", "attention"},
	{"kv_cache", "attention"},
	{"rmsnorm", "rmsnorm"},
	{"rope", "rope"},
	{"swiglu", "activations"},
	{"silu", "activations"},
	{"relu2", "activations"},
	{"softmax", "softmax"},
	{"cross_entropy", "cross-entropy"},
	{"ce_", "cross-entropy"},
	{"embedding", "embedding"},
	{"embed", "embedding"},
	{"column_patches", "patch embedding"},
	{"patches", "patch embedding"},
	{"adamw", "optimizer"},
	{"sum_squares", "optimizer"},
	{"sumsq", "optimizer"},
	{"moe_grouped", "moe experts"},
	{"moe_sparse", "moe experts"},
	{"grouped", "moe experts"},
	{"moe_route", "moe routing"},
	{"moe_dispatch", "moe routing"},
	{"moe_gather", "moe routing"},
	{"moe_combine", "moe combine"},
	{"moe_copy", "moe routing"},
	{"moe_balance", "moe balance & stats"},
	{"moe_bias", "moe balance & stats"},
	{"moe_stats", "moe balance & stats"},
	{"moe_sparsity", "moe balance & stats"},
	{"moe_", "moe other"},
	{"topk", "moe routing"},
	{"exclusive_scan", "moe routing"},
	{"scan", "moe routing"},
	{"concat", "copies"},
	{"split", "copies"},
	{"rows", "copies"},
	{"copy", "copies"},
	{"add", "elementwise"},
	{"mul", "elementwise"},
	{"scale", "elementwise"},
	{"zero", "elementwise"},
	{"weighted_sum", "elementwise"},
}

// KernelFamily names the family of a dispatched kernel for the step-time
// breakdown: matmuls by layout, attention forward and backward, norms,
// activations, the optimizer, MoE routing and experts …; a kernel no rule
// knows keeps its first word.
func KernelFamily(kernel string) string {
	k := strings.ToLower(kernel)
	for _, f := range families {
		if strings.HasPrefix(k, f.prefix) {
			return f.family
		}
	}
	if i := strings.IndexByte(k, '_'); i > 0 {
		return k[:i]
	}
	return k
}

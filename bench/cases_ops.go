package bench

// extraCases lists the non-matmul kernels (softmax, RMSNorm, top-k, …).
func extraCases(quick bool) []benchCase { return nil }

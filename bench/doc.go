// Package bench measures an adapter's roofline (peak FMA throughput and copy
// bandwidth) with microkernels, then times the runtime's kernels and reports
// each as a share of that peak, as a Markdown table and as JSON.
package bench

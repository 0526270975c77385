// Package bench measures an adapter's roofline (peak FMA throughput and copy
// bandwidth) with microkernels, then times the runtime's kernels (Run) and
// whole models — training steps, prefill, decode, memory and where a step's
// time goes (RunModels) — and reports each as a share of that peak. It also
// runs the op test harness's cases as the op × adapter support table
// (RunSupport). Every suite writes the same versioned JSON result file
// (Report; see SchemaName), which WriteReportDir turns into Markdown and PNG
// plots and Compare sets side by side across adapters and machines.
package bench

// Package gpu is the only package that touches the WebGPU binding. It finds
// adapters, opens devices with the adapter's own limits, allocates typed
// storage buffers, compiles and caches compute pipelines, records many
// dispatches into one pass and one submission, reads results back in
// batches, and turns every WebGPU failure into a Go error that names the
// kernel involved. Nothing here knows about models.
package gpu

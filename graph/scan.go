package graph

import (
	"fmt"

	"github.com/moegpu/moegpu/gpu"
)

// ExclusiveScan is the exclusive prefix sum of a u32 vector: input x (n),
// output y (n) with y[i] = x[0] + … + x[i−1], wrapping modulo 2³² as u32
// arithmetic does. Mixture-of-experts dispatch needs it on the GPU to turn
// per-expert token counts into offsets without a readback.
//
// Any n: blocks of x are reduced to block sums, the block sums are scanned
// the same way (recursively, until one block remains) and each block is then
// scanned from its offset. Each level records two dispatches into the same
// recorder; the block sums live in recorder scratch buffers
// (Recorder.Scratch), freed when the recorder is released.
type ExclusiveScan struct {
	// Variant picks the kernels: 0 automatic (3 on CPU adapters, 2
	// otherwise), 1 serial — one invocation walks a chunk of 64 elements,
	// no shared memory —, 2 block — one workgroup of 256 scans 1024
	// elements through shared memory —, 3 serial with vec4 loads and
	// stores on every level whose length is a multiple of 4 (scalar on
	// the others).
	Variant int
}

// Name implements Op.
func (ExclusiveScan) Name() string { return "exclusive_scan" }

// Outputs implements Op.
func (ExclusiveScan) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 1); err != nil {
		return nil, err
	}
	if err := wantRank("x", in[0], 1, gpu.U32); err != nil {
		return nil, err
	}
	return []Spec{U32(in[0].Shape[0])}, nil
}

// Reference implements Op.
func (s ExclusiveScan) Reference(in []*Host) ([]*Host, error) {
	outs, err := s.Outputs([]Spec{in[0].Spec})
	if err != nil {
		return nil, err
	}
	y := NewHost(outs[0])
	var run uint32
	for i, x := range in[0].Data {
		y.Data[i] = float64(run)
		run += uint32(x)
	}
	return []*Host{y}, nil
}

// Block geometry of the variants, specialised into the WGSL.
const (
	scanChunk     = 64  // serial: elements per invocation
	scanSerialWG  = 64  // serial: invocations per workgroup
	scanBlockWG   = 256 // block: invocations per workgroup
	scanBlockPer  = 4   // block: elements per invocation
	scanBlockSize = scanBlockWG * scanBlockPer
)

// Encode implements Op.
func (s ExclusiveScan) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	variant := s.Variant
	if variant == 0 {
		variant = 2
		if loopBudget(dev) > 0 { // CPU adapter: barriers are slow, serial loops fast
			variant = 3
		}
	}
	if variant < 1 || variant > 3 {
		return fmt.Errorf("unknown variant %d", s.Variant)
	}
	return s.level(dev, rec, variant, in[0], out[0], in[0].Len(), 0)
}

// level scans x (n elements) into y, recursing on the block sums.
func (s ExclusiveScan) level(dev *gpu.Device, rec *gpu.Recorder, variant int, x, y *gpu.Buffer, n, depth int) error {
	if n == 0 {
		return nil
	}
	block, sumsEntry, applyEntry := scanChunk, "scan_chunk_sums", "scan_chunk_apply"
	if variant == 3 && n%4 == 0 {
		sumsEntry, applyEntry = "scan_chunk_sums4", "scan_chunk_apply4"
	}
	consts := map[string]string{"WG": fmt.Sprintf("%du", scanSerialWG), "CHUNK": fmt.Sprintf("%du", scanChunk)}
	if variant == 2 {
		block, sumsEntry, applyEntry = scanBlockSize, "scan_block_sums", "scan_block_apply"
		consts = map[string]string{"BWG": fmt.Sprintf("%du", scanBlockWG), "PER": fmt.Sprintf("%du", scanBlockPer)}
	}
	nb := gpu.CeilDiv(n, block)
	grid := dev.Grid1D(nb)
	if variant != 2 {
		grid = dev.Grid1D(gpu.CeilDiv(nb, scanSerialWG))
	}
	apply, err := kernel(dev, "scan", applyEntry, applyEntry, []gpu.Access{gpu.Read, gpu.Read, gpu.ReadWrite}, true, consts)
	if err != nil {
		return err
	}
	if nb == 1 {
		// One block: no offsets; x stands in for the unused offset binding.
		return rec.Dispatch(apply, grid, []uint32{uint32(n), 0, 0, 0}, x, x, y)
	}
	sumsK, err := kernel(dev, "scan", sumsEntry, sumsEntry, []gpu.Access{gpu.Read, gpu.ReadWrite}, true, consts)
	if err != nil {
		return err
	}
	sums, err := rec.Scratch(fmt.Sprintf("exclusive_scan.sums%d", depth), gpu.U32, nb)
	if err != nil {
		return err
	}
	offs, err := rec.Scratch(fmt.Sprintf("exclusive_scan.offsets%d", depth), gpu.U32, nb)
	if err != nil {
		return err
	}
	if err := rec.Dispatch(sumsK, grid, []uint32{uint32(n), 0, 0, 0}, x, sums); err != nil {
		return err
	}
	if err := s.level(dev, rec, variant, sums, offs, nb, depth+1); err != nil {
		return err
	}
	return rec.Dispatch(apply, grid, []uint32{uint32(n), 1, 0, 0}, x, offs, y)
}

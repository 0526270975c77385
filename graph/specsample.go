package graph

import (
	"fmt"
	"math"

	"github.com/moegpu/moegpu/gpu"
)

// SpecSample verifies greedy drafts by the speculative-sampling rejection
// rule on the GPU (see shaders/spec_sample.wgsl): for each trial (one set
// of uniforms), draft j is accepted with probability p_j(d_j); at the
// first rejection the final token is sampled from p_j without d_j,
// renormalised, else the bonus token from p_D. p_j is row j of logits under
// Temperature and the TopP nucleus, as generate.Pick samples. The
// committed tokens are distributed exactly as the target model's samples.
//
// Inputs: logits (D+1, V) f32, drafts (D) u32, uniforms (trials,
// 2(D+1)) f32 in [0, 1). Output: (trials, 2) u32 = accepted drafts, final
// token. Work is O(V²) per row: on llvmpipe a vocabulary over the loop
// budget is refused (ErrUnsupported).
type SpecSample struct {
	Temperature, TopP float32
}

// Name implements Op.
func (SpecSample) Name() string { return "spec_sample" }

// Outputs implements Op.
func (s SpecSample) Outputs(in []Spec) ([]Spec, error) {
	if err := wantInputs(in, 3); err != nil {
		return nil, err
	}
	if err := wantRank("logits", in[0], 2, gpu.F32); err != nil {
		return nil, err
	}
	if err := wantRank("drafts", in[1], 1, gpu.U32); err != nil {
		return nil, err
	}
	if err := wantRank("uniforms", in[2], 2, gpu.F32); err != nil {
		return nil, err
	}
	d := in[1].Shape[0]
	if in[0].Shape[0] != d+1 || in[2].Shape[1] != 2*(d+1) {
		return nil, fmt.Errorf("logits %v, drafts %v and uniforms %v: want (D+1, V), (D) and (trials, 2(D+1))", in[0].Shape, in[1].Shape, in[2].Shape)
	}
	if !(s.Temperature > 0) || math.IsInf(float64(s.Temperature), 0) || !(s.TopP > 0 && s.TopP <= 1) {
		return nil, fmt.Errorf("temperature %g and top-p %g: want a finite temperature > 0 and top-p in (0, 1]", s.Temperature, s.TopP)
	}
	return []Spec{U32(in[2].Shape[0], 2)}, nil
}

// nucleus returns row's distribution p (temperature, top-p), as the kernel
// computes it.
func (s SpecSample) nucleus(row []float64) []float64 {
	mx := math.Inf(-1)
	for _, x := range row {
		mx = math.Max(mx, x)
	}
	w := make([]float64, len(row))
	total := 0.0
	for i, x := range row {
		w[i] = math.Exp((x - mx) / float64(s.Temperature))
		total += w[i]
	}
	p := make([]float64, len(row))
	mass := 0.0
	for i := range w {
		before := 0.0
		for j := range w {
			if w[j] > w[i] || (w[j] == w[i] && j < i) {
				before += w[j]
			}
		}
		if before/total < float64(s.TopP) {
			p[i] = w[i]
			mass += w[i]
		}
	}
	for i := range p {
		p[i] /= mass
	}
	return p
}

// Reference implements Op.
func (s SpecSample) Reference(in []*Host) ([]*Host, error) {
	v := in[0].Shape[1]
	d := in[1].Shape[0]
	trials := in[2].Shape[0]
	ps := make([][]float64, d+1)
	for j := range ps {
		ps[j] = s.nucleus(in[0].Data[j*v : (j+1)*v])
	}
	out := NewHost(U32(trials, 2))
	for t := 0; t < trials; t++ {
		u := in[2].Data[t*2*(d+1):]
		acc, token := 0, 0
		for j := 0; j <= d; j++ {
			skip, scale := -1, 1.0
			if j < d {
				dr := int(in[1].Data[j])
				pd := 0.0
				if dr < v {
					pd = ps[j][dr]
				}
				if u[2*j] < pd {
					acc++
					continue
				}
				skip, scale = dr, 1-pd
			}
			r := u[2*j+1] * scale
			token = -1
			last := 0
			for i, pi := range ps[j] {
				if i == skip || pi == 0 {
					continue
				}
				last = i
				r -= pi
				if r <= 0 && token < 0 {
					token = i
				}
			}
			if token < 0 {
				token = last
			}
			break
		}
		out.Data[2*t], out.Data[2*t+1] = float64(acc), float64(token)
	}
	return []*Host{out}, nil
}

// Encode implements Op.
func (s SpecSample) Encode(dev *gpu.Device, rec *gpu.Recorder, in, out []*gpu.Buffer) error {
	v := in[0].Shape[1]
	d := in[1].Shape[0]
	trials := in[2].Shape[0]
	if b := loopBudget(dev); b > 0 && (d+1)*(3*v+2*v*v) > b {
		return overBudget(dev, fmt.Sprintf("spec_sample over a vocabulary of %d", v), (d+1)*(3*v+2*v*v))
	}
	k, err := kernel(dev, "spec_sample", "spec_sample", "spec_sample", []gpu.Access{gpu.Read, gpu.Read, gpu.Read, gpu.ReadWrite}, true, map[string]string{"WG": "64u"})
	if err != nil {
		return err
	}
	params := []uint32{uint32(trials), uint32(d), uint32(v), 0, math.Float32bits(s.Temperature), math.Float32bits(s.TopP), 0, 0}
	return rec.Dispatch(k, dev.Grid1D(gpu.CeilDiv(trials, 64)), params, in[0], in[1], in[2], out[0])
}

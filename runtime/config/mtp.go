package config

import "fmt"

// MTPConfig holds the multi-token-prediction fields of a model config (DeepSeek-V3 §2.2): D =
// num_nextn_predict_layers sequential modules (the Hugging Face DeepSeek-V3 name), module k
// predicting the token k+1 ahead. Each module projects [RMSNorm(embedding of token i+k);
// RMSNorm(previous hidden state)] from 2d to d (embedding first, as public implementations
// order it), then runs one transformer block with sliding-window attention and a small dense
// FFN; the embedding and the output head are the main model's. The training loss is the main
// cross-entropy plus λ/D · Σ_k CE_k. num_nextn_predict_layers = 0 (the default) is a model
// without MTP and every other field is then ignored.
//
// Defaults when a key is omitted:
//
//	mtp_loss_weight         0.3 (λ; DeepSeek-V3 uses 0.3, then 0.1)
//	mtp_loss_weight_late    mtp_loss_weight (λ after the switch)
//	mtp_loss_weight_switch  1 (the share of the run's steps after which λ becomes the late value; 1 = never)
//	mtp_intermediate_size   intermediate_size (the modules' dense FFN, SwiGLU or ReLU² as hidden_act)
//	mtp_sliding_window      sliding_window, or 128 when the model has none
type MTPConfig struct {
	NumNextNPredictLayers int     `json:"num_nextn_predict_layers"`
	MTPLossWeight         float64 `json:"mtp_loss_weight"`
	MTPLossWeightLate     float64 `json:"mtp_loss_weight_late"`
	MTPLossWeightSwitch   float64 `json:"mtp_loss_weight_switch"`
	MTPIntermediateSize   int     `json:"mtp_intermediate_size"`
	MTPSlidingWindow      int     `json:"mtp_sliding_window"`
}

// MaxMTP is the most MTP modules a config may ask for.
const MaxMTP = 4

// HasMTP reports whether the config has multi-token-prediction modules.
func (m *MTPConfig) HasMTP() bool { return m.NumNextNPredictLayers > 0 }

// MTPLambda is λ at step s of a run of total steps (the switch to the late value happens after
// mtp_loss_weight_switch · total steps).
func (m *MTPConfig) MTPLambda(step, total int) float64 {
	if m.MTPLossWeightSwitch < 1 && float64(step) > m.MTPLossWeightSwitch*float64(total) {
		return m.MTPLossWeightLate
	}
	return m.MTPLossWeight
}

func (m *MTPConfig) applyMTPDefaults(present func(string) bool, inter, window int) {
	if !present("mtp_loss_weight") {
		m.MTPLossWeight = 0.3
	}
	if !present("mtp_loss_weight_late") {
		m.MTPLossWeightLate = m.MTPLossWeight
	}
	if !present("mtp_loss_weight_switch") {
		m.MTPLossWeightSwitch = 1
	}
	if !present("mtp_intermediate_size") {
		m.MTPIntermediateSize = inter
	}
	if !present("mtp_sliding_window") {
		m.MTPSlidingWindow = window
		if window <= 0 {
			m.MTPSlidingWindow = 128
		}
	}
}

func (m *MTPConfig) validateMTP() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if m.NumNextNPredictLayers < 0 || m.NumNextNPredictLayers > MaxMTP {
		bad("num_nextn_predict_layers must be in [0, %d], got %d", MaxMTP, m.NumNextNPredictLayers)
	}
	if !m.HasMTP() {
		return errs
	}
	for _, w := range []struct {
		key string
		v   float64
	}{{"mtp_loss_weight", m.MTPLossWeight}, {"mtp_loss_weight_late", m.MTPLossWeightLate}} {
		if !(w.v >= 0) || w.v > 1e6 {
			bad("%s must be a finite number ≥ 0, got %g", w.key, w.v)
		}
	}
	if !(m.MTPLossWeightSwitch > 0 && m.MTPLossWeightSwitch <= 1) {
		bad("mtp_loss_weight_switch must be in (0, 1], got %g", m.MTPLossWeightSwitch)
	}
	if m.MTPIntermediateSize <= 0 {
		bad("mtp_intermediate_size must be positive, got %d", m.MTPIntermediateSize)
	}
	if m.MTPSlidingWindow <= 0 {
		bad("mtp_sliding_window must be positive (the MTP modules' attention is sliding-window only), got %d", m.MTPSlidingWindow)
	}
	return errs
}

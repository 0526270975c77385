package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
)

// Scoring functions accepted in scoring_func (DeepSeek-V3 spelling).
const (
	// ScoringSigmoid: affinity s_i = sigmoid(u·e_i), each expert on its own (DeepSeek-V3).
	ScoringSigmoid = "sigmoid"
	// ScoringSoftmax: affinities are a softmax over all routed and copy experts (Qwen-MoE, LongCat).
	ScoringSoftmax = "softmax"
)

// Balancing modes accepted in moe_balance.
const (
	// BalanceNone: no balancing; the router learns from the language-model loss alone.
	BalanceNone = "none"
	// BalanceLBL: the classic load-balancing loss α·Σ_i f_i·P_i (Switch/GShard, DeepSeek Eq. 17–20),
	// computed over the whole batch, with α = aux_loss_alpha.
	BalanceLBL = "lbl"
	// BalanceBiasSign: auxiliary-loss-free balancing (arXiv 2408.15664, DeepSeek-V3): after each step
	// b_i += γ·sign(mean load − load_i), γ = bias_update_speed.
	BalanceBiasSign = "bias_sign"
	// BalanceBiasPID: the same bias, driven by a PID controller on the relative load error with gains
	// bias_pid_kp, bias_pid_ki, bias_pid_kd.
	BalanceBiasPID = "bias_pid"
)

// MoEConfig holds the mixture-of-experts fields of a model config. Field names follow Hugging Face's
// DeepSeek-V3 (n_routed_experts, num_experts_per_tok, n_shared_experts, moe_intermediate_size,
// routed_scaling_factor, scoring_func, norm_topk_prob, first_k_dense_replace), Qwen-MoE
// (mlp_only_layers) and LongCat-Flash (zero_expert_num) configs; the fields no family names
// (expert activation, balancing controller, skip-rate target, capacity factor) carry a moe_ prefix
// or the name DeepSeek's papers use. n_routed_experts = 0 (the default) is a dense model and every
// other field is then ignored.
//
// Defaults when a key is omitted:
//
//	num_experts_per_tok     required when n_routed_experts > 0
//	moe_intermediate_size   required when n_routed_experts > 0
//	n_shared_experts        0
//	routed_scaling_factor   1
//	scoring_func            "sigmoid"
//	norm_topk_prob          true
//	first_k_dense_replace   0 (every layer MoE, except those in mlp_only_layers)
//	mlp_only_layers         [] (layer indices that keep the dense FFN)
//	zero_expert_num         0 (copy experts: picking one skips the layer's FFN for the token)
//	moe_hidden_act          hidden_act ("silu" = SwiGLU experts, "relu2" = ReLU² experts)
//	moe_balance             "bias_sign"
//	aux_loss_alpha          0.01 (used by "lbl")
//	bias_update_speed       0.001 (γ of "bias_sign")
//	bias_pid_kp/ki/kd       0.02 / 0.01 / 0 (used by "bias_pid"; error = relative load error)
//	moe_skip_target         0 (no skip controller; needs zero_expert_num > 0 when set)
//	moe_skip_controller     "pid" ("sign": the copy bias moves by moe_skip_update_speed per step)
//	moe_skip_update_speed   0.002
//	moe_skip_pid_kp/ki/kd   0.1 / 0.02 / 0 (error = target − skip rate, in [−1, 1])
//	capacity_factor         0 (dropless)
type MoEConfig struct {
	NRoutedExperts      int     `json:"n_routed_experts"`
	NumExpertsPerTok    int     `json:"num_experts_per_tok"`
	NSharedExperts      int     `json:"n_shared_experts"`
	MoEIntermediateSize int     `json:"moe_intermediate_size"`
	RoutedScalingFactor float64 `json:"routed_scaling_factor"`
	ScoringFunc         string  `json:"scoring_func"`
	NormTopKProb        bool    `json:"norm_topk_prob"`
	FirstKDenseReplace  int     `json:"first_k_dense_replace"`
	MLPOnlyLayers       []int   `json:"mlp_only_layers"`
	ZeroExpertNum       int     `json:"zero_expert_num"`
	MoEHiddenAct        string  `json:"moe_hidden_act"`
	MoEBalance          string  `json:"moe_balance"`
	AuxLossAlpha        float64 `json:"aux_loss_alpha"`
	BiasUpdateSpeed     float64 `json:"bias_update_speed"`
	BiasPIDKp           float64 `json:"bias_pid_kp"`
	BiasPIDKi           float64 `json:"bias_pid_ki"`
	BiasPIDKd           float64 `json:"bias_pid_kd"`
	MoESkipTarget       float64 `json:"moe_skip_target"`
	MoESkipController   string  `json:"moe_skip_controller"`
	MoESkipUpdateSpeed  float64 `json:"moe_skip_update_speed"`
	MoESkipPIDKp        float64 `json:"moe_skip_pid_kp"`
	MoESkipPIDKi        float64 `json:"moe_skip_pid_ki"`
	MoESkipPIDKd        float64 `json:"moe_skip_pid_kd"`
	CapacityFactor      float64 `json:"capacity_factor"`
}

// IsMoE reports whether the config has routed experts at all.
func (m *MoEConfig) IsMoE() bool { return m.NRoutedExperts > 0 }

// IsMoELayer reports whether layer i uses the MoE FFN (false for a dense config, for the first
// first_k_dense_replace layers, and for layers listed in mlp_only_layers).
func (m *MoEConfig) IsMoELayer(i int) bool {
	return m.IsMoE() && i >= m.FirstKDenseReplace && !slices.Contains(m.MLPOnlyLayers, i)
}

func (m *MoEConfig) applyMoEDefaults(present func(string) bool, hiddenAct string) {
	set := func(key string, dst *float64, v float64) {
		if !present(key) {
			*dst = v
		}
	}
	set("routed_scaling_factor", &m.RoutedScalingFactor, 1)
	set("aux_loss_alpha", &m.AuxLossAlpha, 0.01)
	set("bias_update_speed", &m.BiasUpdateSpeed, 0.001)
	set("bias_pid_kp", &m.BiasPIDKp, 0.02)
	set("bias_pid_ki", &m.BiasPIDKi, 0.01)
	set("moe_skip_update_speed", &m.MoESkipUpdateSpeed, 0.002)
	set("moe_skip_pid_kp", &m.MoESkipPIDKp, 0.1)
	set("moe_skip_pid_ki", &m.MoESkipPIDKi, 0.02)
	if !present("scoring_func") {
		m.ScoringFunc = ScoringSigmoid
	}
	if !present("norm_topk_prob") {
		m.NormTopKProb = true
	}
	if !present("moe_hidden_act") {
		m.MoEHiddenAct = hiddenAct
	}
	if !present("moe_balance") {
		m.MoEBalance = BalanceBiasSign
	}
	if !present("moe_skip_controller") {
		m.MoESkipController = "pid"
	}
}

func (m *MoEConfig) validateMoE(layers int) []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if m.NRoutedExperts < 0 {
		bad("n_routed_experts must not be negative, got %d", m.NRoutedExperts)
	}
	if !m.IsMoE() {
		return errs
	}
	if m.NumExpertsPerTok < 1 || m.NumExpertsPerTok > m.NRoutedExperts+m.ZeroExpertNum {
		bad("num_experts_per_tok must be in [1, n_routed_experts + zero_expert_num = %d], got %d", m.NRoutedExperts+m.ZeroExpertNum, m.NumExpertsPerTok)
	}
	if m.MoEIntermediateSize <= 0 {
		bad("moe_intermediate_size must be positive when n_routed_experts > 0, got %d", m.MoEIntermediateSize)
	}
	if m.NSharedExperts < 0 {
		bad("n_shared_experts must not be negative, got %d", m.NSharedExperts)
	}
	if m.ZeroExpertNum < 0 {
		bad("zero_expert_num must not be negative, got %d", m.ZeroExpertNum)
	}
	if !(m.RoutedScalingFactor > 0) || math.IsInf(m.RoutedScalingFactor, 0) {
		bad("routed_scaling_factor must be a positive finite number, got %g", m.RoutedScalingFactor)
	}
	if m.ScoringFunc != ScoringSigmoid && m.ScoringFunc != ScoringSoftmax {
		bad("scoring_func %q is not supported, want %q or %q", m.ScoringFunc, ScoringSigmoid, ScoringSoftmax)
	}
	if m.NumExpertsPerTok == 1 && m.NormTopKProb {
		bad("num_experts_per_tok 1 with norm_topk_prob true: the normalised gate is always 1, so the router gets no gradient; set norm_topk_prob false or route to 2 or more experts")
	}
	if m.FirstKDenseReplace < 0 || m.FirstKDenseReplace > layers {
		bad("first_k_dense_replace must be in [0, num_hidden_layers = %d], got %d", layers, m.FirstKDenseReplace)
	}
	for i, l := range m.MLPOnlyLayers {
		if l < 0 || l >= layers {
			bad("mlp_only_layers[%d] = %d is not a layer index (num_hidden_layers = %d)", i, l, layers)
		}
	}
	if m.MoEHiddenAct != ActSiLU && m.MoEHiddenAct != ActReLU2 {
		bad("moe_hidden_act %q is not supported, want %q (SwiGLU experts) or %q (ReLU² experts)", m.MoEHiddenAct, ActSiLU, ActReLU2)
	}
	switch m.MoEBalance {
	case BalanceNone, BalanceLBL, BalanceBiasSign, BalanceBiasPID:
	default:
		bad("moe_balance %q is not supported, want %q, %q, %q or %q", m.MoEBalance, BalanceNone, BalanceLBL, BalanceBiasSign, BalanceBiasPID)
	}
	nonNeg := func(key string, v float64) {
		if !(v >= 0) || math.IsInf(v, 0) {
			bad("%s must be a finite number ≥ 0, got %g", key, v)
		}
	}
	nonNeg("aux_loss_alpha", m.AuxLossAlpha)
	nonNeg("bias_update_speed", m.BiasUpdateSpeed)
	nonNeg("bias_pid_kp", m.BiasPIDKp)
	nonNeg("bias_pid_ki", m.BiasPIDKi)
	nonNeg("bias_pid_kd", m.BiasPIDKd)
	nonNeg("capacity_factor", m.CapacityFactor)
	nonNeg("moe_skip_update_speed", m.MoESkipUpdateSpeed)
	nonNeg("moe_skip_pid_kp", m.MoESkipPIDKp)
	nonNeg("moe_skip_pid_ki", m.MoESkipPIDKi)
	nonNeg("moe_skip_pid_kd", m.MoESkipPIDKd)
	if !(m.MoESkipTarget >= 0 && m.MoESkipTarget < 1) {
		bad("moe_skip_target must be in [0, 1), got %g", m.MoESkipTarget)
	} else if m.MoESkipTarget > 0 && m.ZeroExpertNum == 0 {
		bad("moe_skip_target %g needs copy experts (zero_expert_num > 0)", m.MoESkipTarget)
	}
	if m.MoESkipController != "sign" && m.MoESkipController != "pid" {
		bad("moe_skip_controller %q is not supported, want \"sign\" or \"pid\"", m.MoESkipController)
	}
	return errs
}

// moeParamCount is the parameters of one MoE FFN: the router (routed + copy experts), the routed
// experts and the shared experts; active is what one token uses when it is not skipped
// (router, K routed experts, shared experts).
func (m *MoEConfig) moeParamCount(d int64) (total, active int64) {
	mats := int64(3)
	if m.MoEHiddenAct == ActReLU2 {
		mats = 2
	}
	expert := mats * d * int64(m.MoEIntermediateSize)
	router := int64(m.NRoutedExperts+m.ZeroExpertNum) * d
	total = router + int64(m.NRoutedExperts+m.NSharedExperts)*expert
	active = router + int64(min(m.NumExpertsPerTok, m.NRoutedExperts)+m.NSharedExperts)*expert
	return total, active
}

// MarshalJSON writes the config with its fields in declaration order; an optional group of
// fields (MoEConfig, MTPConfig, ImageConfig) that is entirely unset — a dense model, a model without MTP or image —
// is left out, so such a config.json reads like any dense Hugging Face config. Fields a config
// does set (an ablation that turned the experts off) are kept, so a saved config never drops
// what its file said (FuzzParse found that).
func (c ModelConfig) MarshalJSON() ([]byte, error) {
	type plain ModelConfig
	b, err := json.Marshal(plain(c))
	omitMoE, omitMTP := reflect.ValueOf(c.MoEConfig).IsZero(), reflect.ValueOf(c.MTPConfig).IsZero()
	omitImage := reflect.ValueOf(c.ImageConfig).IsZero()
	if err != nil || (!omitMoE && !omitMTP && !omitImage) {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteByte('{')
	first := true
	var walk func(rt reflect.Type, moe bool)
	walk = func(rt reflect.Type, moe bool) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("json") == "" {
				walk(f.Type, (omitMoE && f.Type == reflect.TypeOf(MoEConfig{})) || (omitMTP && f.Type == reflect.TypeOf(MTPConfig{})) ||
					(omitImage && f.Type == reflect.TypeOf(ImageConfig{})))
				continue
			}
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			v, ok := m[name]
			if !ok || moe {
				continue
			}
			if !first {
				out.WriteByte(',')
			}
			first = false
			k, _ := json.Marshal(name)
			out.Write(k)
			out.WriteByte(':')
			out.Write(v)
		}
	}
	walk(reflect.TypeOf(c), false)
	out.WriteByte('}')
	return out.Bytes(), nil
}

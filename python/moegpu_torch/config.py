"""moegpu's config.json, read with the same keys and defaults as the Go parser.

The Go package runtime/config is the authority: this module mirrors its
field names (Hugging Face config.json names), its defaults for omitted or
``null`` keys, and enough of its validation that a config the Go side would
refuse is refused here too with the key's name. A key this module does not
know is an error, so a model feature added on the Go side can never be
silently ignored by the PyTorch side.
"""

import math

__all__ = ["Config", "ConfigError", "MODEL_KEYS", "TRAINING_KEYS"]


class ConfigError(ValueError):
    """A config.json that moegpu would refuse (or that this package cannot build)."""


#: Top-level keys: dense model, MoE (MoEConfig), MTP (MTPConfig) and the
#: OCR model's image fields (ImageConfig), in the Go struct's order.
MODEL_KEYS = [
    "model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "intermediate_size", "hidden_act", "rms_norm_eps", "rope_theta",
    "partial_rotary_factor", "max_position_embeddings", "sliding_window", "layer_types", "attention_sink",
    "tie_word_embeddings", "initializer_range",
    # MoE
    "n_routed_experts", "num_experts_per_tok", "n_shared_experts", "moe_intermediate_size",
    "routed_scaling_factor", "scoring_func", "norm_topk_prob", "first_k_dense_replace", "mlp_only_layers",
    "zero_expert_num", "moe_hidden_act", "moe_balance", "aux_loss_alpha", "bias_update_speed", "bias_pid_kp",
    "bias_pid_ki", "bias_pid_kd", "moe_skip_target", "moe_skip_controller", "moe_skip_update_speed",
    "moe_skip_pid_kp", "moe_skip_pid_ki", "moe_skip_pid_kd", "capacity_factor",
    # MTP
    "num_nextn_predict_layers", "mtp_loss_weight", "mtp_loss_weight_late", "mtp_loss_weight_switch",
    "mtp_intermediate_size", "mtp_sliding_window",
    # image (OCR model): patch embedding over column strips; the alignment loss (training only)
    "image_height", "patch_width", "max_image_width", "alignment_loss_weight", "prefix_lm",
    "training",
]

#: Keys of the optional "training" object.
TRAINING_KEYS = [
    "learning_rate", "min_lr_ratio", "warmup_steps", "weight_decay", "adam_beta1", "adam_beta2",
    "adam_epsilon", "max_grad_norm", "decay_embeddings", "batch_size", "seq_len", "seed",
]

_TRAINING_DEFAULTS = {
    "learning_rate": 3e-4, "min_lr_ratio": 0.1, "warmup_steps": 100, "weight_decay": 0.1, "adam_beta1": 0.9,
    "adam_beta2": 0.95, "adam_epsilon": 1e-8, "max_grad_norm": 1.0, "decay_embeddings": False, "batch_size": 8,
    "seq_len": 128, "seed": 0,
}


class Config:
    """A parsed moegpu model config: every key of ``MODEL_KEYS`` is an
    attribute holding its value or default; ``training`` is a dict with
    every training key (defaults filled) or None; ``raw`` is the dict it was
    built from, unchanged (``MoegpuModel`` saves it as config.json)."""

    def __init__(self, d):
        if not isinstance(d, dict):
            raise ConfigError("config: want a JSON object")
        self.raw = d
        for k in d:
            if k not in MODEL_KEYS:
                raise ConfigError(f"config: unknown key {k!r}")
        v = {k: x for k, x in d.items() if x is not None}  # null means the key's default
        for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
            if k not in v:
                raise ConfigError(f"config: {k} is required")
        get = v.get
        self.model_type = get("model_type", "moegpu")
        if self.model_type != "moegpu":
            raise ConfigError(f"config: model_type {self.model_type!r} is not supported, want 'moegpu'")
        self.vocab_size = v["vocab_size"]
        self.hidden_size = v["hidden_size"]
        self.num_hidden_layers = v["num_hidden_layers"]
        self.num_attention_heads = v["num_attention_heads"]
        self.num_key_value_heads = get("num_key_value_heads", self.num_attention_heads)
        self.head_dim = get("head_dim", self.hidden_size // self.num_attention_heads)
        self.intermediate_size = v["intermediate_size"]
        self.hidden_act = get("hidden_act", "silu")
        self.rms_norm_eps = get("rms_norm_eps", 1e-6)
        self.rope_theta = get("rope_theta", 10000.0)
        self.partial_rotary_factor = get("partial_rotary_factor", 1.0)
        self.max_position_embeddings = get("max_position_embeddings", 2048)
        self.sliding_window = get("sliding_window", 0)
        self.layer_types = list(get("layer_types", ["full_attention"] * self.num_hidden_layers))
        self.attention_sink = bool(get("attention_sink", False))
        self.tie_word_embeddings = bool(get("tie_word_embeddings", False))
        self.initializer_range = get("initializer_range", 0.02)

        self.n_routed_experts = get("n_routed_experts", 0)
        moe = self.n_routed_experts > 0
        self.num_experts_per_tok = get("num_experts_per_tok", 0)
        self.n_shared_experts = get("n_shared_experts", 0)
        self.moe_intermediate_size = get("moe_intermediate_size", 0)
        self.routed_scaling_factor = get("routed_scaling_factor", 1.0 if moe else 0.0)
        self.scoring_func = get("scoring_func", "sigmoid" if moe else "")
        self.norm_topk_prob = bool(get("norm_topk_prob", moe))
        self.first_k_dense_replace = get("first_k_dense_replace", 0)
        self.mlp_only_layers = list(get("mlp_only_layers", []))
        self.zero_expert_num = get("zero_expert_num", 0)
        self.moe_hidden_act = get("moe_hidden_act", self.hidden_act if moe else "")
        self.moe_balance = get("moe_balance", "bias_sign" if moe else "")
        self.aux_loss_alpha = get("aux_loss_alpha", 0.01 if moe else 0.0)
        self.bias_update_speed = get("bias_update_speed", 0.001 if moe else 0.0)
        self.bias_pid_kp = get("bias_pid_kp", 0.02 if moe else 0.0)
        self.bias_pid_ki = get("bias_pid_ki", 0.01 if moe else 0.0)
        self.bias_pid_kd = get("bias_pid_kd", 0.0)
        self.moe_skip_target = get("moe_skip_target", 0.0)
        self.moe_skip_controller = get("moe_skip_controller", "pid" if moe else "")
        self.moe_skip_update_speed = get("moe_skip_update_speed", 0.002 if moe else 0.0)
        self.moe_skip_pid_kp = get("moe_skip_pid_kp", 0.1 if moe else 0.0)
        self.moe_skip_pid_ki = get("moe_skip_pid_ki", 0.02 if moe else 0.0)
        self.moe_skip_pid_kd = get("moe_skip_pid_kd", 0.0)
        self.capacity_factor = get("capacity_factor", 0.0)

        self.num_nextn_predict_layers = get("num_nextn_predict_layers", 0)
        mtp = self.num_nextn_predict_layers > 0
        self.mtp_loss_weight = get("mtp_loss_weight", 0.3 if mtp else 0.0)
        self.mtp_loss_weight_late = get("mtp_loss_weight_late", self.mtp_loss_weight)
        self.mtp_loss_weight_switch = get("mtp_loss_weight_switch", 1.0 if mtp else 0.0)
        self.mtp_intermediate_size = get("mtp_intermediate_size", self.intermediate_size if mtp else 0)
        self.mtp_sliding_window = get("mtp_sliding_window", (self.sliding_window or 128) if mtp else 0)

        self.image_height = get("image_height", 0)
        self.patch_width = get("patch_width", 0)
        self.max_image_width = get("max_image_width", 0)
        # Scores image tokens on the character in their strip while training on rendered lines
        # (moegpu's ocr task); the forward pass does not use it.
        self.alignment_loss_weight = get("alignment_loss_weight", 0.0)
        # The image tokens attend to each other in both directions in the decoder layers
        # (PaliGemma's prefix-LM mask); the text after them, and the MTP modules, stay causal.
        self.prefix_lm = get("prefix_lm", False)

        self.training = None
        if d.get("training") is not None:
            tr = d["training"]
            if not isinstance(tr, dict):
                raise ConfigError("config: training: want a JSON object")
            for k in tr:
                if k not in TRAINING_KEYS:
                    raise ConfigError(f"config: unknown key 'training.{k}'")
            self.training = dict(_TRAINING_DEFAULTS)
            self.training.update({k: x for k, x in tr.items() if x is not None})
        self._validate()

    # ---- derived ----

    @property
    def rotary_dim(self):
        """The even number of leading head dims RoPE rotates (runtime/model's rotaryDim)."""
        return int(math.floor(self.partial_rotary_factor * self.head_dim / 2 + 0.5)) * 2

    def window(self, i):
        """The sliding window of layer i (0 = global attention)."""
        return self.sliding_window if self.layer_types[i] == "sliding_attention" else 0

    def is_moe_layer(self, i):
        """Whether layer i has the MoE FFN (config.MoEConfig.IsMoELayer)."""
        return self.n_routed_experts > 0 and i >= self.first_k_dense_replace and i not in self.mlp_only_layers

    @property
    def has_image(self):
        """Whether the model reads a text-line image before its text (the OCR model)."""
        return self.image_height > 0

    @property
    def attention_prefix(self):
        """How many leading positions attend to each other both ways in the
        decoder layers: the image tokens with prefix_lm, else 0."""
        return self.image_tokens if self.prefix_lm else 0

    @property
    def image_tokens(self):
        """Image positions at the start of every sequence of an OCR model:
        position p < image_tokens reads column strip p."""
        return self.max_image_width // self.patch_width if self.patch_width > 0 else 0

    def mtp_lambda(self, step, total):
        """λ of the MTP loss at a step of a run of total steps (config.MTPConfig.MTPLambda)."""
        if self.mtp_loss_weight_switch < 1 and step > self.mtp_loss_weight_switch * total:
            return self.mtp_loss_weight_late
        return self.mtp_loss_weight

    def _validate(self):
        bad = []
        for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                  "head_dim", "intermediate_size", "max_position_embeddings"):
            x = getattr(self, k)
            if not isinstance(x, int) or isinstance(x, bool) or x <= 0:
                bad.append(f"{k} must be a positive integer, got {x!r}")
        if not bad:
            if self.num_attention_heads % self.num_key_value_heads:
                bad.append(f"num_attention_heads {self.num_attention_heads} is not divisible by "
                           f"num_key_value_heads {self.num_key_value_heads}")
            if len(self.layer_types) != self.num_hidden_layers:
                bad.append(f"layer_types has {len(self.layer_types)} entries, want {self.num_hidden_layers}")
            rd = int(self.head_dim * self.partial_rotary_factor)
            if not (0 < self.partial_rotary_factor <= 1) or rd < 2 or rd % 2:
                bad.append(f"head_dim {self.head_dim} × partial_rotary_factor {self.partial_rotary_factor} "
                           "must give an even number ≥ 2 of rotary dims")
        for i, t in enumerate(self.layer_types):
            if t not in ("full_attention", "sliding_attention"):
                bad.append(f"layer_types[{i}] is {t!r}")
            if t == "sliding_attention" and self.sliding_window <= 0:
                bad.append("sliding_window must be positive when a layer is sliding_attention")
        if self.hidden_act not in ("silu", "relu2"):
            bad.append(f"hidden_act {self.hidden_act!r} is not supported")
        if self.n_routed_experts > 0:
            e, z, k = self.n_routed_experts, self.zero_expert_num, self.num_experts_per_tok
            if not 1 <= k <= e + z:
                bad.append(f"num_experts_per_tok must be in [1, {e + z}], got {k}")
            if self.moe_intermediate_size <= 0:
                bad.append("moe_intermediate_size must be positive when n_routed_experts > 0")
            if self.scoring_func not in ("sigmoid", "softmax"):
                bad.append(f"scoring_func {self.scoring_func!r} is not supported")
            if self.moe_hidden_act not in ("silu", "relu2"):
                bad.append(f"moe_hidden_act {self.moe_hidden_act!r} is not supported")
            if k == 1 and self.norm_topk_prob:
                bad.append("num_experts_per_tok 1 with norm_topk_prob true gives the router no gradient")
            if self.moe_balance not in ("none", "lbl", "bias_sign", "bias_pid"):
                bad.append(f"moe_balance {self.moe_balance!r} is not supported")
        if not 0 <= self.num_nextn_predict_layers <= 4:
            bad.append(f"num_nextn_predict_layers must be in [0, 4], got {self.num_nextn_predict_layers}")
        if bad:
            raise ConfigError("config: " + "; ".join(bad))

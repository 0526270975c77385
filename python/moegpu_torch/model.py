"""moegpu's model family as a torch.nn.Module, tensor for tensor.

``MoegpuModel(config)`` builds from a moegpu config.json (a dict, or a
``Config``) exactly the network runtime/model builds: the same parameters
under the same names and shapes (its ``state_dict()`` *is* a moegpu
model.safetensors), and the same arithmetic, op for op:

* token embedding (``model.embed_tokens``); for an OCR model, the patch
  embedding of each image position's column strip added to it (see
  ``patch_embedding``);
* per layer: pre-RMSNorm, causal grouped-query attention with RoPE
  (rotate-half pairs over the first ``rotary_dim`` dims of each head;
  partial rotary), global or sliding-window (query i sees keys
  i−W+1 … i; with prefix_lm the image positions also see every later
  image position), optionally with a learnable per-head sink logit that only
  enters the softmax denominator; pre-RMSNorm and a dense FFN (SwiGLU or
  ReLU²) or an MoE FFN (see ``MoE``);
* final RMSNorm and the LM head (tied to the embedding or ``lm_head``);
* D multi-token-prediction modules (DeepSeek-V3 §2.2) after the trunk,
  named ``model.layers.{L+k−1}`` as in DeepSeek-V3 checkpoints.

The RoPE angles are computed in float64 and rounded once (moegpu reduces
them exactly in f32), so the two agree to the rounding of sin and cos.
"""

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import Config

__all__ = ["MoegpuModel", "ModelOutput", "MoEInfo", "LossOutput", "shift_tokens", "PAD", "IGNORE"]

#: The padding token id of moegpu's tokenizer (runtime/tasks.PAD); MTP
#: modules read it past the end of a sequence.
PAD = 0
#: Target value of a position without loss (moegpu uses 0xFFFFFFFF).
IGNORE = -1


def _f32(x):
    """x rounded to float32 and back, as moegpu's Go code passes f32 constants to kernels."""
    return float(np.float32(x))


class RMSNorm(nn.Module):
    """y = x · rsqrt(mean(x²) + eps) · weight (graph.RMSNorm)."""

    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = _f32(eps)

    def forward(self, x):
        """Normalises the last axis of x."""
        rstd = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * rstd * self.weight


def rope_tables(positions, rotary, theta, dtype):
    """cos and sin of θ = pos · theta^(−2i/rotary), i < rotary/2, computed in
    float64 and rounded to dtype; positions (..., T) integer."""
    inv = theta ** (-2.0 * torch.arange(rotary // 2, dtype=torch.float64) / rotary)
    ang = positions.to(torch.float64).unsqueeze(-1) * inv.to(positions.device)
    return torch.cos(ang).to(dtype), torch.sin(ang).to(dtype)


def apply_rope(x, cos, sin):
    """Rotates pairs (i, i + R/2), i < R/2, of each head of x (B, T, H, dh);
    dims R … dh−1 pass through (graph.RoPE). cos, sin: (T, R/2) or (B, T, R/2)."""
    half = cos.shape[-1]
    c, s = cos.unsqueeze(-2), sin.unsqueeze(-2)
    if c.dim() == 3:  # (T, 1, R/2): broadcast over the batch
        c, s = c.unsqueeze(0), s.unsqueeze(0)
    x1, x2, rest = x[..., :half], x[..., half:2 * half], x[..., 2 * half:]
    return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s, rest], dim=-1)


class Attention(nn.Module):
    """Causal GQA self-attention with RoPE, an optional sliding window and an
    optional per-head sink (layers.SelfAttention, graph.Attention):
    p_ij = exp(a_ij − m) / (exp(s_h − m) + Σ_j exp(a_ij − m)),
    a_ij = float32(1/√dh) · q_i·k_j."""

    def __init__(self, hidden, heads, kv_heads, head_dim, window, sink, prefix=0):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim, self.window = heads, kv_heads, head_dim, window
        self.prefix = prefix  # leading positions that see each other both ways (prefix-LM)
        self.q_proj = nn.Linear(hidden, heads * head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, kv_heads * head_dim, bias=False)
        self.o_proj = nn.Linear(heads * head_dim, hidden, bias=False)
        if sink:
            self.sinks = nn.Parameter(torch.zeros(heads))
        else:
            self.sinks = None
        self.scale = _f32(1 / math.sqrt(head_dim))

    def forward(self, h, cos, sin):
        """h (B, T, hidden) → (B, T, hidden); cos, sin from rope_tables."""
        B, T, _ = h.shape
        H, KV, dh = self.heads, self.kv_heads, self.head_dim
        q = apply_rope(self.q_proj(h).view(B, T, H, dh), cos, sin).transpose(1, 2)
        k = apply_rope(self.k_proj(h).view(B, T, KV, dh), cos, sin).transpose(1, 2)
        v = self.v_proj(h).view(B, T, KV, dh).transpose(1, 2)
        if H != KV:
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        a = torch.matmul(q, k.transpose(-1, -2)) * self.scale  # (B, H, T, T)
        i = torch.arange(T, device=h.device)
        keep = (i[None, :] <= i[:, None]) | (i[None, :] < self.prefix)
        if self.window > 0:
            keep = keep & (i[:, None] - i[None, :] < self.window)
        a = a.masked_fill(~keep, float("-inf"))
        if self.sinks is not None:
            s = self.sinks.to(a.dtype).view(1, H, 1, 1).expand(B, H, T, 1)
            p = torch.softmax(torch.cat([a, s], dim=-1), dim=-1)[..., :T]
        else:
            p = torch.softmax(a, dim=-1)
        o = torch.matmul(p, v).transpose(1, 2).reshape(B, T, H * dh)
        return self.o_proj(o)


def _act(name, gate, up):
    """The FFN nonlinearity: SwiGLU silu(gate)·up, or ReLU² relu(up)²."""
    if name == "relu2":
        return torch.relu(up).square()
    return F.silu(gate) * up


class FFN(nn.Module):
    """Dense FFN (layers.FFN): SwiGLU down(silu(gate(x))·up(x)) or ReLU²
    down(relu(up(x))²)."""

    def __init__(self, d, inter, act):
        super().__init__()
        self.act = act
        if act != "relu2":
            self.gate_proj = nn.Linear(d, inter, bias=False)
        self.up_proj = nn.Linear(d, inter, bias=False)
        self.down_proj = nn.Linear(inter, d, bias=False)

    def forward(self, x):
        """x (..., d) → (..., d)."""
        gate = self.gate_proj(x) if self.act != "relu2" else None
        return self.down_proj(_act(self.act, gate, self.up_proj(x)))


class _Weight(nn.Module):
    """Holds one parameter called ``weight`` so that stacked expert
    projections get their checkpoint names (``experts.up_proj.weight``)."""

    def __init__(self, *shape):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(*shape))


class Router(nn.Module):
    """The router's parameters: ``gate.weight`` (E+Z, d), the balancing
    bias ``gate.e_score_correction_bias`` (E+Z; a buffer: selects, never
    weighs, gets no gradient) and the controllers' integrators
    ``gate.controller_state`` (2·(E+Z); a non-persistent buffer, saved to
    optimizer.safetensors as moegpu does)."""

    def __init__(self, experts, d):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(experts, d))
        self.register_buffer("e_score_correction_bias", torch.zeros(experts))
        self.register_buffer("controller_state", torch.zeros(2 * experts), persistent=False)


class Experts(nn.Module):
    """E routed experts' weights, stacked per projection as moegpu stores
    them: gate_proj and up_proj (E, I, d) (gate_proj for SwiGLU only),
    down_proj (E, d, I), each expert in nn.Linear's (out, in) layout."""

    def __init__(self, e, d, inter, act):
        super().__init__()
        self.act = act
        if act != "relu2":
            self.gate_proj = _Weight(e, inter, d)
        self.up_proj = _Weight(e, inter, d)
        self.down_proj = _Weight(e, d, inter)

    def expert(self, e, x):
        """Expert e's FFN on rows x (r, d)."""
        up = x @ self.up_proj.weight[e].t()
        gate = x @ self.gate_proj.weight[e].t() if self.act != "relu2" else None
        return _act(self.act, gate, up) @ self.down_proj.weight[e].t()


@dataclass
class MoEInfo:
    """What one MoE layer computed for a batch: router affinities ``scores``
    (n, E+Z), chosen experts ``idx`` (n, K) best first, ``gates`` (n, K),
    ``skipped`` (n) tokens that took a copy expert, per-expert ``load``
    (slots per routed expert before the capacity cut), ``dropped`` slots and
    the balance loss ``aux_loss`` (None unless moe_balance is "lbl")."""
    scores: torch.Tensor
    idx: torch.Tensor
    gates: torch.Tensor
    skipped: torch.Tensor
    load: torch.Tensor
    dropped: int
    aux_loss: Optional[torch.Tensor]
    #: The smallest gap between a token's k-th and (k+1)-th selection keys
    #: (s + b): below ~1e-6 one rounding could change the choice.
    margin: float


class MoE(nn.Module):
    """The MoE FFN (moe.Build): per token, router logits x·W_rᵀ over E routed
    and Z copy experts; affinities s (sigmoid, or softmax over all E+Z); the
    top-K of s + b (b = e_score_correction_bias only selects; ties to the
    lower id); gates scale·s[i], normalised over the chosen K when
    norm_topk_prob. A token that chose a copy expert skips the whole FFN: its
    output is Σ_copy g·x (no routed, no shared expert runs for it).
    Otherwise y = Σ_k g_k·expert_k(x) + shared(x). With a capacity factor
    cf, each expert keeps its first ⌈cf·n·K/E⌉ slots in token order (the
    rest are dropped: zero contribution). The balance loss ("lbl") is
    α·Σ_i f_i·P_i, f_i = E/(K·n)·#{chosen i} (constant), P_i = mean_t
    s[t,i]/Σ_{j<E} s[t,j], over the n tokens of the batch."""

    def __init__(self, c: Config):
        super().__init__()
        self.E, self.Z, self.K = c.n_routed_experts, c.zero_expert_num, c.num_experts_per_tok
        self.softmax = c.scoring_func == "softmax"
        self.norm = c.norm_topk_prob
        self.scale = _f32(c.routed_scaling_factor)
        self.capacity_factor = c.capacity_factor
        self.lbl = c.moe_balance == "lbl"
        self.alpha = _f32(c.aux_loss_alpha)
        d = c.hidden_size
        self.gate = Router(self.E + self.Z, d)
        self.experts = Experts(self.E, d, c.moe_intermediate_size, c.moe_hidden_act)
        if c.n_shared_experts > 0:
            self.shared_experts = FFN(d, c.n_shared_experts * c.moe_intermediate_size, c.moe_hidden_act)
        else:
            self.shared_experts = None

    def forward(self, x):
        """x (n, d) → (y (n, d), MoEInfo)."""
        n = x.shape[0]
        E, K = self.E, self.K
        logits = x @ self.gate.weight.t()
        s = torch.softmax(logits, dim=-1) if self.softmax else torch.sigmoid(logits)
        key = s.detach().float() + self.gate.e_score_correction_bias.float()
        order = torch.sort(key, dim=-1, descending=True, stable=True).indices
        idx = order[:, :K]
        margin = float("inf")
        if key.shape[1] > K:
            ks = key.gather(1, order[:, K - 1:K + 1])
            margin = float((ks[:, 0] - ks[:, 1]).min()) if n else margin
        sel = s.gather(1, idx)
        gates = self.scale * sel / sel.sum(-1, keepdim=True) if self.norm else self.scale * sel
        is_copy = idx >= E
        skipped = is_copy.any(dim=-1)
        y = x * (gates * is_copy).sum(-1, keepdim=True)
        cap = 0
        if self.capacity_factor > 0:
            cap = max(1, math.ceil(self.capacity_factor * float(n * K) / float(E)))
        live = ~skipped
        load = torch.zeros(E, dtype=torch.long)
        dropped = 0
        for e in range(E):
            t, k = ((idx == e) & live[:, None]).nonzero(as_tuple=True)  # row-major: token order
            load[e] = t.numel()
            if cap and t.numel() > cap:
                dropped += t.numel() - cap
                t, k = t[:cap], k[:cap]
            if t.numel() == 0:
                continue
            out = self.experts.expert(e, x[t]) * gates[t, k].unsqueeze(-1)
            y = y.index_add(0, t, out)
        if self.shared_experts is not None:
            rows = live.nonzero(as_tuple=True)[0]
            if rows.numel():
                y = y.index_add(0, rows, self.shared_experts(x[rows]))
        aux = None
        if self.lbl:
            f = torch.zeros(E, dtype=s.dtype, device=s.device)
            routed = idx[idx < E]
            f = f.index_add(0, routed, torch.ones_like(routed, dtype=s.dtype)) * (E / (K * n))
            sr = s[:, :E]
            P = (sr / sr.sum(-1, keepdim=True)).sum(0) / n
            aux = self.alpha * (f * P).sum()
        return y, MoEInfo(s, idx, gates, skipped, load, dropped, aux, margin)


class DecoderLayer(nn.Module):
    """One transformer block: x += attn(norm(x)); x += ffn(norm(x))."""

    def __init__(self, c: Config, i):
        super().__init__()
        d = c.hidden_size
        self.input_layernorm = RMSNorm(d, c.rms_norm_eps)
        self.self_attn = Attention(d, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.window(i),
                                   c.attention_sink, c.attention_prefix)
        self.post_attention_layernorm = RMSNorm(d, c.rms_norm_eps)
        self.mlp = MoE(c) if c.is_moe_layer(i) else FFN(d, c.intermediate_size, c.hidden_act)

    def forward(self, x, cos, sin, infos):
        """x (B, T, d) → (B, T, d); an MoE layer appends its MoEInfo to infos."""
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        h = self.post_attention_layernorm(x)
        if isinstance(self.mlp, MoE):
            B, T, d = h.shape
            f, info = self.mlp(h.reshape(B * T, d))
            infos.append(info)
            return x + f.view(B, T, d)
        return x + self.mlp(h)


class _SharedHead(nn.Module):
    """``shared_head.norm``: the MTP module's norm before the shared LM head."""

    def __init__(self, d, eps):
        super().__init__()
        self.norm = RMSNorm(d, eps)


class MTPLayer(nn.Module):
    """MTP module k (layers.MTP): h' = eh_proj([enorm(Emb(t_{i+k})); hnorm(h)])
    (embedding first), then one block with sliding-window attention
    (mtp_sliding_window) and a dense FFN (mtp_intermediate_size, hidden_act);
    logits_k = head(shared_head.norm(h^k))."""

    def __init__(self, c: Config):
        super().__init__()
        d, eps = c.hidden_size, c.rms_norm_eps
        self.enorm = RMSNorm(d, eps)
        self.hnorm = RMSNorm(d, eps)
        self.eh_proj = nn.Linear(2 * d, d, bias=False)
        self.input_layernorm = RMSNorm(d, eps)
        self.self_attn = Attention(d, c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                                   c.mtp_sliding_window, c.attention_sink)
        self.post_attention_layernorm = RMSNorm(d, eps)
        self.mlp = FFN(d, c.mtp_intermediate_size, c.hidden_act)
        self.shared_head = _SharedHead(d, eps)

    def forward(self, h, emb, cos, sin):
        """h: h^{k−1} (B, T, d); emb: embeddings of the tokens k ahead. Returns
        (h^k, the normed h^k for the head)."""
        x = self.eh_proj(torch.cat([self.enorm(emb), self.hnorm(h)], dim=-1))
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x, self.shared_head.norm(x)


class PatchEmbed(nn.Module):
    """The OCR model's patch embedding (layers.PatchEmbedding):
    ``model.patch_embed.proj.weight`` (hidden, image_height·patch_width)."""

    def __init__(self, c: Config):
        super().__init__()
        self.height, self.patch = c.image_height, c.patch_width
        self.proj = nn.Linear(c.image_height * c.patch_width, c.hidden_size, bias=False)

    def forward(self, pixel_values, patch_cols):
        """pixel_values (B, H, W) (1 = ink); patch_cols (B, T) long, each
        position's strip index, or −1 (or any index past the image) at text
        positions, which get zeros. Strip c of image b is the columns
        c·P … c·P+P−1, flattened h-major (y[h·P + j] = image[b, h, c·P + j]);
        pixels past W read as 0 (graph.ColumnPatches)."""
        B, Hh, W = pixel_values.shape
        P = self.patch
        strips = -(-W // P)
        img = F.pad(pixel_values, (0, strips * P - W))
        img = img.view(B, Hh, strips, P).permute(0, 2, 1, 3).reshape(B, strips, Hh * P)
        img = torch.cat([img, img.new_zeros(B, 1, Hh * P)], dim=1)  # row `strips` = zeros
        cols = patch_cols.clone()
        cols[(cols < 0) | (cols >= strips)] = strips
        x = torch.gather(img, 1, cols.unsqueeze(-1).expand(-1, -1, Hh * P))
        return self.proj(x)


class _Inner(nn.Module):
    """The ``model.`` prefix of the checkpoint names."""

    def __init__(self, c: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        if c.has_image:
            self.patch_embed = PatchEmbed(c)
        layers = [DecoderLayer(c, i) for i in range(c.num_hidden_layers)]
        layers += [MTPLayer(c) for _ in range(c.num_nextn_predict_layers)]
        self.layers = nn.ModuleList(layers)
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


@dataclass
class ModelOutput:
    """A forward pass: ``logits`` (B, T, vocab); ``hidden`` the trunk's last
    hidden state before the final norm (B, T, d); ``mtp_logits[k−1]``
    (B, T, vocab) module k's predictions of the token k+1 ahead (when asked
    for); ``moe`` each MoE layer's ``MoEInfo``, in layer order."""
    logits: torch.Tensor
    hidden: torch.Tensor
    mtp_logits: List[torch.Tensor] = field(default_factory=list)
    moe: List[MoEInfo] = field(default_factory=list)


@dataclass
class LossOutput:
    """The training loss as moegpu computes it: ``total`` = ``lm`` +
    λ/D·Σ ``mtp`` + Σ ``aux`` (the MoE layers' balance losses)."""
    total: torch.Tensor
    lm: torch.Tensor
    mtp: List[torch.Tensor]
    aux: List[torch.Tensor]
    output: ModelOutput


def shift_tokens(x, k, fill):
    """x (B, T) shifted k ahead within each row, ``fill`` past the end
    (model.ShiftForMTP)."""
    out = torch.full_like(x, fill)
    if k < x.shape[1]:
        out[:, :x.shape[1] - k] = x[:, k:]
    return out


class MoegpuModel(nn.Module):
    """The whole moegpu model family from a config.json dict (or ``Config``):
    dense and MoE FFNs, GQA with sliding-window or global attention, sinks,
    partial RoPE, MTP modules and the OCR patch embedding. ``state_dict()``
    holds exactly the tensors of moegpu's model.safetensors, under the same
    names and shapes (``checkpoint.load`` / ``checkpoint.save`` read and write
    them, nothing converted)."""

    def __init__(self, config):
        super().__init__()
        self.config = config if isinstance(config, Config) else Config(config)
        c = self.config
        self.model = _Inner(c)
        if not c.tie_word_embeddings:
            self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        else:
            self.lm_head = None
        self.init_weights(0)
        #: What checkpoint.load read besides the weights (config bytes,
        #: metadata, optimizer tensors, trainer state), for a save that
        #: writes the checkpoint back unchanged.
        self.checkpoint_extras = None

    # ---- construction ----

    def init_weights(self, seed, std=None):
        """Draws the parameters from moegpu's init distributions (normal with
        initializer_range for input-side weights, initializer_range/√(2L)
        for the projections into the residual stream, ones for norm gains,
        zeros for sinks and biases), from a torch generator seeded with
        ``seed``. The numbers differ from moegpu's own init (a different
        generator); the distributions do not. ``std`` overrides
        initializer_range."""
        c = self.config
        std = c.initializer_range if std is None else std
        out_std = std / math.sqrt(2 * c.num_hidden_layers)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1)
                elif name.endswith(".sinks"):
                    p.zero_()
                else:
                    s = out_std if name.endswith(("o_proj.weight", "down_proj.weight")) else std
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).float() * s)
            for name, b in self.named_buffers():
                b.zero_()

    # ---- forward ----

    @property
    def mtp_layers(self):
        """The MTP modules, module k at index k−1."""
        return list(self.model.layers)[self.config.num_hidden_layers:]

    def head(self, h):
        """The LM head: the tied embedding table or lm_head."""
        if self.lm_head is None:
            return h @ self.model.embed_tokens.weight.t()
        return self.lm_head(h)

    def patch_embedding(self, pixel_values, patch_cols):
        """The OCR model's patch embedding of each position's column strip
        (zeros at text positions), added to the token embeddings."""
        return self.model.patch_embed(pixel_values, patch_cols)

    def forward(self, tokens, positions=None, mtp=False, pixel_values=None, patch_cols=None):
        """tokens (B, T) long → ModelOutput. positions (T) or (B, T) default to
        0 … T−1. ``mtp`` also runs the MTP modules (module k reads the tokens
        k ahead within each row, PAD past the end). An OCR model takes
        ``pixel_values`` (B, image_height, max_image_width), 1 = ink, and
        optionally ``patch_cols`` (B, T), which default to moegpu's layout
        (position p < image_tokens reads strip p, later positions none;
        see ``PatchEmbed``)."""
        c = self.config
        B, T = tokens.shape
        if positions is None:
            positions = torch.arange(T, device=tokens.device)
        x = self.model.embed_tokens(tokens)
        if c.has_image:
            if pixel_values is None:
                raise ValueError("an image model needs pixel_values (B, image_height, max_image_width)")
            if patch_cols is None:  # the image tokens come first: position p < image_tokens reads strip p
                pos = positions.expand(B, T) if positions.dim() == 1 else positions
                patch_cols = torch.where(pos < c.image_tokens, pos, torch.full_like(pos, -1))
            x = x + self.patch_embedding(pixel_values.to(x.dtype), patch_cols)
        cos, sin = rope_tables(positions, c.rotary_dim, float(c.rope_theta), x.dtype)
        infos = []
        for layer in list(self.model.layers)[:c.num_hidden_layers]:
            x = layer(x, cos, sin, infos)
        out = ModelOutput(logits=self.head(self.model.norm(x)), hidden=x, moe=infos)
        if mtp:
            h = x
            for k, layer in enumerate(self.mtp_layers, start=1):
                emb = self.model.embed_tokens(shift_tokens(tokens, k, PAD))
                h, normed = layer(h, emb, cos, sin)
                out.mtp_logits.append(self.head(normed))
        return out

    def loss(self, tokens, targets, weights=None, mtp_lambda=None, mtp_weights=None, **kw):
        """The training loss moegpu's trainer minimises, for a batch laid out
        as runtime/tasks lays it out: targets (B, T) long, IGNORE (−1) where
        no loss; weights (B, T) default to 1/count at the targets. MTP module
        k is scored on the targets shifted k ahead (``mtp_weights[k−1]``,
        default 1/count of those), weighted λ/D (λ = mtp_lambda, default
        mtp_loss_weight); the MoE layers' balance losses are added. Other
        keywords go to ``forward`` (an OCR model's pixel_values)."""
        c = self.config
        D = c.num_nextn_predict_layers
        out = self(tokens, mtp=D > 0, **kw)
        V = c.vocab_size

        def ce(logits, tgt, w):
            if w is None:
                mask = tgt != IGNORE
                w = torch.where(mask, torch.tensor(_f32(1 / max(int(mask.sum()), 1))), torch.tensor(0.0))
            per = F.cross_entropy(logits.reshape(-1, V), tgt.clamp(min=0).reshape(-1), reduction="none")
            return (per * w.reshape(-1).to(per.dtype)).sum()

        lm = ce(out.logits, targets, weights)
        total = lm
        mtp = []
        if D > 0:
            lam = c.mtp_loss_weight if mtp_lambda is None else mtp_lambda
            for k, lg in enumerate(out.mtp_logits, start=1):
                w = None if mtp_weights is None else mtp_weights[k - 1]
                mtp.append(ce(lg, shift_tokens(targets, k, IGNORE), w))
                total = total + mtp[-1] * _f32(lam / D)
        aux = [i.aux_loss for i in out.moe if i.aux_loss is not None]
        for a in aux:
            total = total + a
        return LossOutput(total, lm, mtp, aux, out)

    @torch.no_grad()
    def generate(self, prompt, max_new, eos=2, **kw):
        """Greedy continuation of prompt (a list of ids), recomputing the whole
        sequence each step (ties to the lower id, as moegpu). Returns the new
        ids, stopping after eos. Other keywords go to ``forward``."""
        ids = list(prompt)
        new = []
        dev = self.model.embed_tokens.weight.device
        for _ in range(max_new):
            lg = self(torch.tensor([ids], device=dev), **kw).logits[0, -1]
            nxt = int(torch.argmax(lg))  # first maximum: the lower id
            new.append(nxt)
            ids.append(nxt)
            if nxt == eos:
                break
        return new

"""PyTorch and moegpu compute the same logits, MTP logits, losses and
gradients, for every shipped config and for random small configs that
switch on what the shipped ones leave off.

Each model is drawn with ``util.strong_init`` in PyTorch, saved as a moegpu
checkpoint (so this is also the PyTorch → moegpu direction), and run by
``moegpu logits --grads`` on 3 rows of 40 random tokens (an OCR model:
random line images, and 40 text positions after its image positions);
PyTorch runs the same rows in float32.

Tolerances, relative to the largest magnitude of the compared tensor
(max|a − b| / max|b|):

* logits and MTP logits ≤ 1e-4; losses ≤ 1e-5;
* every parameter's gradient ≤ 1e-4.

Why: both sides compute in float32 with the same formulas, so they differ
by rounding alone, in summation order (GPU tiles against BLAS), in exp,
sin and cos (lavapipe's and llvmpipe's are a few ulp) and in where RMSNorm
and softmax round. That accumulates to ~1e-6 relative in the logits of
these ≤ 4-layer models (measured: ≤ 1e-6 on every config, the table the
tests print; moegpu against PyTorch in float64 shows the same size), so
1e-4 leaves two orders of margin for noise and still fails on any semantic
mismatch (a wrong mask, rotation, gate or expert gives 1e-2 or more).
Gradients go through twice as many ops (measured: ≤ 5e-6), hence the same
1e-4 with less margin. MoE routing is discontinuous: a token whose k-th and
(k+1)-th keys (s + b) are closer than 1e-4 could be routed differently by
one rounding, so such inputs are redrawn (rare; counted in the log).
"""

import json
import os
import unittest

import numpy as np
import torch

from . import util
from moegpu_torch import MoegpuModel, save
from moegpu_torch import safetensors as st

LOGIT_TOL, LOSS_TOL, GRAD_TOL = 1e-4, 1e-5, 1e-4
MARGIN = 1e-4
B, T = 3, 40

#: Random small configs: what the shipped configs do not cover.
RANDOM = {
    # sliding window + sinks + partial RoPE (4 of 8 dims), ReLU² dense FFN, untied head, vocab > 43, GQA 6:2
    "rand-dense-swa-sink-partial": dict(
        vocab_size=50, hidden_size=48, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2,
        head_dim=8, intermediate_size=72, hidden_act="relu2", rope_theta=500.0, partial_rotary_factor=0.5,
        max_position_embeddings=64, sliding_window=5,
        layer_types=["sliding_attention", "full_attention", "sliding_attention"], attention_sink=True,
        tie_word_embeddings=False),
    # MoE, sigmoid, normalised top-3 × 2.5, 2 shared + 2 copy experts, capacity 0.7 (drops), first layer dense,
    # head_dim ≠ hidden/heads, MQA (1 KV head), partial RoPE
    "rand-moe-sigmoid-shared-copy-capacity": dict(
        vocab_size=43, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=1,
        head_dim=12, intermediate_size=48, partial_rotary_factor=0.5, max_position_embeddings=64,
        sliding_window=7, layer_types=["full_attention", "sliding_attention", "full_attention"],
        attention_sink=True, tie_word_embeddings=True, n_routed_experts=8, num_experts_per_tok=3,
        n_shared_experts=2, moe_intermediate_size=16, zero_expert_num=2, scoring_func="sigmoid",
        norm_topk_prob=True, routed_scaling_factor=2.5, first_k_dense_replace=1, moe_balance="bias_pid",
        capacity_factor=0.7),
    # MoE, softmax, un-normalised top-2 × 1.5, ReLU² experts, 1 copy expert, balance loss, one dense layer
    "rand-moe-softmax-relu2-lbl": dict(
        vocab_size=43, hidden_size=40, num_hidden_layers=2, num_attention_heads=5, intermediate_size=64,
        partial_rotary_factor=0.25, max_position_embeddings=64, n_routed_experts=6, num_experts_per_tok=2,
        moe_intermediate_size=20, zero_expert_num=1, scoring_func="softmax", norm_topk_prob=False,
        routed_scaling_factor=1.5, moe_hidden_act="relu2", moe_balance="lbl", aux_loss_alpha=0.05,
        mlp_only_layers=[1]),
    # MoE + 3 MTP modules (window 3, ReLU² FFN of 24), untied head, λ 0.5
    "rand-moe-mtp": dict(
        vocab_size=43, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, hidden_act="relu2", max_position_embeddings=64, sliding_window=6,
        layer_types=["sliding_attention", "full_attention"], attention_sink=True, tie_word_embeddings=False,
        n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=16,
        scoring_func="sigmoid", moe_balance="lbl", num_nextn_predict_layers=3, mtp_intermediate_size=24,
        mtp_sliding_window=3, mtp_loss_weight=0.5),
    # OCR model with prefix_lm: 10 image tokens that attend both ways under a sliding window of 6
    "rand-ocr-prefix-lm": dict(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=48, max_position_embeddings=80, sliding_window=6,
        layer_types=["sliding_attention", "full_attention"], attention_sink=True, tie_word_embeddings=True,
        image_height=8, patch_width=4, max_image_width=40, prefix_lm=True),
}


def _inputs(model, seed):
    """Rows of random ids (and for an OCR model random line images, ~30 %
    ink) whose MoE routing has no near-tie (see the module comment); returns
    (tokens, extra forward arguments, redraws, dropped slots)."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    t = min(c.max_position_embeddings, c.image_tokens + T) if c.has_image else T
    for redraw in range(50):
        tok = torch.randint(0, c.vocab_size, (B, t), generator=g)
        kw = {}
        if c.has_image:
            kw["pixel_values"] = (torch.rand(B, c.image_height, c.max_image_width, generator=g) < 0.3).float()
        with torch.no_grad():
            out = model(tok, **kw)
        if all(i.margin >= MARGIN for i in out.moe):
            return tok, kw, redraw, sum(i.dropped for i in out.moe)
    raise AssertionError("no input without a routing near-tie in 50 draws")


class LogitsMatch(unittest.TestCase):
    """moegpu logits --grads against the PyTorch model, config by config."""

    results = {}

    @classmethod
    def tearDownClass(cls):
        util.report(f"{'config':40s} {'max|Δlogit|':>12s} {'rel':>9s} {'rel f64':>9s} {'mtp rel':>9s} "
                    f"{'Δloss rel':>9s} {'grad rel':>9s}  notes")
        for name, r in cls.results.items():
            util.report(f"{name:40s} {r['max_abs']:12.3e} {r['rel']:9.2e} {r['rel_f64']:9.2e} {r['mtp_rel']:9.2e} "
                        f"{r['loss_rel']:9.2e} {r['grad_rel']:9.2e}  {r['notes']}")
        path = os.path.join(util.scratch_root(), "logit_diffs.json")
        with open(path, "w") as f:
            json.dump(cls.results, f, indent=2)

    def check(self, name, cfg, seed):
        model = MoegpuModel(cfg)
        util.strong_init(model, seed)
        d = util.scratch("logits-" + name)
        ckpt = os.path.join(d, "ckpt")
        save(model, ckpt)
        tok, kw, redraws, dropped = _inputs(model, seed)
        tpath = os.path.join(d, "tokens.json")
        with open(tpath, "w") as f:
            json.dump(tok.tolist(), f)
        extra = []
        if "pixel_values" in kw:
            np.save(os.path.join(d, "pixels.npy"), kw["pixel_values"].numpy().astype(np.float32))
            extra = ["--pixels", os.path.join(d, "pixels.npy")]
        D = model.config.num_nextn_predict_layers
        args = ["logits", "--checkpoint", ckpt, "--tokens", tpath, "--out", os.path.join(d, "logits.npy"),
                "--grads", os.path.join(d, "grads.safetensors")]
        if D:
            args += ["--mtp-out", os.path.join(d, "mtp.npy")]
        util.moegpu(*args, *extra)
        got = np.load(os.path.join(d, "logits.npy"))
        grads, _ = st.read(os.path.join(d, "grads.safetensors"))

        tgt = torch.full_like(tok, -1)
        tgt[:, :-1] = tok[:, 1:]
        loss = model.loss(tok, tgt, **kw)
        loss.total.backward()
        want = loss.output.logits.detach().numpy()
        with torch.no_grad():
            want64 = MoegpuModel(cfg).double()
            want64.load_state_dict(model.state_dict())
            want64 = want64(tok, **{k: v.double() for k, v in kw.items()}).logits.numpy()

        self.assertEqual(got.shape, want.shape)
        r = {"max_abs": float(np.abs(got - want).max()), "rel": util.rel_diff(got, want),
             "rel_f64": util.rel_diff(got, want64), "mtp_rel": 0.0,
             "notes": f"{redraws} redraws, {dropped} dropped slots" if loss.output.moe else ""}
        self.assertLessEqual(r["rel"], LOGIT_TOL, f"{name}: logits differ by {r['rel']:.3g} relative")
        if D:
            mtp = np.load(os.path.join(d, "mtp.npy"))
            want_mtp = np.stack([x.detach().numpy() for x in loss.output.mtp_logits])
            self.assertEqual(mtp.shape, want_mtp.shape)
            r["mtp_rel"] = util.rel_diff(mtp, want_mtp)
            self.assertLessEqual(r["mtp_rel"], LOGIT_TOL, f"{name}: MTP logits differ by {r['mtp_rel']:.3g}")
            for k, ce in enumerate(loss.mtp, start=1):
                self.assertLessEqual(util.rel_diff(grads[f"mtp.{k}.loss"], ce.item()), LOSS_TOL, f"{name}: mtp.{k}.loss")
        r["loss_rel"] = max(util.rel_diff(grads["loss"], loss.total.item()),
                            util.rel_diff(grads["lm_loss"], loss.lm.item()))
        self.assertLessEqual(r["loss_rel"], LOSS_TOL, f"{name}: losses differ")
        names = {n for n, _ in model.named_parameters()}
        self.assertEqual(names, set(grads) - {"loss", "lm_loss"} - {f"mtp.{k}.loss" for k in range(1, D + 1)})
        worst = 0.0
        for n, p in model.named_parameters():
            rd = util.rel_diff(grads[n], p.grad.numpy())
            self.assertLessEqual(rd, GRAD_TOL, f"{name}: gradient of {n} differs by {rd:.3g} relative")
            worst = max(worst, rd)
        r["grad_rel"] = worst
        LogitsMatch.results[name] = r

    def test_shipped_configs(self):
        for i, name in enumerate(util.SHIPPED):
            with self.subTest(config=name):
                self.check(name, util.shipped_config(name), seed=100 + i)

    def test_random_configs(self):
        for i, (name, cfg) in enumerate(RANDOM.items()):
            with self.subTest(config=name):
                self.check(name, dict(cfg), seed=200 + i)


if __name__ == "__main__":
    unittest.main()

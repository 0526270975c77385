"""A checkpoint goes moegpu → PyTorch → moegpu unchanged, byte for byte, and
the PyTorch model generates what moegpu generates from it."""

import filecmp
import os
import unittest

import torch

from . import util
from moegpu_torch import MoegpuModel, load, save, tasks
from moegpu_torch.checkpoint import CONFIG_FILE, OPTIMIZER_FILE, STATE_FILE, WEIGHTS_FILE

PROMPTS = ["hello", "abcdefg", "zyx"]
MAX_NEW = 12


def greedy(model, prompt, max_new):
    """Greedy ids after prompt, and the smallest top-1 − top-2 logit gap met
    or top-k routing margin (where one rounding could choose otherwise)."""
    ids, new, gap = list(prompt), [], float("inf")
    with torch.no_grad():
        for _ in range(max_new):
            lg = model(torch.tensor([ids])).logits[0, -1]
            top = torch.topk(lg, 2).values
            gap = min(gap, float(top[0] - top[1]))
            nxt = int(torch.argmax(lg))
            new.append(nxt)
            ids.append(nxt)
            if nxt == tasks.EOS:
                break
        for info in model(torch.tensor([ids])).moe:  # a routing near-tie may go either way too
            gap = min(gap, 10 * info.margin)  # router keys (s + b ∈ (0, 2)) round at ~1e-7, logits at ~1e-6
    return new, gap


class RoundTrip(unittest.TestCase):
    """moegpu train → moegpu_torch.load → moegpu_torch.save → moegpu generate."""

    def check(self, config, steps):
        d = util.scratch("roundtrip-" + config)
        a, b = os.path.join(d, "moegpu"), os.path.join(d, "torch")
        util.moegpu("train", "--config", config, "--task", "reverse", "--steps", str(steps), "--eval", "0",
                    "--out", a)
        model = load(a)
        save(model, b)
        for f in (CONFIG_FILE, WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE):
            self.assertTrue(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False),
                            f"{config}: {f} changed on the way through PyTorch")
        for p in PROMPTS:
            ga = util.moegpu("generate", "--checkpoint", a, "--prompt", p, "--max-tokens", str(MAX_NEW))
            gb = util.moegpu("generate", "--checkpoint", b, "--prompt", p, "--max-tokens", str(MAX_NEW))
            self.assertEqual(ga, gb, f"{config}: moegpu generates differently from the re-saved checkpoint")
            new, gap = greedy(model, tasks.prompt_tokens(p), MAX_NEW)
            got = tasks.decode_answer(new)
            if gap > 1e-4:  # otherwise a near-tie may go either way in f32
                self.assertEqual(got, ga.strip("\n"), f"{config}: PyTorch generates {got!r} for {p!r}")
            util.report(f"{config}: {p!r} → {ga.strip()!r} (PyTorch: {got!r}, smallest top-2 gap {gap:.2e})")

    def test_a_checkpoint_written_by_pytorch_generates_the_same_text_in_moegpu(self):
        # Strongly initialised weights give varied, confident continuations; prompt + new tokens (24)
        # pass the sliding window (16), so moegpu's ring-buffer KV cache is exercised against
        # PyTorch's full recomputation.
        for i, config in enumerate(["tiny-dense", "tiny-moe-relu2", "tiny-moe-mtp"]):
            with self.subTest(config=config):
                d = util.scratch("torch-written-" + config)
                model = MoegpuModel(util.shipped_config(config))
                util.strong_init(model, 300 + i)
                with torch.no_grad():  # a weaker tied embedding, else the model repeats its input
                    model.model.embed_tokens.weight.mul_(0.3)
                save(model, d)
                for p in ["abcdefghij", "hello"]:
                    ga = util.moegpu("generate", "--checkpoint", d, "--prompt", p, "--max-tokens", str(MAX_NEW))
                    new, gap = greedy(model, tasks.prompt_tokens(p), MAX_NEW)
                    got = tasks.decode_answer(new)
                    if gap > 1e-4:
                        self.assertEqual(got, ga.strip("\n"), f"{config}: PyTorch generates {got!r} for {p!r}")
                    util.report(f"{config} (PyTorch-written): {p!r} → {ga.strip()!r} (PyTorch: {got!r}, "
                                f"smallest top-2 gap {gap:.2e})")

    def test_dense_checkpoint(self):
        self.check("tiny-dense", 20)

    def test_moe_mtp_checkpoint(self):
        self.check("tiny-moe-mtp", 5)

    def test_ocr_checkpoint(self):
        # The OCR model (patch embedding, MoE, MTP): one moegpu training step on rendered lines, through
        # PyTorch and back; moegpu ocr reads a sample image alike from both.
        d = util.scratch("roundtrip-ocr")
        a, b = os.path.join(d, "moegpu"), os.path.join(d, "torch")
        util.moegpu("train", "--config", "ocr-small", "--task", "ocr", "--steps", "1", "--eval", "0", "--out", a)
        save(load(a), b)
        for f in (CONFIG_FILE, WEIGHTS_FILE, OPTIMIZER_FILE, STATE_FILE):
            self.assertTrue(filecmp.cmp(os.path.join(a, f), os.path.join(b, f), shallow=False), f)
        img = os.path.join(util.ROOT, "assets", "samples", "receipt.png")
        self.assertEqual(util.moegpu("ocr", "--model", a, img), util.moegpu("ocr", "--model", b, img))


if __name__ == "__main__":
    unittest.main()

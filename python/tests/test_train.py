"""moegpu_torch/train.py trains as moegpu's trainer does, on one process and
under torchrun with two (DDP over gloo), and writes checkpoints that moegpu
generates from and resumes."""

import json
import os
import shutil
import subprocess
import sys
import unittest

import torch

from . import util
from .test_roundtrip import greedy
from moegpu_torch import MoegpuModel, load, save, tasks

TRAIN = os.path.join(util.ROOT, "python", "moegpu_torch", "train.py")
CONFIG = "tiny-moe-mtp"  # MoE (sign-rule bias, skip-rate PID, copy + shared experts) and 4 MTP modules


def metrics(d):
    """Each step's metrics.jsonl record, by step."""
    with open(os.path.join(d, "metrics.jsonl")) as f:
        return {r["step"]: r for r in map(json.loads, f)}


def train_py(*args, nproc=1):
    """Runs train.py, under torchrun with nproc processes when nproc > 1."""
    if nproc > 1:
        # --redirects/--tee 2: Debian's torch 1.13 on Python 3.11 cannot parse the default 0 (an IntFlag
        # iteration change drops Std.NONE); any other value works on every version.
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--redirects", "2",
               "--tee", "2", "--master_port", str(29500 + os.getpid() % 1000), TRAIN, *args]
    else:
        cmd = [sys.executable, TRAIN, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout + r.stderr


class Train(unittest.TestCase):
    """train.py against moegpu train, and torchrun."""

    def test_one_process_trains_as_moegpus_trainer(self):
        # The same weights at step 0, then three steps each: moegpu train --resume and train.py --resume
        # draw the same batches (same seeds, same generators), so per-step losses agree to 1e-5 and
        # gradient norms to 1e-4 (measured: ~1e-7); the weights after three AdamW steps to 1e-3 of
        # each tensor's scale (measured: 1.5e-4 at worst, the router, where Adam's first steps move a
        # weight by ~lr whatever its gradient's size, so a gradient near 0 may step either way), and
        # the sign-rule and skip-rate controllers leave the same biases.
        d = util.scratch("train-vs-moegpu")
        a, b = os.path.join(d, "moegpu"), os.path.join(d, "torch")
        model = MoegpuModel(util.shipped_config(CONFIG))
        model.init_weights(5)
        save(model, a, step=0, task="reverse", total_steps=3)
        shutil.copytree(a, b)
        util.moegpu("train", "--config", os.path.join(a, "config.json"), "--task", "reverse", "--resume", "--steps",
                    "3", "--out", a, "--eval", "0")
        train_py("--resume", "--task", "reverse", "--steps", "3", "--out", b)
        ma, mb = metrics(a), metrics(b)
        for s in (1, 2, 3):
            for key, tol in (("loss", 1e-5), ("grad_norm", 1e-4), ("lr", 1e-12)):
                ra, rb = ma[s][key], mb[s][key]
                self.assertLessEqual(abs(ra - rb), tol * abs(ra), f"step {s} {key}: moegpu {ra}, PyTorch {rb}")
            util.report(f"step {s}: loss moegpu {ma[s]['loss']:.7f} PyTorch {mb[s]['loss']:.7f}; "
                        f"|g| {ma[s]['grad_norm']:.6f} / {mb[s]['grad_norm']:.6f}")
        wa, wb = load(a).state_dict(), load(b).state_dict()
        for name in wa:
            rd = util.rel_diff(wb[name].numpy(), wa[name].numpy())
            self.assertLessEqual(rd, 1e-3, f"{name} after 3 steps differs by {rd:.3g} relative")
            if name.endswith("e_score_correction_bias"):
                torch.testing.assert_close(wb[name], wa[name], rtol=0, atol=1e-6, msg=f"{name}")

    def test_torchrun_two_processes_train_a_checkpoint_moegpu_runs(self):
        d = util.scratch("torchrun")
        two, one = os.path.join(d, "two"), os.path.join(d, "one")
        log = train_py("--config", CONFIG, "--task", "reverse", "--steps", "4", "--out", two, nproc=2)
        self.assertIn("(2 processes)", log)
        train_py("--config", CONFIG, "--task", "reverse", "--steps", "4", "--out", one)
        m2, m1 = metrics(two), metrics(one)
        for s in range(1, 5):  # DDP over halves of each batch is the whole batch's step
            self.assertLessEqual(abs(m2[s]["loss"] - m1[s]["loss"]), 1e-5 * m1[s]["loss"], f"step {s}")
            self.assertEqual(m2[s]["extras"]["world_size"], 2)
        out = util.moegpu("generate", "--checkpoint", two, "--prompt", "abcdef", "--max-tokens", "8")
        new, gap = greedy(load(two), tasks.prompt_tokens("abcdef"), 8)
        if gap > 1e-4:
            self.assertEqual(tasks.decode_answer(new), out.strip("\n"))
        util.report(f"torchrun checkpoint: moegpu generate 'abcdef' → {out.strip()!r}")
        self.assertIn("exact match on reverse", util.moegpu("eval", "--checkpoint", two, "--task", "reverse", "--n", "3"))
        util.moegpu("train", "--config", os.path.join(two, "config.json"), "--task", "reverse", "--resume", "--steps",
                    "5", "--out", two, "--eval", "0")
        self.assertEqual(load(two).checkpoint_extras["state"]["step"], 5)


if __name__ == "__main__":
    unittest.main()

"""Shared helpers of the moegpu_torch tests: the moegpu binary, scratch
directories, a test init that exercises every part of the model, and the
comparisons with their stated tolerances."""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))

import moegpu_torch  # noqa: E402

CONFIGS = os.path.join(ROOT, "assets", "configs")
SHIPPED = sorted(f[:-5] for f in os.listdir(CONFIGS) if f.endswith(".json"))

_bin = None


def moegpu_bin():
    """The moegpu binary: $MOEGPU_BIN (python/torch_test.go builds it), else
    built once with `go build` into a scratch directory."""
    global _bin
    if _bin is None:
        _bin = os.environ.get("MOEGPU_BIN")
        if not _bin:
            _bin = os.path.join(scratch_root(), "moegpu")
            subprocess.run(["go", "build", "-o", _bin, "./cmd/moegpu"], cwd=ROOT, check=True)
    return _bin


def scratch_root():
    """$MOEGPU_SCRATCH, or a temporary directory."""
    d = os.environ.get("MOEGPU_SCRATCH")
    if not d:
        d = tempfile.mkdtemp(prefix="moegpu-torch-")
    os.makedirs(d, exist_ok=True)
    return d


def scratch(name):
    """A fresh directory under the scratch root."""
    d = os.path.join(scratch_root(), name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def device_flags():
    """--backend/--adapter from MOEGPU_BACKEND/MOEGPU_ADAPTER, so the tests run
    moegpu on the adapter the Go suite runs on."""
    out = []
    if os.environ.get("MOEGPU_BACKEND"):
        out += ["--backend", os.environ["MOEGPU_BACKEND"]]
    if os.environ.get("MOEGPU_ADAPTER"):
        out += ["--adapter", os.environ["MOEGPU_ADAPTER"]]
    return out


def moegpu(*args, device=True):
    """Runs moegpu; returns its stdout; raises with its stderr on failure."""
    cmd = [moegpu_bin(), *args] + (device_flags() if device else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr}")
    return r.stdout


def shipped_config(name):
    """A shipped config as a dict."""
    with open(os.path.join(CONFIGS, name + ".json")) as f:
        return json.load(f)


def strong_init(model, seed):
    """Draws every tensor at scales that make each part of the model matter:
    embeddings N(0, 1); linear weights N(0, 1/in) (unit-scale activations,
    sharp attention); norm gains 1 + N(0, 0.2); sinks N(0, 1); routers
    N(0, 4/d) and balancing biases N(0, 0.05), so routing is far from
    uniform and the bias changes choices. Init std 0.02 would leave logits
    near zero, attention near uniform and routing near random: a weak test."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float64)
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * r)
            elif name.endswith(".sinks") or name.endswith("embed_tokens.weight"):
                p.copy_(r)
            elif name.endswith("gate.weight"):
                p.copy_(r * 2 / math.sqrt(p.shape[-1]))
            else:
                p.copy_(r / math.sqrt(p.shape[-1]))
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(0.05 * torch.randn(b.shape, generator=g, dtype=torch.float64))


def rel_diff(a, b):
    """max|a − b| / max|b|: the difference relative to the tensor's scale."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def report(line):
    """A line for the test log (go test -v shows it)."""
    print(line, file=sys.stderr, flush=True)

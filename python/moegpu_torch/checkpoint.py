"""Reading and writing moegpu checkpoint directories, nothing converted.

A checkpoint directory (runtime/train/checkpoint.go) holds:

* ``config.json``: the model config (Hugging Face field names);
* ``model.safetensors``: every parameter and each MoE layer's
  ``…mlp.gate.e_score_correction_bias``, F32, Hugging Face names, linear
  weights (out, in), metadata ``{"format": "pt", "step": "<step>"}``;
* ``optimizer.safetensors``: each parameter's AdamW moments
  ``opt.m.<name>`` and ``opt.v.<name>`` and each MoE layer's
  ``…mlp.gate.controller_state``, with the same metadata;
* ``trainer_state.json``: ``{"step", "task", "executor", "total_steps"}``.

``save`` follows moegpu's commit protocol (files written into a temporary
directory inside the checkpoint directory, renamed to ``.checkpoint.commit``
in one step, then moved over the old files with the trainer state last), so
``moegpu`` finishes a save interrupted after the commit, and a checkpoint
loaded here and saved unchanged is byte-identical to what moegpu wrote.
"""

import copy
import json
import os
import shutil
import tempfile

import numpy as np
import torch

from . import safetensors
from .model import MoegpuModel

__all__ = ["load", "save", "CheckpointError", "CONFIG_FILE", "WEIGHTS_FILE", "OPTIMIZER_FILE", "STATE_FILE"]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "trainer_state.json"
_TMP_PREFIX = ".checkpoint.tmp-"
_COMMIT = ".checkpoint.commit"


class CheckpointError(ValueError):
    """A checkpoint directory that does not hold this model (missing, extra,
    misshapen or non-finite tensors; a missing file)."""


def _recover(d):
    """Finishes a save that was interrupted after its commit (as moegpu's
    recoverSave does): moves the commit directory's files into place, the
    trainer state last."""
    cd = os.path.join(d, _COMMIT)
    if not os.path.isdir(cd):
        return
    names = [n for n in os.listdir(cd) if n != STATE_FILE] + [STATE_FILE]
    for n in names:
        if os.path.exists(os.path.join(cd, n)):
            os.replace(os.path.join(cd, n), os.path.join(d, n))
    os.rmdir(cd)


def load(d, device=None):
    """Loads the checkpoint in directory ``d`` into a new ``MoegpuModel``.

    Every tensor of the model must be in model.safetensors with its shape
    and only finite values, and nothing else may be (a checkpoint of another
    model is refused naming the tensor). The optimizer moments, controller
    state, trainer state and the config's bytes are kept in
    ``model.checkpoint_extras`` so ``save`` can write them back unchanged.
    """
    _recover(d)
    try:
        with open(os.path.join(d, CONFIG_FILE), "rb") as f:
            config_bytes = f.read()
    except FileNotFoundError:
        raise CheckpointError(f"{d}: no {CONFIG_FILE}") from None
    config = json.loads(config_bytes)
    model = MoegpuModel(config)
    path = os.path.join(d, WEIGHTS_FILE)
    tensors, meta = safetensors.read(path)
    _load_into(model, tensors, path)
    extras = {"config_bytes": config_bytes, "config": copy.deepcopy(config), "weights_metadata": meta,
              "state": None, "state_bytes": None, "optimizer": None, "optimizer_metadata": None}
    sp = os.path.join(d, STATE_FILE)
    if os.path.exists(sp):
        with open(sp, "rb") as f:
            extras["state_bytes"] = f.read()
        extras["state"] = json.loads(extras["state_bytes"])
    op = os.path.join(d, OPTIMIZER_FILE)
    if os.path.exists(op):
        opt, ometa = safetensors.read(op)
        extras["optimizer"], extras["optimizer_metadata"] = opt, ometa
        with torch.no_grad():
            for name, b in model.named_buffers():
                if name.endswith("controller_state") and name in opt:
                    b.copy_(torch.from_numpy(opt[name]))
    model.checkpoint_extras = extras
    if device is not None:
        model.to(device)
    return model


def _load_into(model, tensors, path):
    want = model.state_dict()
    for name, t in want.items():
        if name not in tensors:
            raise CheckpointError(f"{path}: missing tensor {name}")
        a = tensors[name]
        if list(a.shape) != list(t.shape):
            raise CheckpointError(f"{path}: tensor {name} has shape {list(a.shape)}, the model needs {list(t.shape)}")
        if a.dtype != np.float32:
            raise CheckpointError(f"{path}: tensor {name} is {a.dtype}, want F32")
        if not np.isfinite(a).all():
            i = int(np.flatnonzero(~np.isfinite(a.reshape(-1)))[0])
            raise CheckpointError(f"{path}: tensor {name} holds {a.reshape(-1)[i]} at element {i}: "
                                  "a checkpoint with a non-finite weight is refused")
    for name in tensors:
        if name not in want:
            raise CheckpointError(f"{path}: unexpected tensor {name} (checkpoint of a different model?)")
    model.load_state_dict({k: torch.from_numpy(tensors[k]) for k in want}, strict=True)


def weight_tensors(model):
    """model.safetensors' tensors: the state dict in float32 numpy arrays."""
    return {k: v.detach().to(torch.float32).cpu().numpy() for k, v in model.state_dict().items()}


def optimizer_tensors(model, optimizer=None):
    """optimizer.safetensors' tensors: ``opt.m.<name>``/``opt.v.<name>`` from a
    torch Adam/AdamW's ``exp_avg``/``exp_avg_sq`` (zeros for a parameter
    without state), and each MoE layer's controller state."""
    state = optimizer.state if optimizer is not None else {}
    out = {}
    for name, p in model.named_parameters():
        st = state.get(p, {})
        for key, src in (("m", "exp_avg"), ("v", "exp_avg_sq")):
            t = st.get(src)
            out[f"opt.{key}.{name}"] = (t.detach().float().cpu().numpy() if t is not None
                                        else np.zeros(tuple(p.shape), np.float32))
    for name, b in model.named_buffers():
        if name.endswith("controller_state"):
            out[name] = b.detach().float().cpu().numpy()
    return out


def save(model, d, step=None, task=None, total_steps=None, executor="torch", optimizer=None):
    """Writes ``model`` as a moegpu checkpoint into directory ``d``.

    config.json is the config the model was built from: the original bytes
    when it came from ``load`` and is unchanged, else indented JSON. The
    trainer state (step, task, total_steps) defaults to what ``load`` read
    (step 0 for a new model). optimizer.safetensors holds ``optimizer``'s
    AdamW moments when one is given, else the moments ``load`` read when the
    step is unchanged, else zeros; ``moegpu train --resume`` continues from
    it. A checkpoint loaded and saved unchanged is byte-identical.
    """
    os.makedirs(d, exist_ok=True)
    _recover(d)
    for n in os.listdir(d):
        if n.startswith(_TMP_PREFIX):
            shutil.rmtree(os.path.join(d, n), ignore_errors=True)
    ex = model.checkpoint_extras or {}
    old = ex.get("state") or {}
    state = {"step": old.get("step", 0) if step is None else int(step),
             "task": old.get("task", "") if task is None else task,
             "executor": old.get("executor", executor) if step is None else executor,
             "total_steps": old.get("total_steps", 0) if total_steps is None else int(total_steps)}
    meta = {"format": "pt", "step": str(state["step"])}
    if ex.get("config_bytes") is not None and ex.get("config") == model.config.raw:
        config_bytes = ex["config_bytes"]
    else:
        config_bytes = (json.dumps(model.config.raw, indent=2) + "\n").encode("utf-8")
    if optimizer is None and ex.get("optimizer") is not None and old.get("step") == state["step"]:
        opt = dict(ex["optimizer"])
        for name, b in model.named_buffers():
            if name.endswith("controller_state"):
                opt[name] = b.detach().float().cpu().numpy()
        ometa = ex.get("optimizer_metadata") or meta
    else:
        opt, ometa = optimizer_tensors(model, optimizer), meta
    if state == old and ex.get("state_bytes") is not None:
        state_bytes = ex["state_bytes"]
    else:
        state_bytes = (json.dumps(state, indent=2) + "\n").encode("utf-8")
    tmp = tempfile.mkdtemp(dir=d, prefix=_TMP_PREFIX)
    try:
        with open(os.path.join(tmp, CONFIG_FILE), "wb") as f:
            f.write(config_bytes)
        safetensors.write(os.path.join(tmp, WEIGHTS_FILE), weight_tensors(model), meta)
        safetensors.write(os.path.join(tmp, OPTIMIZER_FILE), opt, ometa)
        with open(os.path.join(tmp, STATE_FILE), "wb") as f:
            f.write(state_bytes)
        for n in os.listdir(tmp):
            os.chmod(os.path.join(tmp, n), 0o644)
        os.chmod(tmp, 0o755)
        os.rename(tmp, os.path.join(d, _COMMIT))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _recover(d)

"""Train a moegpu model with PyTorch, on one process or many (torchrun + DDP).

    torchrun --nproc_per_node 2 python/moegpu_torch/train.py \\
        --config tiny-dense --task reverse --steps 2000 --out out/torch-reverse
    go run ./cmd/moegpu generate --checkpoint out/torch-reverse --prompt hello

It is moegpu's training step (runtime/train) in PyTorch: the same batches
(moegpu's task generators and batch seeds, reimplemented exactly in
``tasks``), the same loss (cross-entropy over the answer and EOS, the MTP
losses weighted λ/D on λ's schedule, the MoE balance losses), AdamW with
decoupled weight decay on the same parameter groups, global-norm clipping,
linear warmup then cosine decay, and the MoE balancing controllers (sign,
PID, skip rate) after each step. It writes a moegpu checkpoint
(``--out``: config.json, model.safetensors, optimizer.safetensors with the
AdamW moments, trainer_state.json) and ``metrics.jsonl``, so
``moegpu generate``/``eval`` run the result and ``moegpu train --resume``
continues it (and ``--resume`` here continues a moegpu checkpoint).

Distributed: each of W processes (gloo on CPUs, nccl on GPUs) takes a
contiguous 1/W of every step's batch (batch_size must divide by W);
DistributedDataParallel averages the gradients, and each rank's
cross-entropy is scaled by W with moegpu's global 1/count weights, so the
averaged gradient is exactly the whole batch's. Per-batch MoE quantities
are per rank: the balance loss's f and P and the capacity cut count the
rank's tokens (the gradient is the mean of the ranks' balance-loss
gradients); the controllers see the loads summed over all ranks, so every
rank keeps the same biases. With one process it is moegpu's step exactly.
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist

if __package__ in (None, ""):  # run as a script (torchrun python/moegpu_torch/train.py)
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    __package__ = "moegpu_torch"

from moegpu_torch import checkpoint, tasks  # noqa: E402
from moegpu_torch.model import IGNORE, MoE, MoegpuModel, shift_tokens  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def config_dict(name):
    """A config file's dict; a bare name is a shipped config (assets/configs/NAME.json)."""
    path = name
    if not os.path.exists(path):
        path = os.path.join(REPO, "assets", "configs", name + ".json")
    with open(path) as f:
        return json.load(f)


def lr_at(tr, s, total):
    """Learning rate of step s (1-based): linear warmup, then cosine decay to
    min_lr_ratio·learning_rate at the last step (train.Trainer.LR)."""
    lr, warm = tr["learning_rate"], tr["warmup_steps"]
    if warm > 0 and s <= warm:
        return lr * s / warm
    if total <= warm:
        return lr
    progress = min(1.0, (s - warm) / (total - warm))
    lo = lr * tr["min_lr_ratio"]
    return lo + (lr - lo) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model, tr):
    """AdamW groups as moegpu's: weight decay on every parameter except norm
    gains, attention sinks and (unless decay_embeddings) embedding tables."""
    decay, no = [], []
    for name, p in model.named_parameters():
        skip = name.endswith("norm.weight") or name.endswith(".sinks") or (
            name.endswith("embed_tokens.weight") and not tr["decay_embeddings"])
        (no if skip else decay).append(p)
    return [{"params": decay, "weight_decay": tr["weight_decay"]}, {"params": no, "weight_decay": 0.0}]


def _sign(v):
    return 1.0 if v > 0 else -1.0 if v < 0 else 0.0


def update_biases(model, infos, world):
    """moe.BiasUpdate after a step: each MoE layer's routed biases from the
    load shares (sign rule or PID on the relative load error, re-centred to
    mean 0) and the copy experts' bias from the skip rate against its target;
    loads and skips are summed over all ranks first."""
    c = model.config
    layers = [m for m in model.modules() if isinstance(m, MoE)]
    for layer, info in zip(layers, infos):
        E, et = layer.E, layer.E + layer.Z
        stats = torch.cat([info.load.double(), torch.tensor([float(info.skipped.sum()), float(info.skipped.numel())],
                                                           dtype=torch.float64)])
        if world > 1:
            dist.all_reduce(stats)
        load, skipped, n = stats[:E].tolist(), float(stats[E]), float(stats[E + 1])
        bias = layer.gate.e_score_correction_bias.double()
        ctrl = layer.gate.controller_state.double()

        def pid(i, err, kp, ki, kd):
            integ = max(-1e4, min(1e4, float(ctrl[i]) + err))
            v = _f(kp) * err + _f(ki) * integ + _f(kd) * (err - float(ctrl[et + i]))
            ctrl[i], ctrl[et + i] = integ, err
            return v

        mode = c.moe_balance
        if mode in ("bias_sign", "bias_pid"):
            total = sum(load)
            mean = 1 / E
            for i in range(E):
                share = load[i] / total if total > 0 else 0.0
                err = (mean - share) / mean
                if mode == "bias_sign":
                    bias[i] += _f(c.bias_update_speed) * _sign(err)
                else:
                    bias[i] = pid(i, err, c.bias_pid_kp, c.bias_pid_ki, c.bias_pid_kd)
            bias[:E] -= bias[:E].sum() / E
        if c.moe_skip_target > 0 and et > E:
            err = _f(c.moe_skip_target) - skipped / n
            if c.moe_skip_controller == "pid":
                v = pid(E, err, c.moe_skip_pid_kp, c.moe_skip_pid_ki, c.moe_skip_pid_kd)
            else:
                v = float(bias[E]) + _f(c.moe_skip_update_speed) * _sign(err)
            bias[E:] = v
        with torch.no_grad():
            layer.gate.e_score_correction_bias.copy_(bias.float())
            layer.gate.controller_state.copy_(ctrl.float())


def _f(x):
    return float(np.float32(x))


def restore_optimizer(model, opt, extras, step):
    """Loads opt.m/opt.v moments of a checkpoint into a torch AdamW at step."""
    tensors = (extras or {}).get("optimizer") or {}
    for name, p in model.named_parameters():
        m, v = tensors.get("opt.m." + name), tensors.get("opt.v." + name)
        if m is None or v is None:
            raise checkpoint.CheckpointError(f"optimizer.safetensors has no moments for {name}")
        opt.state[p] = {"step": torch.tensor(float(step)), "exp_avg": torch.from_numpy(m).to(p.device),
                        "exp_avg_sq": torch.from_numpy(v).to(p.device)}


def main(argv=None):
    """Parses flags, trains, writes the checkpoint (rank 0)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="tiny-dense", help="config.json path or shipped config name")
    ap.add_argument("--task", default="reverse", choices=tasks.names())
    ap.add_argument("--steps", type=int, default=2000, help="optimizer steps to train to")
    ap.add_argument("--out", default="out/torch-run", help="checkpoint directory")
    ap.add_argument("--seed", type=int, default=-1, help="seed (-1: the config's training.seed)")
    ap.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out (moegpu's or ours)")
    ap.add_argument("--log-every", type=int, default=0, help="progress line every N steps (0: about 20 lines)")
    ap.add_argument("--checkpoint-every", type=int, default=0, help="also save every N steps")
    ap.add_argument("--eval", type=int, default=0, help="exact match on N held-out examples at the end (rank 0)")
    args = ap.parse_args(argv)

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if world > 1:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if torch.cuda.is_available():
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
        if "OMP_NUM_THREADS" not in os.environ:  # share the cores among the processes
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))

    if args.resume:
        model = checkpoint.load(args.out)
        start = (model.checkpoint_extras.get("state") or {}).get("step", 0)
    else:
        model = MoegpuModel(config_dict(args.config))
        start = 0
    c = model.config
    if c.has_image:
        raise SystemExit("train.py: image (OCR) models train on rendered lines, which this script does not generate")
    tr = dict(c.training or {})
    if not tr:
        from moegpu_torch.config import _TRAINING_DEFAULTS
        tr = dict(_TRAINING_DEFAULTS)
    seed = tr["seed"] if args.seed < 0 else args.seed
    if not args.resume:
        model.init_weights(seed)
    task = tasks.by_name(args.task)
    B, T = tr["batch_size"], tr["seq_len"]
    if B % world:
        raise SystemExit(f"train.py: batch_size {B} does not divide into {world} processes")
    if T < task.max_seq_len():
        raise SystemExit(f"train.py: seq_len {T} is too short for task {task.name} ({task.max_seq_len()})")
    model.to(device)
    net = TrainStep(model, world)
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(net, find_unused_parameters=c.n_routed_experts > 0)
    opt = torch.optim.AdamW(param_groups(model, tr), lr=tr["learning_rate"], betas=(tr["adam_beta1"], tr["adam_beta2"]),
                            eps=tr["adam_epsilon"])
    if args.resume:
        restore_optimizer(model, opt, model.checkpoint_extras, start)
    lo, hi = rank * B // world, (rank + 1) * B // world
    D = c.num_nextn_predict_layers
    log_every = args.log_every or max(1, args.steps // 20)
    metrics = open(os.path.join(args.out, "metrics.jsonl"), "a") if rank == 0 and _mkdir(args.out) else None

    def save(step):
        if rank == 0:
            checkpoint.save(model, args.out, step=step, task=task.name, total_steps=args.steps, optimizer=opt)

    t0 = time.time()
    for s in range(start + 1, args.steps + 1):
        st = time.time()
        tok, tgt, w = task.batch(tasks.train_rng((seed * 1_000_003 + s) % (1 << 64)), B, T)
        tok, tgt, w = torch.from_numpy(tok), torch.from_numpy(tgt), torch.from_numpy(w)
        mtp_w = []
        for k in range(1, D + 1):
            tk = shift_tokens(tgt, k, IGNORE)
            cnt = int((tk != IGNORE).sum())
            mtp_w.append(torch.where(tk != IGNORE, torch.tensor(_f(1 / max(cnt, 1))), torch.tensor(0.0))[lo:hi].to(device))
        lam = c.mtp_lambda(s, args.steps)
        for g in opt.param_groups:
            g["lr"] = lr_at(tr, s, args.steps)
        total, out = net(tok[lo:hi].to(device), tgt[lo:hi].to(device), w[lo:hi].to(device), lam, mtp_w)
        opt.zero_grad(set_to_none=True)
        total.backward()
        gnorm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), tr["max_grad_norm"])) \
            if tr["max_grad_norm"] > 0 else float(torch.norm(torch.stack([p.grad.norm() for p in model.parameters()
                                                                           if p.grad is not None])))
        opt.step()
        if out.output.moe:
            update_biases(model, out.output.moe, world)
        rep = torch.stack([out.lm.detach()] + [ce.detach() for ce in out.mtp]).double().cpu()
        if world > 1:
            dist.all_reduce(rep)
        if not math.isfinite(float(rep[0])) or not math.isfinite(gnorm):
            raise SystemExit(f"train.py: step {s}: loss {float(rep[0])}, gradient norm {gnorm}: diverged")
        if metrics is not None:
            el = time.time() - st
            rec = {"step": s, "loss": float(rep[0]), "lr": opt.param_groups[0]["lr"], "grad_norm": gnorm,
                   "tokens_per_s": B * T / el, "extras": {"step_ms": el * 1000, "world_size": world}}
            if D:
                rec["extras"].update({f"mtp.{k}.loss": float(rep[k]) for k in range(1, D + 1)})
            metrics.write(json.dumps(rec) + "\n")
            if s % log_every == 0 or s == args.steps:
                print(f"step {s:6d}/{args.steps}  loss {float(rep[0]):.4f}  lr {rec['lr']:.2e}  |g| {gnorm:.3f}  "
                      f"{B * T / el:8.0f} tok/s  ({world} process{'es' if world > 1 else ''})", file=sys.stderr)
        if args.checkpoint_every and s % args.checkpoint_every == 0 and s < args.steps:
            save(s)
    if start < args.steps:
        save(args.steps)
    if metrics is not None:
        metrics.close()
        print(f"trained steps {start + 1}–{args.steps} in {time.time() - t0:.1f}s; checkpoint in {args.out}",
              file=sys.stderr)
    if rank == 0 and args.eval > 0:
        model.eval()
        right = 0
        for p, a in task.eval_set(args.eval, 0):
            gen = model.generate(tasks.prompt_tokens(p), len(a) + 2, eos=tasks.EOS)
            right += tasks.decode_answer(gen) == a
        print(f"exact match on {task.name} (held-out set: seed 0, n {args.eval}): {right}/{args.eval} = "
              f"{right / args.eval:.3f}")
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


def _mkdir(d):
    os.makedirs(d, exist_ok=True)
    return True


class TrainStep(torch.nn.Module):
    """The loss of one rank's shard as a module, so DistributedDataParallel
    wraps (and finds the used parameters from) the whole computation. The
    cross-entropies, weighted with the whole batch's 1/count, are scaled by
    the world size so that DDP's gradient average is the whole batch's
    gradient; the balance losses are the shard's own."""

    def __init__(self, model, world):
        super().__init__()
        self.model, self.world = model, world

    def forward(self, tok, tgt, w, lam, mtp_w):
        """The shard's loss to backpropagate, and the LossOutput."""
        out = self.model.loss(tok, tgt, w, mtp_lambda=lam, mtp_weights=mtp_w)
        D = len(out.mtp)
        total = out.lm
        for ce in out.mtp:
            total = total + ce * _f(lam / D)
        total = total * self.world
        for a in out.aux:
            total = total + a
        return total, out


if __name__ == "__main__":
    main()

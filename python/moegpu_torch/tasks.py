"""moegpu's synthetic tasks and tokenizer (runtime/tasks), reimplemented exactly.

The same seed gives the same examples and batches as moegpu, bit for bit:
Go's math/rand/v2 PCG-DXSM generator (``PCG``) and its ``IntN`` /
``Uint64N`` (Lemire's multiply-shift with rejection) are reproduced here,
and ``Task.batch`` lays examples out as ``Task.Batch`` does. A model trained
on these batches with PyTorch sees what moegpu's trainer would have fed it.
"""

import numpy as np

__all__ = ["PAD", "BOS", "EOS", "SEP", "VOCAB_SIZE", "IGNORE", "PCG", "Rand", "train_rng", "eval_rng", "Task",
           "by_name", "names", "encode", "decode", "decode_answer", "prompt_tokens"]

PAD, BOS, EOS, SEP = 0, 1, 2, 3
_DIGIT0, _LETTER_A, _PLUS, _EQUAL, _SPACE = 4, 14, 40, 41, 42
#: Number of token ids of the fixed vocabulary.
VOCAB_SIZE = 43
#: Target value of positions without loss here (moegpu's is 0xFFFFFFFF).
IGNORE = -1

_M64 = (1 << 64) - 1
_TRAIN_STREAM = 0x7472_6169_6E00_0001
_EVAL_STREAM = 0x6576_616C_0000_0002


class PCG:
    """Go's math/rand/v2 PCG: 128-bit LCG state, DXSM output."""

    _MUL = (2549297995355413924 << 64) | 4865540595714422341
    _INC = (6364136223846793005 << 64) | 1442695040888963407

    def __init__(self, seed1, seed2):
        self.state = ((seed1 & _M64) << 64) | (seed2 & _M64)

    def uint64(self):
        """The next 64-bit output."""
        self.state = (self.state * self._MUL + self._INC) & ((1 << 128) - 1)
        hi, lo = self.state >> 64, self.state & _M64
        hi ^= hi >> 32
        hi = (hi * 0xDA942042E4DD58B5) & _M64
        hi ^= hi >> 48
        return (hi * (lo | 1)) & _M64


class Rand:
    """The methods of Go's rand.Rand that the tasks use, on a PCG source."""

    def __init__(self, src):
        self.src = src

    def uint64n(self, n):
        """Uniform in [0, n), as Go's Rand.Uint64N on a 64-bit machine."""
        if n & (n - 1) == 0:
            return self.src.uint64() & (n - 1)
        p = self.src.uint64() * n
        hi, lo = p >> 64, p & _M64
        if lo < n:
            thresh = ((1 << 64) - n) % n
            while lo < thresh:
                p = self.src.uint64() * n
                hi, lo = p >> 64, p & _M64
        return hi

    def intn(self, n):
        """Uniform in [0, n), as Go's Rand.IntN."""
        return self.uint64n(n)


def train_rng(seed):
    """The generator training batches of a seed draw from (tasks.TrainRNG)."""
    return Rand(PCG(seed, _TRAIN_STREAM))


def eval_rng(seed):
    """The generator of a seed's held-out set (Task.EvalSet)."""
    return Rand(PCG(seed, _EVAL_STREAM))


def _token(ch):
    if "0" <= ch <= "9":
        return _DIGIT0 + ord(ch) - ord("0")
    if "a" <= ch <= "z":
        return _LETTER_A + ord(ch) - ord("a")
    return {"+": _PLUS, "=": _EQUAL, " ": _SPACE}.get(ch, -1)


def vocab():
    """The text of every token id (special tokens as <pad>, <bos>, <eos>, <sep>)."""
    v = ["<pad>", "<bos>", "<eos>", "<sep>"] + [str(i) for i in range(10)]
    return v + [chr(ord("a") + i) for i in range(26)] + ["+", "=", " "]


def encode(s):
    """Text to ids, one per character; a character outside the vocabulary is a ValueError."""
    out = []
    for i, ch in enumerate(s):
        t = _token(ch)
        if t < 0:
            raise ValueError(f"tasks: encode: character {ch!r} at {i} is not in the vocabulary")
        out.append(t)
    return out


def decode(ids):
    """Ids to text; ids outside the vocabulary as <unk:N>."""
    v = vocab()
    return "".join(v[i] if 0 <= i < VOCAB_SIZE else f"<unk:{i}>" for i in ids)


def decode_answer(generated):
    """The answer text of a generated continuation: everything before the first EOS."""
    return decode(generated[:generated.index(EOS)] if EOS in generated else generated)


def prompt_tokens(prompt):
    """BOS prompt SEP: what a model is given at evaluation time."""
    return [BOS] + encode(prompt) + [SEP]


def _letters(rng, n):
    return "".join(chr(ord("a") + rng.intn(26)) for _ in range(n))


def _number(rng, n):
    if n == 1:
        return rng.uint64n(10)
    lo = 10 ** (n - 1)
    return lo + rng.uint64n(9 * lo)


class Task:
    """One synthetic task: copy, reverse, sort (4–10 letters) or add (1–4
    digit operands) with runtime/tasks' default ranges."""

    def __init__(self, name, lo, hi):
        self.name, self.lo, self.hi = name, lo, hi

    def _length(self, rng):
        return self.lo + rng.intn(self.hi - self.lo + 1)

    def sample(self, rng):
        """One (prompt, answer) pair drawn from rng."""
        if self.name == "add":
            a, b = _number(rng, self._length(rng)), _number(rng, self._length(rng))
            return f"{a}+{b}", str(a + b)
        s = _letters(rng, self._length(rng))
        if self.name == "reverse":
            return s, s[::-1]
        if self.name == "sort":
            return s, "".join(sorted(s))
        return s, s

    def max_seq_len(self):
        """BOS, the longest prompt, SEP, the longest answer, EOS."""
        if self.name == "add":
            return (2 * self.hi + 1) + (self.hi + 1) + 3
        return 2 * self.hi + 3

    def batch(self, rng, batch_size, seq_len):
        """(tokens, targets, weights), each (batch_size, seq_len) numpy: rows
        BOS prompt SEP answer EOS PAD…; targets the next token from SEP
        through the last answer token, IGNORE elsewhere; weights float32
        1/count at targets (count over the batch), as Task.Batch."""
        if seq_len < self.max_seq_len():
            raise ValueError(f"tasks: {self.name}: seq_len {seq_len} is too short; need {self.max_seq_len()}")
        tokens = np.zeros((batch_size, seq_len), np.int64)
        targets = np.full((batch_size, seq_len), IGNORE, np.int64)
        count = 0
        for b in range(batch_size):
            p, a = self.sample(rng)
            row = [BOS] + encode(p) + [SEP] + encode(a) + [EOS]
            tokens[b, :len(row)] = row
            sep = len(p) + 1
            eos = len(row) - 1
            targets[b, sep:eos] = row[sep + 1:eos + 1]
            count += eos - sep
        weights = np.where(targets != IGNORE, np.float32(1 / count), np.float32(0)).astype(np.float32)
        return tokens, targets, weights

    def eval_set(self, n, seed):
        """n held-out (prompt, answer) pairs of a seed (Task.EvalSet)."""
        rng = eval_rng(seed)
        return [self.sample(rng) for _ in range(n)]


_DEFAULTS = {"copy": (4, 10), "reverse": (4, 10), "sort": (4, 10), "add": (1, 4)}


def names():
    """The task names, sorted."""
    return sorted(_DEFAULTS)


def by_name(name):
    """The named task with its default length range."""
    if name not in _DEFAULTS:
        raise ValueError(f"tasks: unknown task {name!r}; valid tasks are {', '.join(names())}")
    return Task(name, *_DEFAULTS[name])

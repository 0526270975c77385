"""moegpu_torch.tasks reproduces runtime/tasks exactly: Go's PCG outputs, the
trainer's batches and the held-out sets, compared with what the Go test
(python/torch_test.go) wrote to $MOEGPU_TASKS_REF."""

import json
import os
import unittest

import numpy as np

from moegpu_torch import tasks


class Tasks(unittest.TestCase):
    """The Python task generators against the Go reference."""

    @classmethod
    def setUpClass(cls):
        path = os.environ.get("MOEGPU_TASKS_REF")
        if not path:
            raise unittest.SkipTest("MOEGPU_TASKS_REF is not set (python/torch_test.go writes it)")
        with open(path) as f:
            cls.ref = json.load(f)

    def test_pcg_gives_gos_outputs(self):
        for seeds, outs in self.ref["pcg"].items():
            s1, s2 = (int(x) for x in seeds.split(","))
            p = tasks.PCG(s1, s2)
            self.assertEqual([str(p.uint64()) for _ in outs], outs, seeds)

    def test_training_batches_are_gos(self):
        for b in self.ref["batches"]:
            with self.subTest(task=b["task"], seed=b["seed"], step=b["step"]):
                task = tasks.by_name(b["task"])
                tok, tgt, w = task.batch(tasks.train_rng((b["seed"] * 1_000_003 + b["step"]) % (1 << 64)),
                                         b["batch"], b["seq"])
                np.testing.assert_array_equal(tok.reshape(-1), b["tokens"])
                np.testing.assert_array_equal(tgt.reshape(-1), b["targets"])
                np.testing.assert_array_equal(w.reshape(-1), np.array(b["weights"], np.float32))

    def test_held_out_sets_are_gos(self):
        for name, by_seed in self.ref["eval"].items():
            for seed, ex in by_seed.items():
                got = tasks.by_name(name).eval_set(len(ex), int(seed))
                self.assertEqual([list(e) for e in got], ex, f"{name} seed {seed}")

    def test_tokenizer_round_trips_the_alphabet(self):
        text = "0123456789abcdefghijklmnopqrstuvwxyz+= "
        self.assertEqual(tasks.decode(tasks.encode(text)), text)
        self.assertEqual(tasks.prompt_tokens("ab"), [tasks.BOS, 14, 15, tasks.SEP])
        self.assertEqual(tasks.decode_answer([14, 15, tasks.EOS, 16]), "ab")
        with self.assertRaises(ValueError):
            tasks.encode("A")


if __name__ == "__main__":
    unittest.main()

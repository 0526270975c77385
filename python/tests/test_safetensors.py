"""The pure-Python safetensors reader/writer: the bytes moegpu's Go writer
writes, every dtype, and clear errors on corrupt files."""

import json
import struct
import unittest

import numpy as np

from moegpu_torch import safetensors as st


class Safetensors(unittest.TestCase):
    """moegpu_torch.safetensors against the format and the Go writer's layout."""

    def test_round_trip_of_every_dtype_keeps_values_shapes_and_bytes(self):
        rng = np.random.default_rng(0)
        t = {"b.f32": rng.standard_normal((3, 5)).astype(np.float32),
             "a.f16": rng.standard_normal(7).astype(np.float16),
             "c.i64": np.arange(6, dtype=np.int64).reshape(2, 3),
             "d.u32": np.array([0, 1, 2**32 - 1], np.uint32),
             "e.empty": np.zeros((0, 4), np.float32),
             "f.scalar": np.array(2.5, np.float64)}
        b = st.marshal(t, {"format": "pt", "step": "3"})
        got, meta = st.read_bytes(b)
        self.assertEqual(meta, {"format": "pt", "step": "3"})
        self.assertEqual(list(got), sorted(t))
        for k, v in t.items():
            self.assertEqual(got[k].dtype, v.dtype)
            np.testing.assert_array_equal(got[k], v)
        self.assertEqual(st.marshal(got, meta), b)

    def test_the_header_is_laid_out_as_gos_marshal_writes_it(self):
        b = st.marshal({"w": np.ones((2, 1), np.float32), "<&>": np.zeros(1, np.float32)}, {"k": "v"})
        (n,) = struct.unpack("<Q", b[:8])
        self.assertEqual(n % 8, 0)
        header = b[8:8 + n].decode()
        self.assertEqual(header.rstrip(" "),
                         '{"__metadata__":{"k":"v"},"\\u003c\\u0026\\u003e":{"dtype":"F32","shape":[1],'
                         '"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[2,1],"data_offsets":[4,12]}}')
        self.assertEqual(len(b), 8 + n + 12)

    def test_corrupt_files_are_refused_with_the_reason(self):
        good = st.marshal({"x": np.ones(4, np.float32)})
        (n,) = struct.unpack("<Q", good[:8])
        cases = {
            "truncated": good[:5],
            "runs past the end": struct.pack("<Q", 10**6) + good[8:],
            "after its last tensor": good + b"\0\0\0\0",
            "do not hold": good[:-4],
            "duplicate": struct.pack("<Q", 0) + b"",
        }
        for why, b in cases.items():
            if why == "duplicate":
                h = b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
                b = struct.pack("<Q", len(h)) + h + b"\0" * 4
            with self.subTest(why=why):
                with self.assertRaises(st.SafetensorsError) as e:
                    st.read_bytes(b)
                self.assertIn(why, str(e.exception))

    def test_a_hole_in_the_data_section_is_refused(self):
        h = json.dumps({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}).encode()
        with self.assertRaises(st.SafetensorsError) as e:
            st.read_bytes(struct.pack("<Q", len(h)) + h + b"\0" * 8)
        self.assertIn("hole", str(e.exception))


if __name__ == "__main__":
    unittest.main()

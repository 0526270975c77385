"""A small pure-Python reader and writer of the safetensors format.

The ``safetensors`` pip package is not a dependency (Debian does not ship
it); this module reads and writes the format with numpy alone, and writes
exactly the bytes moegpu's Go writer (runtime/safetensors.Marshal) writes:
tensors sorted by name with contiguous offsets, ``__metadata__`` first
(omitted when empty), compact JSON as Go's encoding/json spells it, the
header padded with spaces to a multiple of 8 bytes. A checkpoint read here
and written back is therefore byte-identical.

A file is: 8 bytes little-endian uint64 N; N bytes of UTF-8 JSON header
``{"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets"}}``;
then the data section, each tensor row-major little-endian at
``[begin, end)`` of it. The reader checks what it uses (lengths, offsets,
coverage of the data section) and raises ``SafetensorsError`` naming the
problem.
"""

import json
import os
import struct
import tempfile

import numpy as np

__all__ = ["SafetensorsError", "read", "read_bytes", "write", "marshal", "DTYPES"]

#: safetensors dtype name → numpy dtype (little-endian). BF16 is read as
#: raw uint16 (numpy has no bfloat16); ``to_torch`` widens it.
DTYPES = {
    "BOOL": np.dtype("bool"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}

_NAME_OF = {
    np.dtype("bool"): "BOOL",
    np.dtype("u1"): "U8",
    np.dtype("i1"): "I8",
    np.dtype("<i2"): "I16",
    np.dtype("<u2"): "U16",
    np.dtype("<f2"): "F16",
    np.dtype("<i4"): "I32",
    np.dtype("<u4"): "U32",
    np.dtype("<f4"): "F32",
    np.dtype("<f8"): "F64",
    np.dtype("<i8"): "I64",
    np.dtype("<u8"): "U64",
}

#: The header key of the metadata.
META = "__metadata__"
#: The largest header accepted (the reference implementation's limit).
MAX_HEADER = 100_000_000


class SafetensorsError(ValueError):
    """A safetensors file that cannot be read or tensors that cannot be written."""


def read(path):
    """Reads the safetensors file at ``path``.

    Returns ``(tensors, metadata)``: a dict name → numpy array in name
    order (BF16 arrays hold the raw uint16 bits; see ``DTYPES``), and the
    metadata dict (empty when the file has none).
    """
    with open(path, "rb") as f:
        b = f.read()
    try:
        return read_bytes(b)
    except SafetensorsError as e:
        raise SafetensorsError(f"safetensors {path}: {e}") from None


def read_bytes(b):
    """Parses a safetensors file held in memory; see ``read``."""
    if len(b) < 8:
        raise SafetensorsError(f"file is {len(b)} bytes, too short for the 8-byte header length (truncated?)")
    (n,) = struct.unpack("<Q", b[:8])
    if n > MAX_HEADER:
        raise SafetensorsError(f"header length {n} is over the {MAX_HEADER}-byte limit (corrupt file?)")
    if n > len(b) - 8:
        raise SafetensorsError(f"header length {n} runs past the end of the {len(b)}-byte file (truncated?)")
    try:
        pairs = json.loads(b[8:8 + n].decode("utf-8"), object_pairs_hook=list)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"header is not valid JSON: {e}") from None
    if not isinstance(pairs, list):
        raise SafetensorsError("header is not a JSON object")
    data = memoryview(b)[8 + n:]
    seen, spans, metadata, entries = set(), [], {}, []
    for name, val in pairs:
        if name in seen:
            raise SafetensorsError(f"duplicate key {name!r} in the header")
        seen.add(name)
        if name == META:
            metadata = dict(val)
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
                raise SafetensorsError("__metadata__ must map strings to strings")
            continue
        e = dict(val) if isinstance(val, list) else None
        if e is None or set(e) != {"dtype", "shape", "data_offsets"}:
            raise SafetensorsError(f"tensor {name}: want exactly dtype, shape and data_offsets")
        dt = DTYPES.get(e["dtype"])
        if dt is None:
            raise SafetensorsError(f"tensor {name}: unsupported dtype {e['dtype']!r}")
        shape = e["shape"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise SafetensorsError(f"tensor {name}: bad shape {shape!r}")
        off = e["data_offsets"]
        if not (isinstance(off, list) and len(off) == 2 and all(isinstance(o, int) for o in off)):
            raise SafetensorsError(f"tensor {name}: bad data_offsets {off!r}")
        begin, end = off
        want = int(np.prod(shape, dtype=np.int64)) * dt.itemsize
        if not (0 <= begin <= end <= len(data)) or end - begin != want:
            raise SafetensorsError(f"tensor {name}: data_offsets {off} do not hold {want} bytes of {e['dtype']}{shape} "
                                   f"within the {len(data)}-byte data section")
        spans.append((begin, end, name))
        entries.append((name, dt, shape, begin, end))
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise SafetensorsError(f"tensor {name}: the data section has a hole or an overlap at byte {at}")
        at = end
    if at != len(data):
        raise SafetensorsError(f"the data section has {len(data) - at} bytes after its last tensor")
    tensors = {}
    for name, dt, shape, begin, end in sorted(entries, key=lambda x: x[0].encode("utf-8")):
        tensors[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
    return tensors, metadata


def _go_string(s):
    """JSON-encodes a string exactly as Go's encoding/json does (HTML-safe)."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\b":
            out.append("\\b")
        elif ch == "\f":
            out.append("\\f")
        elif c < 0x20 or ch in "<>&" or c in (0x2028, 0x2029):
            out.append(f"\\u{c:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _as_numpy(t):
    """A numpy array (little-endian, C order) from a numpy array or a torch tensor."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().contiguous().numpy()
    a = np.ascontiguousarray(t)
    if a.dtype.byteorder == ">":
        a = a.astype(a.dtype.newbyteorder("<"))
    return a


def marshal(tensors, metadata=None):
    """Encodes ``tensors`` (dict name → numpy array or torch tensor) and
    string ``metadata`` as safetensors bytes, byte for byte as moegpu's Go
    writer would."""
    header = ["{"]
    first = True
    if metadata:
        items = sorted(metadata.items(), key=lambda kv: kv[0].encode("utf-8"))
        header.append(_go_string(META) + ":{" + ",".join(_go_string(k) + ":" + _go_string(v) for k, v in items) + "}")
        first = False
    blobs, off = [], 0
    for name in sorted(tensors, key=lambda s: s.encode("utf-8")):
        if name in ("", META):
            raise SafetensorsError(f"tensor name {name!r} is not allowed")
        a = _as_numpy(tensors[name])
        dname = _NAME_OF.get(a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype)
        if dname is None:
            raise SafetensorsError(f"tensor {name}: dtype {a.dtype} has no safetensors name")
        raw = a.tobytes()
        end = off + len(raw)
        if not first:
            header.append(",")
        first = False
        header.append(f'{_go_string(name)}:{{"dtype":"{dname}","shape":[{",".join(str(d) for d in a.shape)}],'
                      f'"data_offsets":[{off},{end}]}}')
        blobs.append(raw)
        off = end
    header.append("}")
    h = "".join(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def write(path, tensors, metadata=None):
    """Writes ``tensors`` to ``path`` atomically (a temporary file in the
    same directory, synced, then renamed over ``path``)."""
    b = marshal(tensors, metadata)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-" + os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise

#!/usr/bin/env python3
"""Cross-check nn's safetensors files with an independent numpy reader.

    check_safetensors.py IN OUT

Reads IN (written by Go) following the safetensors specification with numpy
(and wraps the arrays as torch tensors when torch is importable), prints a
JSON summary {name: {"shape", "sum", "first"}, "__metadata__": {...}} to
stdout, and writes OUT, a safetensors file made here for Go to read back
(tensor "py.a" = arange(6).reshape(2, 3) / 4, "py.b" = [-1.5]; metadata
{"writer": "numpy"}; entries deliberately not in sorted order).
"""
import json
import struct
import sys

import numpy as np


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    data = raw[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    end = 0
    for name, e in header.items():
        assert e["dtype"] == "F32", e
        a, b = e["data_offsets"]
        arr = np.frombuffer(data[a:b], dtype="<f4").reshape(e["shape"])
        out[name] = arr
        end = max(end, b)
    assert end == len(data), (end, len(data))
    return out, meta


def write(path, tensors, meta):
    header, blobs, off = {"__metadata__": meta}, [], 0
    for name, arr in tensors.items():
        b = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    tensors, meta = read(sys.argv[1])
    try:
        import torch
        tensors = {k: torch.from_numpy(v.copy()).numpy() for k, v in tensors.items()}
    except ImportError:
        pass
    summary = {k: {"shape": list(v.shape), "sum": float(v.astype(np.float64).sum()),
                   "first": [float(x) for x in v.reshape(-1)[:3]]} for k, v in tensors.items()}
    summary["__metadata__"] = meta
    json.dump(summary, sys.stdout)
    write(sys.argv[2], {"py.b": np.array([-1.5]), "py.a": np.arange(6).reshape(2, 3) / 4}, {"writer": "numpy"})


if __name__ == "__main__":
    main()

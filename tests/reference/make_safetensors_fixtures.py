#!/usr/bin/env python3
"""Writes the safetensors reader fixtures in tests/fixtures/safetensors/ (committed; CI never runs this).

  pip install torch safetensors numpy
  python3 tests/reference/make_safetensors_fixtures.py

tiny.safetensors is written by the Python safetensors library itself (so the C reader is checked
against the reference writer); the bad_*.safetensors files are hand-made hostile files, each broken
in one way. tests/test_safetensors.c asserts the values and the error messages.
"""
import json
import os
import struct

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "safetensors")


def tiny():
    t = {
        "f32": torch.tensor([[0.0, 1.5, -2.25], [3e-8, 1e10, -0.0]], dtype=torch.float32),
        # 1, -2.5, max half, min normal half, min subnormal half, -inf
        "f16": torch.tensor([1.0, -2.5, 65504.0, 6.103515625e-05, 5.960464477539063e-08, float("-inf")],
                            dtype=torch.float16),
        "i32": torch.tensor([-7, 0, 2147483647], dtype=torch.int32),
        "i64": torch.tensor([[1, -2], [3, -2147483648]], dtype=torch.int64),
        "i64_big": torch.tensor([2 ** 40], dtype=torch.int64),
        "bf16": torch.tensor([1.0, 2.0], dtype=torch.bfloat16),
        "scalar": torch.tensor(42.0, dtype=torch.float32),
        "empty": torch.zeros((0, 3), dtype=torch.float32),
        "layer.0.weight": torch.arange(6, dtype=torch.float32).reshape(3, 2) / 4,
    }
    meta = {"format": "pt", "note": 'quote " backslash \\ unicode \u00fcn\u00ef \U0001F600'}
    save_file(t, os.path.join(OUT, "tiny.safetensors"), metadata=meta)
    os.chmod(os.path.join(OUT, "tiny.safetensors"), 0o644)


def raw(name, header, data=b"", hlen=None):
    """header: dict (dumped as JSON), str or bytes used verbatim."""
    if isinstance(header, dict):
        header = json.dumps(header, separators=(",", ":"))
    if isinstance(header, str):
        header = header.encode("utf-8")
    n = len(header) if hlen is None else hlen
    with open(os.path.join(OUT, name + ".safetensors"), "wb") as f:
        f.write(struct.pack("<Q", n) + header + data)


def f32(*shape_offsets):
    return {"dtype": "F32", "shape": shape_offsets[0], "data_offsets": shape_offsets[1]}


def hostile():
    d16 = bytes(range(16))
    with open(os.path.join(OUT, "bad_too_short.safetensors"), "wb") as f:
        f.write(b"\x05\x00\x00")
    raw("bad_header_beyond_file", {"a": f32([2], [0, 8])}, d16[:8], hlen=4096)
    raw("bad_offsets_out_of_range", {"a": f32([4], [0, 16]), "b": f32([2], [16, 24])}, d16)
    raw("bad_overlap", {"a": f32([2], [0, 8]), "b": f32([2], [4, 12]), "c": f32([1], [12, 16])}, d16)
    raw("bad_reversed_offsets", {"a": f32([0], [8, 0])}, d16[:8])
    raw("bad_gap", {"a": f32([2], [8, 16])}, d16)
    raw("bad_trailing_data", {"a": f32([2], [0, 8])}, d16)
    raw("bad_dtype_shape_mismatch", {"a": f32([2, 3], [0, 16])}, d16)
    raw("bad_json", '{"a":{"dtype" "F32","shape":[4],"data_offsets":[0,16]}}', d16)
    raw("bad_json_trailing", '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}},', d16)
    raw("bad_deep_nesting", '{"__metadata__":' + "[" * 200 + "]" * 200 + "}", b"")
    raw("bad_duplicate_name", '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                              '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', d16)
    raw("bad_unknown_dtype", {"a": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}, d16)
    raw("bad_shape_overflow", {"a": f32([4294967296, 4294967296, 4294967296], [0, 16])}, d16)
    raw("bad_too_many_dims", {"a": f32([1] * 9, [0, 4])}, d16[:4])
    raw("bad_negative_dim", {"a": f32([-1], [0, 4])}, d16[:4])
    raw("bad_metadata_value", {"__metadata__": {"k": 3}, "a": f32([1], [0, 4])}, d16[:4])
    raw("bad_string_escape", '{"__metadata__":{"k":"\\x"}}', b"")
    raw("bad_missing_offsets", {"a": {"dtype": "F32", "shape": [1]}}, d16[:4])
    raw("bad_not_object", "[1,2]", b"")


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    tiny()
    hostile()
    print("wrote", sorted(os.listdir(OUT)))

#!/usr/bin/env python3
"""Write the safetensors fixtures under test/fixtures/safetensors/ from PyTorch tensors.

Run with the Debian PyTorch:  /usr/bin/python3 tools/make_safetensors_fixtures.py

The `safetensors` Python package is not available here (no Debian package, and
PyPI cannot be reached), so the files are written by hand, following the format
as the reference writer (huggingface/safetensors) lays it out:
  - 8-byte little-endian u64 header length N;
  - N bytes of compact JSON: "__metadata__" first, then one entry per tensor
    {"dtype", "shape", "data_offsets": [begin, end]} relative to the data section,
    padded with spaces to a multiple of 8 bytes;
  - the tensors' raw little-endian bytes end to end, ordered by dtype size
    (largest first) and then by name, as the reference writer orders them.
Each fixture comes with an .expected.json holding the values as float32 (or their
float32 conversion, for F16/BF16/F64) so the TypeScript tests compare exactly.
The committed outputs are deterministic: the script always rewrites the same bytes.
"""
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_glam  # noqa: E402

torch.set_default_dtype(torch.float32)  # torch_glam computes in float64; these fixtures are float32

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "safetensors")

DTYPES = {
    torch.float64: ("F64", 8),
    torch.float32: ("F32", 4),
    torch.float16: ("F16", 2),
    torch.bfloat16: ("BF16", 2),
    torch.int32: ("I32", 4),
    torch.int64: ("I64", 8),
    torch.uint8: ("U8", 1),
}


def raw_bytes(t: torch.Tensor) -> bytes:
    if sys.byteorder != "little":
        raise SystemExit("this script writes host-order bytes; run it on a little-endian machine")
    t = t.contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: reinterpret as int16
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def write_safetensors(path: str, tensors: dict, metadata: dict | None = None) -> None:
    order = sorted(tensors.items(), key=lambda kv: (-DTYPES[kv[1].dtype][1], kv[0]))
    header: dict = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    chunks = []
    for name, t in order:
        data = raw_bytes(t)
        header[name] = {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        chunks.append(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def json_float(x: float):
    """JSON has no inf/nan: write them as the strings "inf", "-inf", "nan"."""
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    return x


def as_f32_list(t: torch.Tensor) -> list:
    return [json_float(float(x)) for x in t.to(torch.float32).reshape(-1).tolist()]


def write_expected(path: str, tensors: dict, metadata: dict | None) -> None:
    expected = {
        "metadata": metadata or {},
        "tensors": {
            name: {"dtype": DTYPES[t.dtype][0], "shape": list(t.shape), "values": as_f32_list(t)}
            for name, t in tensors.items()
            if t.dtype.is_floating_point
        },
        "non_float": sorted(name for name, t in tensors.items() if not t.dtype.is_floating_point),
    }
    with open(path, "w", encoding="utf-8") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
        f.write("\n")


def basic_f32() -> None:
    g = torch.Generator().manual_seed(1)
    tensors = {
        "embed.weight": torch.randn(5, 3, generator=g),
        "layers.0.attn.wq": torch.randn(3, 4, generator=g),
        "expert.wi": torch.randn(2, 3, 2, generator=g),
        "scale": torch.tensor([1.0, -0.0, 3.5e-38, 3.0e38]),
        "scalar": torch.tensor(42.25),
        "empty": torch.zeros(0, 3),
        "ünïcode.名前": torch.tensor([0.5, -0.25]),
    }
    meta = {"format": "pt", "note": "written by tools/make_safetensors_fixtures.py"}
    write_safetensors(os.path.join(ROOT, "basic_f32.safetensors"), tensors, meta)
    write_expected(os.path.join(ROOT, "basic_f32.expected.json"), tensors, meta)


def mixed_dtypes() -> None:
    g = torch.Generator().manual_seed(2)
    tensors = {
        "half": torch.cat([torch.randn(6, generator=g), torch.tensor([65504.0, 6e-8, -0.0, float("inf")])]).to(
            torch.float16
        ),
        "bf16": torch.randn(2, 3, generator=g).to(torch.bfloat16),
        "double": torch.tensor([1.0 / 3.0, -2.5, 1e-300, 123456789.123], dtype=torch.float64),
        "f32": torch.randn(3, generator=g),
        "ids": torch.tensor([1, 2, 3], dtype=torch.int32),
    }
    write_safetensors(os.path.join(ROOT, "mixed_dtypes.safetensors"), tensors, None)
    write_expected(os.path.join(ROOT, "mixed_dtypes.expected.json"), tensors, None)


MICRO_CONFIG = {
    "format": "glam-moe/1",
    "vocab_size": 16,
    "d_model": 8,
    "n_layers": 2,
    "n_heads": 2,
    "d_head": 4,
    "d_ff": 12,
    "n_experts": 4,
    "d_ff_expert": 6,
    "rel_buckets": 4,
    "rel_max_distance": 8,
    "max_seq_len": 8,
}


def micro_checkpoint() -> None:
    d = os.path.join(ROOT, "micro_checkpoint")
    os.makedirs(d, exist_ok=True)
    g = torch.Generator().manual_seed(3)
    # Names and shapes from the one PyTorch oracle (docs/model.md "Checkpoint format"), independent of
    # the TypeScript code.
    specs = torch_glam.param_specs(torch_glam.full_config({k: v for k, v in MICRO_CONFIG.items() if k != "format"}))
    tensors = {name: torch.randn(*shape, generator=g) for name, shape in specs}
    write_safetensors(os.path.join(d, "model.safetensors"), tensors, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(MICRO_CONFIG, f, indent=2)
        f.write("\n")
    summary = {
        name: {"shape": list(t.shape), "sum": float(t.double().sum()), "first": as_f32_list(t.reshape(-1)[:3])}
        for name, t in tensors.items()
    }
    with open(os.path.join(ROOT, "micro_checkpoint.expected.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")


def main() -> None:
    os.makedirs(ROOT, exist_ok=True)
    basic_f32()
    mixed_dtypes()
    micro_checkpoint()
    print(f"wrote fixtures under {os.path.normpath(ROOT)} (torch {torch.__version__})")


if __name__ == "__main__":
    main()

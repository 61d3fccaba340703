"""Small, valid ``.safetensors`` files for the stand-ins (Replicate's trainer, ai-toolkit).

The format: an 8-byte little-endian header length, a JSON header (tensor name → dtype,
shape, byte offsets; plus ``__metadata__``), then the raw tensor bytes.
"""

from __future__ import annotations

import hashlib
import json
import struct


def fake_lora_safetensors(rank: int, metadata: dict[str, str]) -> bytes:
    """Two float16 LoRA matrices (``rank`` × 8 and 8 × ``rank``), values from the metadata."""
    count = rank * 8
    seed = hashlib.sha256(json.dumps(metadata, sort_keys=True).encode()).digest()
    data = bytes(seed[i % len(seed)] & 0x3B for i in range(count * 2))  # small finite halfs
    header: dict[str, object] = {
        "__metadata__": {k: str(v) for k, v in metadata.items()},
        "transformer.single_transformer_blocks.0.attn.to_q.lora_A.weight": {
            "dtype": "F16",
            "shape": [rank, 8],
            "data_offsets": [0, count * 2],
        },
        "transformer.single_transformer_blocks.0.attn.to_q.lora_B.weight": {
            "dtype": "F16",
            "shape": [8, rank],
            "data_offsets": [count * 2, count * 4],
        },
    }
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data + data


def safetensors_metadata(data: bytes) -> dict[str, str] | None:
    """The ``__metadata__`` of a ``.safetensors`` file, or None when it is not one."""
    if len(data) < 8:
        return None
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8 or length > 100_000_000:
        return None
    try:
        header = json.loads(data[8 : 8 + length])
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(header, dict):
        return None
    meta = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else None

"""Deterministic embeddings: the same input and dimensions always give the same unit vector.

The vector is derived from SHAKE-256 of the input (its UTF-8 text, or its token ids): one signed
16-bit integer per dimension, scaled to unit length. Different inputs give unrelated vectors;
there is no semantics, only stable, well-formed numbers.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct


def embed(text: str, dimensions: int) -> list[float]:
    raw = hashlib.shake_256(text.encode()).digest(2 * dimensions)
    values = struct.unpack(f"<{dimensions}h", raw)
    norm = math.sqrt(math.fsum(value * value for value in values)) or 1.0
    return [value / norm for value in values]


def embed_token_ids(ids: list[int], dimensions: int) -> list[float]:
    return embed("\x00ids:" + ",".join(map(str, ids)), dimensions)


def to_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

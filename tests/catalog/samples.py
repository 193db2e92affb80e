"""Model files made by the tests: benign and malicious pickles, zip-packed PyTorch-like
archives, a zip bomb, safetensors and GGUF files. Nothing is downloaded; nothing is loaded."""

from __future__ import annotations

import io
import json
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def tensor_pickle() -> bytes:
    """What `torch.save` writes as data.pkl for {"weight": <2x2 float tensor>}, assembled by
    hand so that no torch is needed: OrderedDict + _rebuild_tensor_v2 over a persistent
    FloatStorage."""
    storage_id = (
        b"("
        + _unicode("storage")
        + b"ctorch\nFloatStorage\n"
        + _unicode("0")
        + _unicode("cpu")
        + b"K\x04tQ"  # numel, TUPLE, BINPERSID
    )
    return b"".join(
        [
            b"\x80\x02",
            b"ccollections\nOrderedDict\n)R",
            _unicode("weight"),
            b"ctorch._utils\n_rebuild_tensor_v2\n(",
            storage_id,
            b"K\x00",  # storage offset
            b"K\x02K\x02\x86",  # size
            b"K\x02K\x01\x86",  # stride
            b"\x89",  # requires_grad
            b"ccollections\nOrderedDict\n)R",  # backward hooks
            b"tR",
            b"s.",
        ]
    )


class _RunsACommand:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("echo owned",))


def malicious_pickle() -> bytes:
    """Unpickling this would run a shell command (it is never unpickled here)."""
    return pickle.dumps({"weight": _RunsACommand()}, protocol=4)


def torch_archive(data_pkl: bytes) -> bytes:
    """A zip-packed PyTorch checkpoint's layout (uncompressed members, as torch writes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", data_pkl)
        archive.writestr("archive/data/0", np.zeros(4, dtype=np.float32).tobytes())
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def zip_bomb(expanded_mib: int = 64) -> bytes:
    """A small archive whose one member inflates ~1000-fold."""
    buffer = io.BytesIO()
    with (
        zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("archive/data.pkl", "w") as member,
    ):
        block = b"\0" * (1024 * 1024)
        for _ in range(expanded_mib):
            member.write(block)
    return buffer.getvalue()


def safetensors_file(tensors: dict[str, tuple[int, ...]] | None = None) -> bytes:
    from safetensors.numpy import save  # noqa: PLC0415

    shapes = tensors or {"embed.weight": (16, 8), "lm_head.weight": (8, 16)}
    return save(
        {name: np.zeros(shape, dtype=np.float16) for name, shape in shapes.items()},
        metadata={"format": "pt"},
    )


def gguf_file(architecture: str = "llama", context: int = 4096) -> bytes:
    from gguf import GGUFWriter, LlamaFileType  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "model.gguf"
        writer = GGUFWriter(str(path), architecture)
        writer.add_context_length(context)
        writer.add_file_type(LlamaFileType.MOSTLY_F16)
        writer.add_tensor("token_embd.weight", np.zeros((32, 4), dtype=np.float16))
        writer.add_tensor("output.weight", np.zeros((4, 32), dtype=np.float16))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        return path.read_bytes()


def config_json() -> bytes:
    return json.dumps(
        {
            "architectures": ["LlamaForCausalLM"],
            "max_position_embeddings": 8192,
            "torch_dtype": "bfloat16",
            "model_type": "llama",
        }
    ).encode()


def model_card(license_id: str) -> bytes:
    return f"---\nlicense: {license_id}\ntags: [demo]\n---\n# A model\n".encode()

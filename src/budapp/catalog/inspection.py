"""Safety scan and metadata of model files, on a local copy, without ever loading them.

Pickle-based files (and zip-packed PyTorch archives) are walked opcode by opcode by
picklescan; every global they import must be on a small allow-list of tensor-rebuild
functions, anything else fails the scan. safetensors and GGUF headers are parsed and validated
by their own libraries. Facts (architecture, parameter count, context length, dtype,
quantization, license) are read from config.json, the weight headers and README front matter."""

from __future__ import annotations

import json
import math
import pickletools
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

import yaml

PICKLE_EXTENSIONS = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})
# Files a model repository holds besides weights; anything else is refused at upload.
PLAIN_EXTENSIONS = frozenset(
    {".json", ".txt", ".md", ".model", ".tiktoken", ".jinja", ".yaml", ".yml", ".gitattributes"}
)
ALLOWED_EXTENSIONS = PICKLE_EXTENSIONS | PLAIN_EXTENSIONS | {".safetensors", ".gguf"}
_JSON_LIMIT = 16 * 1024 * 1024

_STORAGE_KINDS = (
    *("Float", "Half", "BFloat16", "Double", "Long", "Int", "Short", "Char", "Byte", "Bool"),
)
_DTYPES = (
    *("float16", "float32", "float64", "bfloat16", "int8", "uint8", "int16", "int32"),
    *("int64", "bool"),
)
# Globals a PyTorch/NumPy checkpoint needs to rebuild tensors, and nothing that runs code.
SAFE_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {("collections", "OrderedDict"), ("_codecs", "encode"), ("torch", "Size")}
    | {("builtins", name) for name in ("set", "frozenset", "slice", "bytearray", "complex")}
    | {
        ("torch._utils", name)
        for name in (
            "_rebuild_tensor",
            "_rebuild_tensor_v2",
            "_rebuild_tensor_v3",
            "_rebuild_parameter",
            "_rebuild_parameter_with_state",
        )
    }
    | {("torch._tensor", "_rebuild_from_type_v2"), ("torch", "UntypedStorage")}
    | {("torch", f"{kind}Storage") for kind in _STORAGE_KINDS}
    | {("torch", dtype) for dtype in _DTYPES}
    | {
        (module, name)
        for module in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    }
    | {("numpy", "ndarray"), ("numpy", "dtype")}
)


@dataclass
class Inspection:
    """What was found in one model's files."""

    findings: list[dict[str, str]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    parameters: int = 0
    dtypes: Counter[str] = field(default_factory=Counter)
    formats: set[str] = field(default_factory=set)

    def fail(self, path: str, code: str, message: str) -> None:
        self.findings.append({"file": path, "code": code, "message": message})

    def learn(self, **facts: Any) -> None:
        for key, value in facts.items():
            if value is not None:
                self.facts.setdefault(key, value)

    def summary(self) -> dict[str, Any]:
        summary = dict(self.facts)
        if self.parameters:
            summary["parameter_count"] = self.parameters
        if self.dtypes and "dtype" not in summary:
            summary["dtype"] = self.dtypes.most_common(1)[0][0]
        if self.formats:
            summary["file_format"] = self.formats.pop() if len(self.formats) == 1 else "mixed"
        return summary


def extension(path: str) -> str:
    name = PurePosixPath(path).name
    return ".gitattributes" if name == ".gitattributes" else PurePosixPath(name).suffix.lower()


def inspect_file(
    report: Inspection, local: Path, path: str, *, zip_max_ratio: int, zip_max_bytes: int
) -> None:
    suffix = extension(path)
    try:
        if suffix in PICKLE_EXTENSIONS:
            report.formats.add("pytorch")
            _scan_pickle(report, local, path, zip_max_ratio, zip_max_bytes)
        elif suffix == ".safetensors":
            report.formats.add("safetensors")
            _read_safetensors(report, local)
        elif suffix == ".gguf":
            report.formats.add("gguf")
            _read_gguf(report, local, path)
        elif PurePosixPath(path).name == "config.json":
            _read_config(report, local, path)
        elif PurePosixPath(path).name.lower() == "readme.md":
            _read_model_card(report, local)
    # Any parser failure is a finding, never a crash of the scan.
    except Exception as exc:
        report.fail(path, "unreadable", f"{type(exc).__name__}: {exc}"[:500])


# --- pickles ------------------------------------------------------------------------------


def _scan_pickle(
    report: Inspection, local: Path, path: str, max_ratio: int, max_bytes: int
) -> None:
    with local.open("rb") as handle:
        if zipfile.is_zipfile(handle):
            if not _zip_is_sane(report, handle, path, max_ratio, max_bytes):
                return
            parsed = _archive_pickles_parse(handle)
        else:
            handle.seek(0)
            parsed = _parses(handle)
        handle.seek(0)
        from picklescan import scanner  # noqa: PLC0415 - loaded by the scan worker only

        result = scanner.scan_bytes(handle, path, extension(path))
    # picklescan reports a file that is no pickle at all as clean: a weights file that
    # cannot be read as a pickle is refused here instead.
    if not parsed or result.scan_err:
        report.fail(path, "unparseable_pickle", "the file is not a pickle that can be checked")
    unsafe = sorted({f"{g.module}.{g.name}" for g in result.globals} - _allowed_names())
    if unsafe:
        report.fail(
            path, "unsafe_pickle", f"imports outside the tensor allow-list: {', '.join(unsafe)}"
        )


def _parses(stream: IO[bytes]) -> bool:
    """The first pickle in the stream is complete and made of known opcodes."""
    try:
        for _ in pickletools.genops(stream):
            pass
    except Exception:  # any malformation: unknown opcode, truncation, bad argument
        return False
    return True


def _archive_pickles_parse(handle: IO[bytes]) -> bool:
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        pickles = [name for name in archive.namelist() if name.endswith(".pkl")]
        if not pickles:
            return False
        for name in pickles:
            with archive.open(name) as member:
                if not _parses(member):
                    return False
    return True


def _allowed_names() -> set[str]:
    return {f"{module}.{name}" for module, name in SAFE_GLOBALS}


def _zip_is_sane(
    report: Inspection, handle: IO[bytes], path: str, max_ratio: int, max_bytes: int
) -> bool:
    """A zip bomb is refused from its directory alone, before anything is decompressed."""
    handle.seek(0)
    with zipfile.ZipFile(handle) as archive:
        members = archive.infolist()
    total = sum(member.file_size for member in members)
    if total > max_bytes:
        report.fail(path, "zip_bomb", f"the archive expands to {total} bytes")
        return False
    for member in members:
        ratio = member.file_size / max(member.compress_size, 1)
        if member.file_size > 1024 * 1024 and ratio > max_ratio:
            report.fail(path, "zip_bomb", f"{member.filename} expands {ratio:.0f}-fold")
            return False
    return True


# --- safetensors and GGUF -----------------------------------------------------------------


def _read_safetensors(report: Inspection, local: Path) -> None:
    from safetensors import safe_open  # noqa: PLC0415 - heavy import, only for weight files

    with safe_open(str(local), framework="numpy") as weights:
        for name in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
            tensor = weights.get_slice(name)
            report.parameters += math.prod(tensor.get_shape())
            report.dtypes[tensor.get_dtype().lower()] += 1


def _read_gguf(report: Inspection, local: Path, path: str) -> None:
    from gguf import GGUFReader, LlamaFileType  # noqa: PLC0415 - heavy import

    reader = GGUFReader(str(local))

    def value(key: str) -> Any:
        found = reader.fields.get(key)
        return None if found is None else found.contents()

    architecture = value("general.architecture")
    file_type = value("general.file_type")
    quantization = None
    if isinstance(file_type, int) and file_type in LlamaFileType._value2member_map_:
        quantization = LlamaFileType(file_type).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    report.learn(
        architecture=architecture,
        context_length=value(f"{architecture}.context_length") if architecture else None,
        quantization=quantization,
        license=value("general.license"),
    )
    report.parameters += sum(int(tensor.n_elements) for tensor in reader.tensors)
    if not reader.tensors:
        report.fail(path, "empty_gguf", "the GGUF file holds no tensors")


# --- config.json and model card -------------------------------------------------------------


def _read_config(report: Inspection, local: Path, path: str) -> None:
    if local.stat().st_size > _JSON_LIMIT:
        report.fail(path, "config_too_large", "config.json is larger than 16 MiB")
        return
    config = json.loads(local.read_text(encoding="utf-8"))
    if not isinstance(config, dict):
        report.fail(path, "invalid_config", "config.json is not a JSON object")
        return
    architectures = config.get("architectures")
    quantization = config.get("quantization_config")
    context = next(
        (
            config[key]
            for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")
            if isinstance(config.get(key), int)
        ),
        None,
    )
    report.learn(
        architecture=architectures[0]
        if isinstance(architectures, list) and architectures
        else config.get("model_type"),
        context_length=context,
        dtype=config.get("torch_dtype") or config.get("dtype"),
        quantization=quantization.get("quant_method") if isinstance(quantization, dict) else None,
    )


def _read_model_card(report: Inspection, local: Path) -> None:
    with local.open("r", encoding="utf-8", errors="replace") as handle:
        head = handle.read(64 * 1024)
    if not head.startswith("---"):
        return
    front, _, _ = head[3:].partition("\n---")
    card = yaml.safe_load(front)
    if isinstance(card, dict) and isinstance(card.get("license"), str):
        report.learn(license=card["license"])

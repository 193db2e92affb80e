"""The safety scan and metadata reader on files made by the tests."""

from __future__ import annotations

import io
import pickletools
import zipfile
from pathlib import Path

import pytest

from budapp.catalog.inspection import Inspection, inspect_file
from tests.catalog import samples


def inspect(tmp_path: Path, files: dict[str, bytes]) -> Inspection:
    report = Inspection()
    for index, (name, data) in enumerate(files.items()):
        local = tmp_path / f"{index}-{Path(name).name}"
        local.write_bytes(data)
        inspect_file(report, local, name, zip_max_ratio=100, zip_max_bytes=10**12)
    return report


def codes(report: Inspection) -> list[str]:
    return [finding["code"] for finding in report.findings]


def test_tensor_pickle_sample_is_a_well_formed_pickle() -> None:
    # The hand-assembled sample must be a real pickle, or the "benign" tests prove nothing.
    pickletools.dis(samples.tensor_pickle(), out=open("/dev/null", "w"))  # noqa: SIM115


@pytest.mark.parametrize("name", ["pytorch_model.bin", "weights.pt", "state.pkl", "m.ckpt"])
def test_benign_tensor_pickle_passes(tmp_path: Path, name: str) -> None:
    report = inspect(tmp_path, {name: samples.tensor_pickle()})
    assert report.findings == []
    assert report.summary()["file_format"] == "pytorch"


def test_zip_packed_torch_checkpoint_passes(tmp_path: Path) -> None:
    report = inspect(
        tmp_path, {"pytorch_model.bin": samples.torch_archive(samples.tensor_pickle())}
    )
    assert report.findings == []


def test_pickle_that_calls_os_system_fails(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"pytorch_model.bin": samples.malicious_pickle()})
    assert codes(report) == ["unsafe_pickle"]
    assert "system" in report.findings[0]["message"]


def test_malicious_pickle_inside_a_torch_archive_fails(tmp_path: Path) -> None:
    archive = samples.torch_archive(samples.malicious_pickle())
    report = inspect(tmp_path, {"model.pt": archive})
    assert codes(report) == ["unsafe_pickle"]


def test_any_global_beyond_the_allow_list_fails(tmp_path: Path) -> None:
    # builtins.getattr is not dangerous by name in every scanner's deny-list; here it is
    # simply not a tensor-rebuild function.
    crafted = b"\x80\x02cbuiltins\ngetattr\n)R."
    report = inspect(tmp_path, {"x.pkl": crafted})
    assert codes(report) == ["unsafe_pickle"]
    assert "builtins.getattr" in report.findings[0]["message"]


def test_zip_bomb_is_refused_without_inflating_it(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"pytorch_model.bin": samples.zip_bomb()})
    assert codes(report) == ["zip_bomb"]


def test_zip_over_the_total_size_limit_is_refused(tmp_path: Path) -> None:
    local = tmp_path / "a.bin"
    local.write_bytes(samples.torch_archive(samples.tensor_pickle()))
    report = Inspection()
    inspect_file(report, local, "a.bin", zip_max_ratio=100, zip_max_bytes=10)
    assert codes(report) == ["zip_bomb"]


def test_garbage_pickle_fails(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"pytorch_model.bin": b"\xff\xfe this is not a pickle"})
    assert codes(report) == ["unparseable_pickle"]


def test_truncated_pickle_fails(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"model.pkl": samples.tensor_pickle()[:-5]})
    assert codes(report) == ["unparseable_pickle"]


def test_archive_without_a_pickle_fails(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "no pickle here")
    report = inspect(tmp_path, {"model.bin": buffer.getvalue()})
    assert codes(report) == ["unparseable_pickle"]


def test_safetensors_header_gives_parameters_and_dtype(tmp_path: Path) -> None:
    report = inspect(
        tmp_path,
        {"config.json": samples.config_json(), "model.safetensors": samples.safetensors_file()},
    )
    assert report.findings == []
    summary = report.summary()
    assert summary["parameter_count"] == 16 * 8 * 2
    assert summary["architecture"] == "LlamaForCausalLM"
    assert summary["context_length"] == 8192
    # config.json's torch_dtype wins over the tensors' own.
    assert summary["dtype"] == "bfloat16"
    assert summary["file_format"] == "safetensors"


def test_safetensors_dtype_from_the_header_without_config(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"model.safetensors": samples.safetensors_file()})
    assert report.summary()["dtype"] == "f16"


@pytest.mark.parametrize(
    "data",
    [
        b"\xff" * 8 + b"{}",  # header length far beyond the file
        b"\x02\x00\x00\x00\x00\x00\x00\x00{",  # header is not JSON
        (12).to_bytes(8, "little") + b'{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}'[:12],
    ],
)
def test_corrupt_safetensors_fails(tmp_path: Path, data: bytes) -> None:
    report = inspect(tmp_path, {"model.safetensors": data})
    assert codes(report) == ["unreadable"]


def test_gguf_header_gives_architecture_context_and_quantization(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"model.gguf": samples.gguf_file("llama", 4096)})
    assert report.findings == []
    summary = report.summary()
    assert summary["architecture"] == "llama"
    assert summary["context_length"] == 4096
    assert summary["quantization"] == "F16"
    assert summary["parameter_count"] == 32 * 4 * 2


def test_corrupt_gguf_fails(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"model.gguf": b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 40})
    assert codes(report) == ["unreadable"]


def test_license_from_the_model_card(tmp_path: Path) -> None:
    report = inspect(tmp_path, {"README.md": samples.model_card("llama3.1")})
    assert report.summary()["license"] == "llama3.1"

"""The streaming multipart reader: parts split anywhere across chunks, fields and files in any
order, and malformed bodies refused."""

from __future__ import annotations

import os
import random
from collections.abc import AsyncIterator

import pytest

from budapp.core.errors import InvalidInput
from budapp.core.multipart import MAX_FIELD_BYTES, ReceivedForm, read_form_into

BOUNDARY = "----budapp-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False

    async def write(self, data: bytes) -> None:
        self.data += data

    async def close(self) -> None:
        self.closed = True


def body(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = bytearray()
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += content + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


async def chunked(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    position = 0
    for size in sizes:
        if position >= len(data):
            return
        yield data[position : position + size]
        position += size
    if position < len(data):
        yield data[position:]


async def read(data: bytes, sizes: list[int]) -> tuple[ReceivedForm, dict[str, Sink]]:
    sinks: dict[str, Sink] = {}

    async def open_sink(field: str, filename: str) -> Sink:
        sinks[f"{field}:{filename}"] = Sink()
        return sinks[f"{field}:{filename}"]

    form = ReceivedForm()
    await read_form_into(form, chunked(data, sizes), CONTENT_TYPE, open_sink)
    return form, sinks


@pytest.mark.parametrize("chunk", [1, 7, 64, 4096, 1 << 20])
async def test_parts_split_anywhere_are_reassembled(chunk: int) -> None:
    weights = os.urandom(50_000) + f"\r\n--{BOUNDARY}x".encode() + os.urandom(100)
    data = body(
        [
            ("name", None, "modèle".encode()),
            ("file", "a.bin", weights),
            ("tags", None, b"x"),
            ("tags", None, b"y"),
            ("file", "b.json", b"{}"),
        ]
    )
    form, sinks = await read(data, [chunk] * (len(data) // chunk + 1))
    assert form.fields == {"name": ["modèle"], "tags": ["x", "y"]}
    assert bytes(sinks["file:a.bin"].data) == weights
    assert bytes(sinks["file:b.json"].data) == b"{}"
    assert all(sink.closed for sink in sinks.values())
    assert [(name, filename) for name, filename, _ in form.files] == [
        ("file", "a.bin"),
        ("file", "b.json"),
    ]


async def test_random_chunking() -> None:
    rng = random.Random(7)  # noqa: S311 - reproducible chunk sizes, not a secret
    content = os.urandom(200_000)
    data = body([("file", "w.bin", content), ("name", None, b"n")])
    sizes = [rng.randint(1, 5000) for _ in range(len(data))]
    form, sinks = await read(data, sizes)
    assert bytes(sinks["file:w.bin"].data) == content
    assert form.first("name") == "n"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"hello", "text/plain"),
        (b"hello", "multipart/form-data"),  # no boundary
        (body([("file", "a.bin", b"x")])[:-30], CONTENT_TYPE),  # ends inside a part
        (body([("name", None, b"x" * (MAX_FIELD_BYTES + 1))]), CONTENT_TYPE),
        (body([("name", None, b"\xff\xfe")]), CONTENT_TYPE),  # not UTF-8
        (body([("na\x00me", None, b"x")]), CONTENT_TYPE),
    ],
)
async def test_malformed_bodies_are_refused(data: bytes, content_type: str) -> None:
    async def open_sink(field: str, filename: str) -> Sink:
        return Sink()

    with pytest.raises(InvalidInput):
        await read_form_into(ReceivedForm(), chunked(data, [1024] * 1000), content_type, open_sink)

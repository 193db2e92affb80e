"""A streaming multipart/form-data reader: request chunks go through python-multipart's push
parser and file contents go straight to a sink (object storage), so an upload of any size
uses a few chunks of memory. Starlette's `request.form()` would spool the files first."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from budapp.core.errors import InvalidInput

MAX_FIELD_BYTES = 64 * 1024
MAX_PARTS = 1000


class FileSink(Protocol):
    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


OpenSink = Callable[[str, str], Awaitable[FileSink]]


@dataclass
class ReceivedForm:
    fields: dict[str, list[str]] = field(default_factory=dict)
    files: list[tuple[str, str, FileSink]] = field(default_factory=list)

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    data: list[bytes] = field(default_factory=list)
    headers_done: bool = False
    opened: bool = False
    done: bool = False


class _Collector:
    """Receives python-multipart's synchronous callbacks; the async reader drains what they
    collected after each chunk."""

    def __init__(self) -> None:
        self.parts: list[_Part] = []
        self._field = b""
        self._value = b""

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": lambda: self.parts.append(_Part()),
            "on_header_field": self._on_field,
            "on_header_value": self._on_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": lambda data, start, end: self.parts[-1].data.append(data[start:end]),
            "on_part_end": self._on_part_end,
        }

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        self.parts[-1].headers[self._field.decode("latin-1").lower()] = self._value
        self._field = self._value = b""

    def _on_headers_finished(self) -> None:
        self.parts[-1].headers_done = True

    def _on_part_end(self) -> None:
        self.parts[-1].done = True


def boundary_of(content_type: str) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidInput("Expected a multipart/form-data body with a boundary")
    return boundary


async def read_form(
    stream: AsyncIterator[bytes], content_type: str, open_sink: OpenSink
) -> ReceivedForm:
    """Reads the whole form: text fields into memory (small, capped), each file part into the
    sink `open_sink(field_name, filename)` returns."""
    form = ReceivedForm()
    await read_form_into(form, stream, content_type, open_sink)
    return form


async def read_form_into(
    form: ReceivedForm, stream: AsyncIterator[bytes], content_type: str, open_sink: OpenSink
) -> None:
    """As `read_form`, filling a form the caller holds, so that the caller can clean up the
    sinks already opened when reading fails halfway."""
    reader = _FormReader(form, open_sink)
    parser = MultipartParser(boundary_of(content_type), reader.collector.callbacks())  # type: ignore[arg-type]
    try:
        async for chunk in stream:
            parser.write(chunk)
            await reader.drain()
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidInput(f"Malformed multipart body: {exc}") from None
    await reader.drain()
    if reader.current is not None or reader.collector.parts:
        raise InvalidInput("The multipart body ended in the middle of a part")


class _FormReader:
    def __init__(self, form: ReceivedForm, open_sink: OpenSink) -> None:
        self.form = form
        self.open_sink = open_sink
        self.collector = _Collector()
        self.current: FileSink | None = None
        self.value = bytearray()
        self.count = 0

    async def drain(self) -> None:
        parts = self.collector.parts
        while parts and parts[0].headers_done:
            part = parts[0]
            if not part.opened:
                await self._open(part)
            for data in part.data:
                await self._receive(data)
            part.data.clear()
            if not part.done:
                return
            await self._close(part)
            parts.pop(0)

    async def _open(self, part: _Part) -> None:
        part.opened = True
        self.count += 1
        if self.count > MAX_PARTS:
            raise InvalidInput(f"A form may have at most {MAX_PARTS} parts")
        name, filename = _disposition(part.headers)
        if filename is not None:
            self.current = await self.open_sink(name, filename)
            self.form.files.append((name, filename, self.current))

    async def _receive(self, data: bytes) -> None:
        if self.current is not None:
            await self.current.write(data)
            return
        self.value += data
        if len(self.value) > MAX_FIELD_BYTES:
            raise InvalidInput(f"A form field may hold at most {MAX_FIELD_BYTES} bytes")

    async def _close(self, part: _Part) -> None:
        if self.current is not None:
            await self.current.close()
            self.current = None
            return
        name, _ = _disposition(part.headers)
        self.form.fields.setdefault(name, []).append(_text(self.value))
        self.value = bytearray()


def _disposition(headers: dict[str, bytes]) -> tuple[str, str | None]:
    kind, options = parse_options_header(headers.get("content-disposition", b""))
    name = options.get(b"name")
    if kind != b"form-data" or name is None:
        raise InvalidInput("Each form part needs a Content-Disposition: form-data with a name")
    filename = options.get(b"filename")
    return _text(name), None if filename is None else _text(filename)


def _text(value: bytes | bytearray) -> str:
    try:
        text = bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("Form fields and file names must be UTF-8") from None
    if "\x00" in text:
        raise InvalidInput("Form fields and file names must not contain NUL")
    return text

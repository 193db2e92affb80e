"""Validates a dataset file on a local spool copy, in a worker thread: JSONL line by line,
CSV and Parquet through pyarrow's streaming readers, so a large file never sits in memory.
Returns the columns, the row count and the first rows."""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budapp.datasets.models import DatasetFormat

if TYPE_CHECKING:
    import pyarrow as pa

_CELL_LIMIT = 1000
_JSON_TYPES: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    dict: "object",
    list: "array",
    type(None): "null",
}
_MAX_COLUMNS = 10_000


class DatasetInvalid(ValueError):
    pass


@dataclass
class DatasetSummary:
    row_count: int = 0
    columns: list[dict[str, str]] = field(default_factory=list)
    preview: list[dict[str, Any]] = field(default_factory=list)


def format_of(filename: str, declared: str | None) -> DatasetFormat:
    if declared:
        try:
            return DatasetFormat(declared.lower())
        except ValueError:
            raise DatasetInvalid(f"unknown dataset format {declared!r}") from None
    suffix = Path(filename).suffix.lower()
    by_suffix = {
        ".jsonl": DatasetFormat.JSONL,
        ".ndjson": DatasetFormat.JSONL,
        ".csv": DatasetFormat.CSV,
        ".parquet": DatasetFormat.PARQUET,
    }
    if suffix not in by_suffix:
        raise DatasetInvalid(
            f"unknown file type {suffix or filename!r}: use .jsonl, .csv or .parquet"
        )
    return by_suffix[suffix]


def summarize(
    path: Path, kind: DatasetFormat, *, preview_rows: int, max_rows: int
) -> DatasetSummary:
    readers = {
        DatasetFormat.JSONL: _jsonl,
        DatasetFormat.CSV: _csv,
        DatasetFormat.PARQUET: _parquet,
    }
    # pyarrow is imported when first needed: it costs ~50 MiB of memory in every process.
    import pyarrow as pa  # noqa: PLC0415

    try:
        summary = readers[kind](path, preview_rows, max_rows)
    except (pa.ArrowException, OSError) as exc:
        raise DatasetInvalid(f"the {kind.value} file does not parse: {exc}"[:1000]) from None
    if summary.row_count == 0:
        raise DatasetInvalid("the dataset has no rows")
    if summary.row_count > max_rows:
        raise DatasetInvalid(f"the dataset has more than {max_rows} rows")
    if not summary.columns:
        raise DatasetInvalid("the dataset has no columns")
    return summary


def _jsonl(path: Path, preview_rows: int, max_rows: int) -> DatasetSummary:
    summary = DatasetSummary()
    seen: dict[str, str] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DatasetInvalid(f"line {number} is not valid UTF-8") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise DatasetInvalid(f"line {number} is not valid JSON: {exc}") from None
            if not isinstance(row, dict):
                raise DatasetInvalid(f"line {number} is not a JSON object")
            for key, value in row.items():
                if key not in seen and len(seen) < _MAX_COLUMNS:
                    seen[key] = _JSON_TYPES.get(type(value), "string")
            summary.row_count += 1
            if summary.row_count > max_rows:
                break
            if len(summary.preview) < preview_rows:
                summary.preview.append({k: _cell(v) for k, v in row.items()})
    summary.columns = [{"name": name, "type": kind} for name, kind in seen.items()]
    return summary


def _csv(path: Path, preview_rows: int, max_rows: int) -> DatasetSummary:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.csv as pa_csv  # noqa: PLC0415

    summary = DatasetSummary()
    reader = pa_csv.open_csv(path, read_options=pa_csv.ReadOptions(encoding="utf8"))
    names = reader.schema.names
    if len(set(names)) != len(names):
        raise DatasetInvalid("the CSV header repeats a column name")
    for batch in reader:
        # pyarrow types a column that is not valid UTF-8 as binary rather than failing.
        for column in batch.schema:
            if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
                raise DatasetInvalid(f"column {column.name!r} is not valid UTF-8 text")
        if len(summary.preview) < preview_rows:
            head = batch.slice(0, preview_rows - len(summary.preview)).to_pylist()
            summary.preview.extend({k: _cell(v) for k, v in row.items()} for row in head)
        summary.row_count += batch.num_rows
        if summary.row_count > max_rows:
            break
    summary.columns = _columns(reader.schema)
    return summary


def _parquet(path: Path, preview_rows: int, max_rows: int) -> DatasetSummary:  # noqa: ARG001
    import pyarrow.parquet as pq  # noqa: PLC0415

    parquet = pq.ParquetFile(path)
    summary = DatasetSummary(row_count=parquet.metadata.num_rows)
    summary.columns = _columns(parquet.schema_arrow)
    for batch in parquet.iter_batches(batch_size=preview_rows):
        summary.preview = [{k: _cell(v) for k, v in row.items()} for row in batch.to_pylist()]
        break
    # Reading every row group proves the data (not only the footer) is intact.
    for index in range(parquet.num_row_groups):
        parquet.read_row_group(index)
    return summary


def _columns(schema: pa.Schema) -> list[dict[str, str]]:
    return [{"name": f.name, "type": str(f.type)} for f in schema][:_MAX_COLUMNS]


def _cell(value: Any) -> Any:
    """A preview cell as JSON: long text cut, bytes as base64, dates as ISO strings."""
    result: Any
    if isinstance(value, str):
        result = value[:_CELL_LIMIT]
    elif isinstance(value, bytes):
        result = base64.b64encode(value[:_CELL_LIMIT]).decode()
    elif isinstance(value, dt.date | dt.datetime | dt.time):
        result = value.isoformat()
    elif isinstance(value, dict):
        result = {str(k): _cell(v) for k, v in list(value.items())[:100]}
    elif isinstance(value, list | tuple):
        result = [_cell(v) for v in list(value)[:100]]
    elif isinstance(value, float):
        result = value if math.isfinite(value) else None  # NaN and infinities are not JSON
    elif value is None or isinstance(value, bool | int):
        result = value
    else:  # Decimal and other exotic scalars
        result = str(value)[:_CELL_LIMIT]
    return result

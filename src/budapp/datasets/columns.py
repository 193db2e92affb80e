"""One column of a dataset version, read for code that sends its values somewhere (a
benchmark's prompts): the version's object is spooled to a private temporary file, then read
in a worker thread (JSONL line by line, CSV and Parquet through pyarrow, that column only)."""

from __future__ import annotations

import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from budapp.adapters.storage import ObjectStorage, read_verified
from budapp.datasets.models import DatasetFormat, DatasetVersion


async def read_column(
    storage: ObjectStorage, version: DatasetVersion, column: str, limit: int
) -> list[Any]:
    with tempfile.TemporaryDirectory(prefix="budapp-column-") as directory:
        path = Path(directory) / "data"
        with path.open("wb") as out:
            async for chunk in read_verified(storage, version.object_key, version.sha256):
                await asyncio.to_thread(out.write, chunk)
        return await asyncio.to_thread(_values, path, version.format, column, limit)


def _values(path: Path, format: DatasetFormat, column: str, limit: int) -> list[Any]:
    if format is DatasetFormat.JSONL:
        values: list[Any] = []
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if len(values) >= limit:
                    break
                if line.strip():
                    row = json.loads(line)
                    values.append(row.get(column) if isinstance(row, dict) else None)
        return values
    if format is DatasetFormat.CSV:
        from pyarrow import csv  # noqa: PLC0415 - pyarrow is loaded only when a column is read

        table = csv.read_csv(path, convert_options=csv.ConvertOptions(include_columns=[column]))
    else:
        from pyarrow import parquet  # noqa: PLC0415

        table = parquet.read_table(path, columns=[column])
    return list(table.column(column).slice(0, limit).to_pylist())

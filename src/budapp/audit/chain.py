"""The hash chain: the canonical form of a record and its SHA-256 link.

The canonical form is `v1|` followed by every hashed field, in a fixed order, each written as
`<length>:<text>` (or `~` for NULL) and joined by `|`. Length prefixes make the encoding
unambiguous (no text can move from one field into the next unseen), and the form is plain
string concatenation so that the database itself can recompute it: `verify` runs the hashing
in SQL (see repository.py), far faster than fetching every row into Python."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64
VERSION = "v1"

# The fields that enter the hash, in order. `current_hash` is the output, not an input.
HASHED_FIELDS = (
    "sequence",
    "id",
    "created_at",
    "action",
    "resource_type",
    "resource_id",
    "actor_type",
    "actor_id",
    "actor_label",
    "organization_id",
    "ip_address",
    "user_agent",
    "request_id",
    "details",
    "previous_hash",
)

# UTC, always with microseconds; UUIDs as 32 hex digits. Both are how SQLite stores them, so
# the database reproduces the form with no string surgery.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def canonical_json(details: Mapping[str, Any]) -> str:
    """How `details` is stored and hashed: compact, keys sorted."""
    return json.dumps(details, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def field_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("booleans are not hashed fields")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    if isinstance(value, Mapping):
        return canonical_json(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


def canonical(record: Mapping[str, Any]) -> str:
    parts = []
    for name in HASHED_FIELDS:
        text = field_text(record[name])
        parts.append("~" if text is None else f"{len(text)}:{text}")
    return VERSION + "|" + "|".join(parts)


def link_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical(record).encode()).hexdigest()

"""The hash chain: canonical serialisation of a record and its SHA-256 link.

The canonical form is a compact JSON array in a fixed field order, with the details object's
keys sorted, preceded by the previous record's hash. A fixed order (rather than sorting every
key) keeps `verify` fast; the version prefix lets the form change later without ambiguity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

GENESIS_HASH = "0" * 64
_VERSION = "v1"

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

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode


def canonical(record: Mapping[Any, Any]) -> bytes:
    values = [_plain(name, record[name]) for name in HASHED_FIELDS]
    return (_VERSION + _dumps(values)).encode()


def link_hash(record: Mapping[Any, Any]) -> str:
    return hashlib.sha256(canonical(record)).hexdigest()


def _plain(name: str, value: Any) -> Any:
    if value is None or isinstance(value, (int, str, dict, list)):
        return value
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    if name in ("id", "organization_id"):
        return str(value)
    raise TypeError(f"unexpected {type(value).__name__} in audit field {name}")


@dataclass(frozen=True, slots=True)
class Break:
    sequence: int
    record_id: str | None
    reason: str


class ChainVerifier:
    """Walks records in sequence order and reports the first that breaks the chain."""

    def __init__(self, expected_sequence: int, expected_previous: str) -> None:
        self.expected_sequence = expected_sequence
        self.expected_previous = expected_previous
        self.checked = 0

    def check(self, record: Mapping[Any, Any]) -> Break | None:
        sequence = record["sequence"]
        record_id = str(record["id"])
        if sequence != self.expected_sequence:
            reason = (
                f"expected sequence {self.expected_sequence}, found {sequence}: "
                "records are missing or out of order"
            )
            return Break(self.expected_sequence, record_id, reason)
        if record["previous_hash"] != self.expected_previous:
            return Break(sequence, record_id, "previous_hash does not match the record before it")
        if link_hash(record) != record["current_hash"]:
            return Break(sequence, record_id, "current_hash does not match the record's contents")
        self.checked += 1
        self.expected_sequence += 1
        self.expected_previous = record["current_hash"]
        return None

"""The audit trail's single mechanism: every flush of a budapp session records the inserts,
updates and deletes of every table (unless the model opts out with `__audit__ = False`), in
the same transaction as the change. New domains are audited without writing a line.

Columns marked `info={"secret": True}` are recorded as changed, never with their value;
columns marked `info={"audit": False}` (bookkeeping such as `updated_at`) are left out, and an
update that touches only those is not recorded at all."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.engine import Connection, Result
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.orm.attributes import get_history
from sqlalchemy.orm.base import NO_VALUE

from budapp.audit.chain import canonical_json, link_hash
from budapp.audit.models import AuditChainHead, AuditRecord
from budapp.core.db import BudappSession, utcnow
from budapp.core.origin import Actor, Origin, actor_of, origin_of

_NOT_AUDITED = frozenset({"created_at", "updated_at"})


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    resource_type: str
    resource_id: str | None
    organization_id: uuid.UUID | None
    details: dict[str, Any] = field(default_factory=dict)


def append(connection: Connection, entries: list[AuditEntry], actor: Actor, origin: Origin) -> None:
    """Appends entries to the chain inside the caller's transaction.

    The first statement advances the head row, which takes its row lock (PostgreSQL) or the
    database write lock (SQLite) until commit: concurrent appends from any request or replica
    queue here and each sees the hash the previous one left."""
    if not entries:
        return
    head = connection.execute(
        update(AuditChainHead)
        .where(AuditChainHead.id == 1)
        .values(last_sequence=AuditChainHead.last_sequence + len(entries))
        .returning(AuditChainHead.last_sequence, AuditChainHead.last_hash)
    ).one()
    sequence = head.last_sequence - len(entries)
    previous = head.last_hash
    now = utcnow()
    rows = []
    for entry in entries:
        sequence += 1
        row: dict[str, Any] = {
            "sequence": sequence,
            "id": uuid.uuid4(),
            "created_at": now,
            "action": entry.action,
            "resource_type": entry.resource_type,
            "resource_id": entry.resource_id,
            "actor_type": actor.kind,
            "actor_id": actor.id,
            "actor_label": actor.label,
            "organization_id": entry.organization_id or actor.organization_id,
            "ip_address": origin.ip_address,
            "user_agent": origin.user_agent,
            "request_id": origin.request_id,
            "details": canonical_json(entry.details),
            "previous_hash": previous,
        }
        row["current_hash"] = previous = link_hash(row)
        rows.append(row)
    connection.execute(insert(AuditRecord), rows)
    connection.execute(
        update(AuditChainHead).where(AuditChainHead.id == 1).values(last_hash=previous)
    )


def entries_for_flush(session: Session) -> list[AuditEntry]:
    entries = [_created(obj) for obj in session.new if _audited(obj)]
    entries += [e for obj in session.dirty if _audited(obj) and (e := _updated(obj))]
    entries += [_deleted(obj) for obj in session.deleted if _audited(obj)]
    return entries


@event.listens_for(BudappSession, "after_flush")
def _record_flush(session: Session, _: object) -> None:
    entries = entries_for_flush(session)
    if entries:
        append(session.connection(), entries, actor_of(session), origin_of(session))


@event.listens_for(BudappSession, "do_orm_execute")
def _record_bulk_delete(state: ORMExecuteState) -> Result[Any] | None:
    """`session.execute(delete(Model)...)` bypasses the flush, so the rows it is about to
    remove are read first and recorded exactly as `session.delete(row)` would be."""
    mapper = state.bind_mapper
    if not state.is_delete or mapper is None or not _audited(mapper.class_):
        return None
    doomed = select(mapper)
    where = getattr(state.statement, "whereclause", None)
    if where is not None:
        doomed = doomed.where(where)
    entries = [_deleted(obj) for obj in state.session.scalars(doomed).all()]
    result = state.invoke_statement()
    session = state.session
    append(session.connection(), entries, actor_of(session), origin_of(session))
    return result


def _audited(obj: object) -> bool:
    return bool(getattr(obj, "__audit__", True))


def _columns(obj: object) -> Iterable[Any]:
    for attribute in inspect(obj).mapper.column_attrs:
        column = attribute.columns[0]
        if attribute.key in _NOT_AUDITED or column.info.get("audit") is False:
            continue
        yield attribute, column


def _created(obj: object) -> AuditEntry:
    values = {
        attribute.key: "***" if column.info.get("secret") else _json(getattr(obj, attribute.key))
        for attribute, column in _columns(obj)
    }
    return _entry(obj, "create", {"values": values})


def _updated(obj: object) -> AuditEntry | None:
    changes: dict[str, Any] = {}
    for attribute, column in _columns(obj):
        history = get_history(obj, attribute.key)
        if not history.has_changes():
            continue
        new = history.added[0] if history.added else None
        if not history.deleted or history.deleted[0] is NO_VALUE:
            # Written without a known prior value (flagged as modified): record what was set.
            change = {"new": _json(new)}
        elif history.deleted[0] == new:
            continue
        else:
            change = {"old": _json(history.deleted[0]), "new": _json(new)}
        changes[attribute.key] = {"changed": True} if column.info.get("secret") else change
    if not changes:
        return None
    # A column set for the first time can name the action: a soft delete is a delete, a
    # revocation a revoke (models add theirs in `__audit_verbs__`).
    verbs = {"deleted_at": "delete", **getattr(obj, "__audit_verbs__", {})}
    verb = next(
        (
            verbs[name]
            for name, change in changes.items()
            if name in verbs and change.get("old") is None and change.get("new") is not None
        ),
        "update",
    )
    return _entry(obj, verb, {"changes": changes})


def _deleted(obj: object) -> AuditEntry:
    return _entry(obj, "delete", {"values": {"id": _json(getattr(obj, "id", None))}})


def _entry(obj: object, verb: str, details: dict[str, Any]) -> AuditEntry:
    resource = str(getattr(obj, "__audit_resource__", None) or type(obj).__name__.lower())
    identifier = getattr(obj, "id", None)
    # Rows without an organization_id (an organization itself, a membership) say which
    # tenant they belong to through `audit_organization_id`; else the actor's is used.
    organization = getattr(obj, "audit_organization_id", None) or getattr(
        obj, "organization_id", None
    )
    return AuditEntry(
        action=f"{resource}.{verb}",
        resource_type=resource,
        resource_id=str(identifier) if identifier is not None else None,
        organization_id=organization,
        details=details,
    )


def _json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (uuid.UUID, datetime)):
        return str(value) if isinstance(value, uuid.UUID) else value.isoformat()
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json(v) for v in value]
    return str(value)

"""Who caused a change and from where: the actor and request origin that audit records carry.

They travel on the unit of work (`session.info`), set by the request's dependencies, so that
code deep in a flush knows them without any service passing them along."""

from __future__ import annotations

import ipaddress
import uuid
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

ActorKind = Literal["user", "api_key", "service", "system"]

_ACTOR = "budapp.actor"
_ORIGIN = "budapp.origin"


@dataclass(frozen=True, slots=True)
class Actor:
    kind: ActorKind
    id: str | None
    organization_id: uuid.UUID | None = None
    label: str | None = None


SYSTEM = Actor(kind="system", id=None, label="budapp")


@dataclass(frozen=True, slots=True)
class Origin:
    ip_address: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


def set_actor(session: Session, actor: Actor) -> None:
    session.info[_ACTOR] = actor


def actor_of(session: Session) -> Actor:
    actor = session.info.get(_ACTOR)
    return actor if isinstance(actor, Actor) else SYSTEM


def set_origin(session: Session, origin: Origin) -> None:
    session.info[_ORIGIN] = origin


def origin_of(session: Session) -> Origin:
    origin = session.info.get(_ORIGIN)
    return origin if isinstance(origin, Origin) else Origin()


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(entries: list[str]) -> list[Network]:
    return [ipaddress.ip_network(entry, strict=False) for entry in entries]


def client_address(peer: str | None, forwarded_for: str | None, trusted: list[Network]) -> str:
    """The client's address: the peer, or, when the peer is one of our trusted proxies, the
    right-most X-Forwarded-For hop that is not one of them."""
    address = peer or "unknown"
    if forwarded_for and _within(address, trusted):
        for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
            if not _within(hop, trusted):
                address = hop if _parse(hop) is not None else address
                break
    return address


def _parse(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _within(address: str, networks: list[Network]) -> bool:
    parsed = _parse(address)
    return parsed is not None and any(parsed in network for network in networks)

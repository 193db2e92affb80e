from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from budapp.audit.models import AuditRecord
from budapp.core.components import components


def query_of(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def start_login(client: httpx.AsyncClient, **params: str) -> str:
    response = await client.get("/auth/oauth/login", params=params)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def audit_details(app: FastAPI, action: str) -> list[dict[str, Any]]:
    async with components(app).session_factory() as session:
        rows = (
            await session.scalars(
                select(AuditRecord)
                .where(AuditRecord.action == action)
                .order_by(AuditRecord.sequence)
            )
        ).all()
    return [json.loads(row.details) for row in rows]

"""The first start against a fresh PostgreSQL database, with a transaction of the process
open meanwhile (as the webhook dispatcher's or the scan worker's is at start-up): DBOS's
schema migration (indexes built CONCURRENTLY, which wait for open transactions) must not
hang the start. Run in a subprocess: DBOS is one per process."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import (
    DEFAULT_POSTGRES_URL,
    drop_postgres_database,
    is_postgres,
    recreate_postgres_database,
)
from tests.workflows.test_recovery import ROOT


async def test_the_engine_starts_on_a_fresh_database_with_a_transaction_open() -> None:
    base = os.environ.get("BUDAPP_TEST_DATABASE_URL", "")
    if not is_postgres(base):
        pytest.skip("DBOS builds its indexes CONCURRENTLY only on PostgreSQL")
    url = (
        make_url(base or DEFAULT_POSTGRES_URL)
        .set(database=f"budapp_fresh_{uuid.uuid4().hex[:8]}")
        .render_as_string(hide_password=False)
    )
    await recreate_postgres_database(url)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.workflows.fresh_start",
        url,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        process.kill()
        await process.wait()
        pytest.fail("the engine did not start: DBOS's migration waited for this process")
    finally:
        await drop_postgres_database(url)
    assert process.returncode == 0, output.decode()
    assert "STARTED" in output.decode()

"""SQL is built in repositories. A statement built anywhere else (a service, a worker, a
workflow) is a query that the next reader will not find where the house keeps them, and a
tenant filter that no repository review saw. Exceptions are named below, with their reason."""

from __future__ import annotations

import ast
from pathlib import Path

import budapp

PACKAGE = Path(budapp.__file__).parent
# What builds or runs SQL: SQLAlchemy's statement constructors, and a session's query methods.
CONSTRUCTORS = {"select", "insert", "update", "delete", "text", "union", "union_all", "exists"}
SESSION_QUERIES = {"execute", "scalar", "scalars", "get", "stream", "stream_scalars"}
ALLOWED = {
    # Flush hooks: they run inside the ORM's flush, on its connection, for every domain.
    "audit/recorder.py": "the audit flush hook writes the chain in the flushing transaction",
    "auth/principals.py": "the principal cache's flush hook reads the users a bulk UPDATE touches",
    # Not budapp's own tables.
    "workflows/engine.py:dbos": "DBOS's own tables are DBOS's business",
    "core/db.py": "the engine and session factory (SQLite pragmas)",
    "core/repository.py": "the repository base and its helpers",
    "health/router.py": "the readiness probe's SELECT 1 is no query of an aggregate",
}


def _is_repository(relative: str) -> bool:
    return relative.endswith("repository.py") or "/repository/" in relative


def _names_a_session(node: ast.expr) -> bool:
    """`session`, `connection`, `self.session`: what a query runs on."""
    name = node.id if isinstance(node, ast.Name) else getattr(node, "attr", None)
    return name in {"session", "connection", "_session"}


def _violations(path: Path) -> list[str]:
    relative = path.relative_to(PACKAGE).as_posix()
    if (
        _is_repository(relative)
        or relative in ALLOWED
        # Tables and column types: DDL (server defaults, index predicates), not queries.
        or relative.endswith("models.py")
        or relative == "core/columns.py"
        # budapp-sim has no database.
        or relative.startswith("sim/")
    ):
        return []
    tree = ast.parse(path.read_text(), str(path))
    imported = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy")
        for alias in node.names
        if alias.name in CONSTRUCTORS
    }
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Name) and function.id in imported:
            found.append(f"{relative}:{node.lineno} {function.id}(...)")
        elif (
            isinstance(function, ast.Attribute)
            and function.attr in SESSION_QUERIES
            and _names_a_session(function.value)
        ):
            found.append(f"{relative}:{node.lineno} session.{function.attr}(...)")
    return found


def test_sql_is_built_only_in_repositories() -> None:
    found = [v for path in sorted(PACKAGE.rglob("*.py")) for v in _violations(path)]
    assert found == [], "SQL outside a repository:\n" + "\n".join(found)

"""The import contracts in pyproject.toml name the domains one by one: a domain added later and
forgotten there would be unchecked. These tests list the package's folders and modules and
fail when one is missing from a contract."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import budapp

PACKAGE = Path(budapp.__file__).parent
PYPROJECT = PACKAGE.parents[1] / "pyproject.toml"
SHARED = {"core", "adapters", "sim"}


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads(PYPROJECT.read_text())
    return {c["name"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _domains() -> set[str]:
    return {
        f"budapp.{folder.name}"
        for folder in PACKAGE.iterdir()
        if (folder / "__init__.py").exists() and folder.name not in SHARED
    }


def _top_modules() -> set[str]:
    return {f"budapp.{module.stem}" for module in PACKAGE.glob("*.py") if module.stem != "__init__"}


def test_every_domain_is_forbidden_to_core_and_adapters() -> None:
    contract = _contracts()["core and adapters never import a domain"]
    allowed = {"budapp.settings"}
    missing = (_domains() | _top_modules()) - allowed - set(contract["forbidden_modules"])
    assert missing == set()


def test_every_domain_keeps_its_layers() -> None:
    contract = _contracts()["layers inside each domain"]
    assert _domains() - set(contract["containers"]) == set()


def test_the_simulator_imports_nothing_else_of_budapp() -> None:
    contract = _contracts()["budapp.sim is independent of the rest of budapp"]
    everything = _domains() | _top_modules() | {"budapp.core", "budapp.adapters"}
    assert everything - set(contract["forbidden_modules"]) == set()

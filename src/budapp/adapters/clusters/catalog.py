"""Runtime templates: how to launch one kind of model server, as data (YAML files), so that a
new runtime is a new file rather than a new code branch.

A template's `command` is a list of arguments with placeholders: `{host}`, `{port}`,
`{model_name}`, `{model_path}`, `{context_length}`; an argument that is exactly
`{extra_args}` expands to the spec's extra arguments (zero or more). Templates shipped with
budapp live next to this module; an operator's directory (BUDAPP_RUNTIME_TEMPLATES_DIR) adds
templates or overrides shipped ones by name."""

from __future__ import annotations

import string
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from budapp.adapters.clusters.base import ProviderError, RuntimeSpec

SHIPPED = Path(__file__).parent / "templates"
PLACEHOLDERS = frozenset({"host", "port", "model_name", "model_path", "context_length"})
_EXTRA = "{extra_args}"


class TemplateError(ProviderError):
    """A template is malformed, unknown, or needs a value the spec does not give."""


class RuntimeTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    command: list[str] = Field(min_length=1)
    health_path: str = Field(default="/health", pattern=r"^/")
    readiness_timeout_seconds: float = Field(default=120.0, gt=0)
    env: dict[str, str] = Field(default_factory=dict)
    # What it runs on, for resource planning: `gpu` only, `cpu` only, `any` (GPU when one
    # fits, else CPU), or `none` (it loads no weights: the simulator).
    device: Literal["gpu", "cpu", "any", "none"] = "any"
    # Memory the runtime itself takes per replica, beyond the model (MiB).
    overhead_mib: int = Field(default=1024, ge=0)

    def render(self, spec: RuntimeSpec, *, host: str, port: int) -> list[str]:
        values: dict[str, object] = {
            "host": host,
            "port": port,
            "model_name": spec.model_name,
            "model_path": spec.model_path,
            "context_length": spec.context_length,
        }
        argv: list[str] = []
        for argument in self.command:
            if argument == _EXTRA:
                argv.extend(spec.extra_args)
                continue
            missing = [name for name in _fields(argument) if values.get(name) is None]
            if missing:
                raise TemplateError(
                    f"runtime template {self.name!r} needs {', '.join(missing)}, "
                    "which the runtime spec does not give"
                )
            argv.append(argument.format_map(values))
        return argv


def _fields(argument: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(argument) if name]


def _validate(template: RuntimeTemplate, source: Path) -> None:
    for argument in template.command:
        unknown = set(_fields(argument)) - PLACEHOLDERS
        if argument != _EXTRA and unknown:
            raise TemplateError(f"{source}: unknown placeholder(s) {sorted(unknown)}")


def load_template(path: Path) -> RuntimeTemplate:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        template = RuntimeTemplate.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError, ValueError) as exc:
        raise TemplateError(f"runtime template {path} is invalid: {exc}") from exc
    if template.name != path.stem:
        raise TemplateError(f"{path}: name {template.name!r} differs from the file name")
    _validate(template, path)
    return template


class TemplateCatalog:
    def __init__(self, templates: dict[str, RuntimeTemplate]) -> None:
        self._templates = templates

    @classmethod
    def load(cls, directories: Iterable[Path]) -> TemplateCatalog:
        """Later directories override earlier ones by template name."""
        templates: dict[str, RuntimeTemplate] = {}
        for directory in directories:
            for path in sorted(directory.glob("*.yaml")):
                templates[path.stem] = load_template(path)
        return cls(templates)

    def get(self, name: str) -> RuntimeTemplate:
        try:
            return self._templates[name]
        except KeyError:
            raise TemplateError(f"no runtime template named {name!r}") from None

    @property
    def names(self) -> list[str]:
        return sorted(self._templates)

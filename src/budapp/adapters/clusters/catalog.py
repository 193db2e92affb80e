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


class KubernetesRuntime(BaseModel):
    """How the runtime runs as a container on Kubernetes. The container runs the template's
    command (with `program` in place of its first word when the image names it differently),
    listening on `port`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = Field(min_length=1, max_length=512)
    program: list[str] | None = Field(default=None, min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    # Large weights take minutes to load: the startupProbe allows this long before the
    # liveness probe may restart the container. None: the template's readiness timeout.
    startup_timeout_seconds: float | None = Field(default=None, gt=0)
    # How long a pod may stay unscheduled (FailedScheduling) or pull its image.
    schedule_timeout_seconds: float = Field(default=600.0, gt=0)
    image_pull_timeout_seconds: float = Field(default=1800.0, gt=0)
    # The readiness probe's path: answers once the model is loaded (vLLM's /health answers
    # before that). budapp also sends one one-token completion before it reports RUNNING.
    readiness_path: str = Field(default="/v1/models", pattern=r"^/")
    shm_size: str = Field(default="8Gi", pattern=r"^[0-9]+(Ki|Mi|Gi|Ti)?$")


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
    kubernetes: KubernetesRuntime | None = None

    def container_command(self, spec: RuntimeSpec) -> list[str]:
        """The container's argv on Kubernetes: it listens on every address of its pod."""
        if self.kubernetes is None:
            raise TemplateError(f"runtime template {self.name!r} has no container image")
        argv = self.render(spec, host="0.0.0.0", port=self.kubernetes.port)  # noqa: S104
        return [*self.kubernetes.program, *argv[1:]] if self.kubernetes.program else argv

    @property
    def container(self) -> KubernetesRuntime:
        if self.kubernetes is None:
            raise TemplateError(f"runtime template {self.name!r} has no container image")
        return self.kubernetes

    @property
    def startup_timeout(self) -> float:
        k8s = self.kubernetes
        return (k8s.startup_timeout_seconds if k8s else None) or self.readiness_timeout_seconds

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

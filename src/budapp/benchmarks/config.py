"""What a benchmark does, as one validated value: the load profile, the prompts, the bounds of
each stage, the SLOs and the seed. The API's request body and `budapp bench run`'s options
both become a `BenchmarkConfig`; the load generator needs nothing else (docs/benchmarks.md)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StringConstraints, Tag, model_validator

from budapp.core.schemas import RequestSchema

# Bounds that fit the columns and keep one request sane; operators set lower ceilings.
MAX_TOKENS = 131_072
MAX_CONCURRENCY = 10_000
MAX_RATE = 100_000.0
MAX_DURATION_SECONDS = 7 * 24 * 3600.0


class TokenLengths(RequestSchema):
    """A length in tokens drawn per request: `fixed` (always `value`), `uniform` (between
    `min` and `max`, both included) or `normal` (mean `value`, standard deviation `stddev`,
    rounded, and kept within `min`..`max` when given, never below 1)."""

    distribution: Literal["fixed", "uniform", "normal"] = "fixed"
    value: int = Field(default=128, ge=1, le=MAX_TOKENS)
    min: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    stddev: float = Field(default=0.0, ge=0, le=MAX_TOKENS)

    @model_validator(mode="after")
    def _bounds(self) -> TokenLengths:
        if self.distribution == "uniform" and (self.min is None or self.max is None):
            raise ValueError("a uniform length needs min and max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min must not exceed max")
        return self

    def label(self) -> str:
        if self.distribution == "fixed":
            return str(self.value)
        if self.distribution == "uniform":
            return f"uniform({self.min}-{self.max})"
        return f"normal({self.value}±{self.stddev:g})"


class SyntheticPrompts(RequestSchema):
    """Prompts of words from a fixed vocabulary, one token each on budapp-sim's tokenizer
    (and about one each on common BPE tokenizers), drawn from the run's seed."""

    kind: Literal["synthetic"] = "synthetic"
    input_tokens: TokenLengths = Field(default_factory=lambda: TokenLengths(value=256))
    output_tokens: TokenLengths = Field(default_factory=lambda: TokenLengths(value=128))


ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class DatasetPrompts(RequestSchema):
    """Prompts from a dataset of the registry: a column of strings (each a user message or
    a completion prompt) or of chat messages (`[{"role", "content"}, ...]`), in row order."""

    kind: Literal["dataset"]
    dataset_id: uuid.UUID
    # None: the dataset's latest version when the run is created (recorded in the run).
    version: int | None = Field(default=None, ge=1, le=1_000_000)
    column: ColumnName
    output_tokens: TokenLengths = Field(default_factory=lambda: TokenLengths(value=128))


def _prompt_kind(value: Any) -> str:
    # `kind` may be left out: synthetic prompts are the default.
    kind = value.get("kind", "synthetic") if isinstance(value, dict) else value.kind
    return str(kind)


Prompts = Annotated[
    Annotated[SyntheticPrompts, Tag("synthetic")] | Annotated[DatasetPrompts, Tag("dataset")],
    Discriminator(_prompt_kind),
]
Arrivals = Literal["constant", "poisson"]


class ConcurrencyProfile(RequestSchema):
    """Closed loop: `concurrency` requests in flight, each followed at once by the next."""

    kind: Literal["concurrency"]
    concurrency: int = Field(ge=1, le=MAX_CONCURRENCY)


class RateProfile(RequestSchema):
    """Open loop: requests start at `rate` per second whatever the answers take: evenly
    spaced (`constant`) or with gamma-distributed gaps (`poisson`; `burstiness` is the
    gamma shape: 1 is a Poisson process, below 1 burstier, above 1 more regular)."""

    kind: Literal["rate"]
    rate: float = Field(gt=0, le=MAX_RATE)
    arrivals: Arrivals = "poisson"
    burstiness: float = Field(default=1.0, gt=0, le=100)
    # Requests in flight at most; the others wait for a slot (None: no limit but the ceiling).
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)


class SweepProfile(RequestSchema):
    """`points` stages: synchronous (one request at a time), then maximum throughput (closed
    loop at `max_concurrency`), then open-loop rates evenly spaced strictly between the two
    request rates measured."""

    kind: Literal["sweep"]
    points: int = Field(default=5, ge=2, le=20)
    max_concurrency: int = Field(default=64, ge=1, le=MAX_CONCURRENCY)
    arrivals: Arrivals = "poisson"
    burstiness: float = Field(default=1.0, gt=0, le=100)


class CapacityProfile(RequestSchema):
    """A bounded search for the highest load at which the SLOs hold: bisection over request
    rate (open loop) or concurrency (closed loop) between `low` and `high`, at most `steps`
    stages, stopping once the bracket is narrower than `tolerance` (relative)."""

    kind: Literal["capacity"]
    search: Literal["rate", "concurrency"] = "rate"
    low: float = Field(default=1.0, gt=0, le=MAX_RATE)
    high: float = Field(gt=0, le=MAX_RATE)
    steps: int = Field(default=6, ge=2, le=20)
    tolerance: float = Field(default=0.1, gt=0, lt=1)
    # The share of completed requests that must meet every SLO for the load to pass.
    attainment: float = Field(default=0.95, gt=0, le=1)
    arrivals: Arrivals = "poisson"
    burstiness: float = Field(default=1.0, gt=0, le=100)

    @model_validator(mode="after")
    def _bracket(self) -> CapacityProfile:
        if self.low >= self.high:
            raise ValueError("low must be below high")
        if self.search == "concurrency" and self.high > MAX_CONCURRENCY:
            raise ValueError(f"a concurrency search goes up to {MAX_CONCURRENCY}")
        return self


Profile = Annotated[
    ConcurrencyProfile | RateProfile | SweepProfile | CapacityProfile,
    Field(discriminator="kind"),
]


class Bounds(RequestSchema):
    """When a stage stops: the first bound reached. Requests still in flight then get
    `drain_seconds` to finish (a stop for errors or a cancel aborts them at once); aborted
    requests are kept as records but count in no metric."""

    duration_seconds: float = Field(default=60.0, gt=0, le=MAX_DURATION_SECONDS)
    max_requests: int | None = Field(default=None, ge=1, le=100_000_000)
    max_errors: int | None = Field(default=None, ge=1, le=100_000_000)
    # Checked once 20 requests have finished.
    max_error_rate: float | None = Field(default=None, gt=0, le=1)
    drain_seconds: float = Field(default=10.0, ge=0, le=3600)
    request_timeout_seconds: float = Field(default=300.0, gt=0, le=3600)


class Slos(RequestSchema):
    """Goodput counts the requests that meet every SLO given."""

    ttft_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    tpot_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    e2el_ms: float | None = Field(default=None, gt=0, le=3_600_000)

    @property
    def given(self) -> bool:
        return any(value is not None for value in (self.ttft_ms, self.tpot_ms, self.e2el_ms))


class BenchmarkConfig(RequestSchema):
    profile: Profile
    prompts: Prompts = Field(default_factory=SyntheticPrompts)
    bounds: Bounds = Field(default_factory=Bounds)
    slos: Slos = Field(default_factory=Slos)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    api: Literal["chat", "completions"] = "chat"
    # Sends `ignore_eos: true` with `max_tokens` so that every answer has exactly the output
    # length asked for (vLLM, SGLang and budapp-sim honour it; turn off for providers that
    # refuse unknown fields).
    exact_output: bool = True

    @model_validator(mode="after")
    def _slos_for_capacity(self) -> BenchmarkConfig:
        if isinstance(self.profile, CapacityProfile) and not self.slos.given:
            raise ValueError("a capacity search needs at least one SLO (slos.ttft_ms, ...)")
        return self

    @property
    def stages_at_most(self) -> int:
        profile = self.profile
        if isinstance(profile, SweepProfile):
            return profile.points
        if isinstance(profile, CapacityProfile):
            return profile.steps
        return 1

    def conditions(self) -> str:
        """What makes two results comparable, apart from the load itself: the API and the
        token lengths (dataset prompts: the dataset version and column)."""
        prompts = self.prompts
        if isinstance(prompts, SyntheticPrompts):
            source = f"in={prompts.input_tokens.label()}"
        else:
            source = f"dataset={prompts.dataset_id}@{prompts.version}:{prompts.column}"
        return f"{self.api} {source} out={prompts.output_tokens.label()}"

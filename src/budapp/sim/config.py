"""What the simulator serves and how it behaves: one frozen value, built by the CLI or tests."""

from __future__ import annotations

import enum
from dataclasses import dataclass

DEFAULT_MODEL = "budapp-sim"


class TextSource(enum.StrEnum):
    """Where the words of a completion come from."""

    WORDS = "words"  # sentences of words drawn from a built-in vocabulary
    ECHO = "echo"  # the prompt's own tokens, repeated as needed


class FailureMode(enum.StrEnum):
    """What a request chosen by the failure rate sees."""

    ERROR = "error"  # a 500 in OpenAI's error shape, before any output
    ABORT = "abort"  # streams are cut mid-way (connection closed, no [DONE]); others get a 500


@dataclass(frozen=True)
class SimConfig:
    # Names accepted in `model`; empty accepts any name and lists DEFAULT_MODEL in /v1/models.
    models: tuple[str, ...] = ()
    ttft_ms: float = 0.0
    ttft_jitter_ms: float = 0.0
    itl_ms: float = 0.0
    itl_jitter_ms: float = 0.0
    output_tokens_min: int = 16
    output_tokens_max: int = 16
    # Tokens per stream chunk after the first token (which comes alone): >1 streams as a server
    # with speculative decoding does, several tokens per event.
    tokens_per_chunk: int = 1
    failure_rate: float = 0.0
    failure_mode: FailureMode = FailureMode.ERROR
    # The status of an injected failure: 500, or e.g. 503, 529 (Anthropic's "overloaded"), 429.
    failure_status: int = 500
    max_concurrency: int = 0  # 0: no limit
    retry_after_s: int = 1
    seed: int | None = None
    text_source: TextSource = TextSource.WORDS
    embedding_dimensions: int = 384
    max_request_bytes: int = 16 * 1024 * 1024
    # Upper bound of n (choices per prompt), so that one request cannot ask for millions.
    max_choices: int = 128
    # Set: generation routes require it (`Authorization: Bearer`, Azure's `api-key`,
    # Anthropic's `x-api-key`); unset, any key or none is accepted.
    api_key: str | None = None
    # Keep the last N requests (path, query, headers, body) in `SimApp.received`, for tests
    # that check what a gateway sent; 0 keeps none (and costs nothing).
    record_requests: int = 0

    def __post_init__(self) -> None:
        # Plain strings (from code or tests) become the enums; a wrong one is a ValueError.
        object.__setattr__(self, "failure_mode", FailureMode(self.failure_mode))
        object.__setattr__(self, "text_source", TextSource(self.text_source))
        object.__setattr__(self, "models", tuple(self.models))
        problems = []
        delays = ("ttft_ms", "ttft_jitter_ms", "itl_ms", "itl_jitter_ms")
        for name in (*delays, "retry_after_s", "record_requests"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.output_tokens_min < 1:
            problems.append("output_tokens_min must be >= 1")
        if self.output_tokens_max < self.output_tokens_min:
            problems.append("output_tokens_max must be >= output_tokens_min")
        if self.tokens_per_chunk < 1:
            problems.append("tokens_per_chunk must be >= 1")
        if not 0.0 <= self.failure_rate <= 1.0:
            problems.append("failure_rate must be between 0 and 1")
        if self.max_concurrency < 0:
            problems.append("max_concurrency must be >= 0 (0: no limit)")
        if not 400 <= self.failure_status <= 599:
            problems.append("failure_status must be an HTTP error status (400 to 599)")
        if self.embedding_dimensions < 1:
            problems.append("embedding_dimensions must be >= 1")
        if self.max_request_bytes < 1024:
            problems.append("max_request_bytes must be >= 1024")
        if any(not name for name in self.models) or self.api_key == "":
            problems.append("model names and the api_key must not be empty")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def listed_models(self) -> tuple[str, ...]:
        return self.models or (DEFAULT_MODEL,)

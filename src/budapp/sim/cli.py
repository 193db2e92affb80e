"""`budapp-sim`: the simulator served by uvicorn; each option also reads a BUDAPP_SIM_* variable."""

from __future__ import annotations

import enum
from typing import Annotated

import typer
import uvicorn

from budapp.sim.app import create_app
from budapp.sim.config import FailureMode, SimConfig, TextSource

cli = typer.Typer(add_completion=False)


class LogLevel(enum.StrEnum):
    CRITICAL = "critical"
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"
    DEBUG = "debug"


ENV = "BUDAPP_SIM_"


def _option(help_: str, env: str, **kwargs: object) -> typer.models.OptionInfo:
    info: typer.models.OptionInfo = typer.Option(help=help_, envvar=ENV + env, **kwargs)  # type: ignore[arg-type]
    return info


@cli.command()
def serve(  # noqa: PLR0917 (typer: one parameter per option)
    host: Annotated[str, _option("Address to bind.", "HOST")] = "127.0.0.1",
    port: Annotated[int, _option("Port to listen on.", "PORT", min=0, max=65535)] = 8000,
    model: Annotated[
        list[str] | None,
        _option(
            "A served model name; repeat for several (env: space-separated). With none, any "
            "name is accepted and /v1/models lists `budapp-sim`.",
            "MODELS",
        ),
    ] = None,
    ttft_ms: Annotated[float, _option("Time to first token, ms.", "TTFT_MS", min=0)] = 0.0,
    ttft_jitter_ms: Annotated[
        float, _option("TTFT varies uniformly by up to ± this, ms.", "TTFT_JITTER_MS", min=0)
    ] = 0.0,
    itl_ms: Annotated[float, _option("Inter-token latency, ms.", "ITL_MS", min=0)] = 0.0,
    itl_jitter_ms: Annotated[
        float, _option("ITL varies uniformly by up to ± this, ms.", "ITL_JITTER_MS", min=0)
    ] = 0.0,
    output_tokens: Annotated[
        int | None,
        _option("Fixed completion length in tokens (sets min and max).", "OUTPUT_TOKENS", min=1),
    ] = None,
    output_tokens_min: Annotated[
        int, _option("Shortest completion, tokens.", "OUTPUT_TOKENS_MIN", min=1)
    ] = 16,
    output_tokens_max: Annotated[
        int, _option("Longest completion, tokens.", "OUTPUT_TOKENS_MAX", min=1)
    ] = 16,
    tokens_per_chunk: Annotated[
        int,
        _option(
            "Tokens per stream chunk after the first (speculative decoding sends several).",
            "TOKENS_PER_CHUNK",
            min=1,
        ),
    ] = 1,
    failure_rate: Annotated[
        float,
        _option("Fraction of requests that fail (0 to 1).", "FAILURE_RATE", min=0.0, max=1.0),
    ] = 0.0,
    failure_mode: Annotated[
        FailureMode,
        _option("error: a 500; abort: streams are cut mid-way.", "FAILURE_MODE"),
    ] = FailureMode.ERROR,
    failure_status: Annotated[
        int,
        _option(
            "Status of an injected failure (500, 503, 529, 429, ...).",
            "FAILURE_STATUS",
            min=400,
            max=599,
        ),
    ] = 500,
    max_concurrency: Annotated[
        int, _option("Requests at once before 429s (0: no limit).", "MAX_CONCURRENCY", min=0)
    ] = 0,
    retry_after: Annotated[
        int, _option("Retry-After of a 429, seconds.", "RETRY_AFTER", min=0)
    ] = 1,
    seed: Annotated[int | None, _option("Seed: reproducible text and failures.", "SEED")] = None,
    text_source: Annotated[
        TextSource, _option("words: generated sentences; echo: the prompt.", "TEXT_SOURCE")
    ] = TextSource.WORDS,
    embedding_dimensions: Annotated[
        int, _option("Default embedding size.", "EMBEDDING_DIMENSIONS", min=1, max=65536)
    ] = 384,
    max_request_bytes: Annotated[
        int, _option("Larger bodies get a 413.", "MAX_REQUEST_BYTES", min=1024)
    ] = 16 * 1024 * 1024,
    api_key: Annotated[
        str | None,
        _option(
            "Require this key (Bearer, Azure's api-key, Anthropic's x-api-key); unset: any.",
            "API_KEY",
        ),
    ] = None,
    log_level: Annotated[LogLevel, _option("uvicorn's log level.", "LOG_LEVEL")] = LogLevel.INFO,
    access_log: Annotated[bool, _option("One log line per request.", "ACCESS_LOG")] = False,
) -> None:
    """budapp-sim: an OpenAI-compatible inference simulator (no GPU, no weights)."""
    low, high = output_tokens_min, output_tokens_max
    if output_tokens is not None:
        low = high = output_tokens
    try:
        config = SimConfig(
            models=tuple(model or ()),
            ttft_ms=ttft_ms,
            ttft_jitter_ms=ttft_jitter_ms,
            itl_ms=itl_ms,
            itl_jitter_ms=itl_jitter_ms,
            output_tokens_min=low,
            output_tokens_max=high,
            tokens_per_chunk=tokens_per_chunk,
            failure_rate=failure_rate,
            failure_mode=failure_mode,
            failure_status=failure_status,
            max_concurrency=max_concurrency,
            retry_after_s=retry_after,
            seed=seed,
            text_source=text_source,
            embedding_dimensions=embedding_dimensions,
            max_request_bytes=max_request_bytes,
            api_key=api_key,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        log_level=log_level.value,
        access_log=access_log,
        server_header=False,
        lifespan="on",
    )


def main() -> None:
    cli()

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, Field

from budapp.core.envelope import PageParams
from budapp.core.schemas import ResponseSchema


class UsageFilter(PageParams):
    granularity: Literal["hour", "day"] = "hour"
    project_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    model: str | None = Field(default=None, max_length=255)
    router: str | None = Field(default=None, max_length=128)
    # Buckets starting at or after `since` and before `until`.
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class UsageRead(ResponseSchema):
    bucket: datetime
    organization_id: uuid.UUID
    project_id: uuid.UUID
    api_key_id: uuid.UUID
    router: str
    model: str
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms_sum: float
    ttft_ms_sum: float
    ttft_count: int


class Distribution(ResponseSchema):
    """Over the calls that have the value; percentiles are nearest-rank (an observed value)."""

    calls: int
    avg: float | None
    p50: float | None
    p95: float | None
    p99: float | None


class CallTotals(ResponseSchema):
    requests: int
    # Calls answered with a status of 400 or more, the gateway's own refusals included.
    errors: int
    error_rate: float | None
    prompt_tokens: int
    completion_tokens: int
    latency_ms: Distribution
    ttft_ms: Distribution
    # Completion tokens of the successful calls over their summed durations, in seconds.
    output_tokens_per_second: float | None


class CallBucket(ResponseSchema):
    bucket: datetime
    requests: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms_avg: float | None
    ttft_ms_avg: float | None


class CallMetrics(ResponseSchema):
    totals: CallTotals
    series: list[CallBucket]

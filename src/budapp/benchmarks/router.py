from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from budapp.benchmarks.charts import MEDIA_TYPES
from budapp.benchmarks.dependencies import (
    BenchmarkManager,
    BenchmarkReader,
    BenchmarksCompared,
    BenchmarkServiceDep,
    BenchmarksManager,
    BenchmarksViewer,
)
from budapp.benchmarks.schemas import (
    BenchmarkCreate,
    BenchmarkFilter,
    BenchmarkRead,
    BenchmarkResults,
    ChartFormat,
    ChartKind,
    Comparison,
    ExportFormat,
    RequestCursor,
    RequestPage,
)
from budapp.core.auth import CurrentPrincipal
from budapp.core.envelope import Envelope, PageEnvelope
from budapp.core.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from budapp.core.http import errors

router = APIRouter(tags=["benchmarks"], responses=errors(Unauthorized, NotFound, Forbidden))
_RUNS = "/projects/{project_id}/benchmarks"
_RUN = "/benchmarks/{benchmark_id}"
_IMAGES: dict[int | str, dict[str, Any]] = {
    200: {"content": {media: {} for media in MEDIA_TYPES.values()}}
}


@router.post(_RUNS, status_code=202, responses=errors(Conflict, InvalidInput))
async def create_benchmark(
    body: BenchmarkCreate, access: BenchmarksManager, service: BenchmarkServiceDep
) -> Envelope[BenchmarkRead]:
    """Checks the target and the bounds, then starts the run's workflow (follow it here,
    at `GET /workflows/{workflow_id}` or on the WebSocket)."""
    return Envelope(data=await service.create(access, body))


@router.get(_RUNS)
async def list_project_benchmarks(
    access: BenchmarksViewer,
    service: BenchmarkServiceDep,
    filters: Annotated[BenchmarkFilter, Query()],
) -> PageEnvelope[BenchmarkRead]:
    return (await service.page(access, filters)).envelope()


@router.get("/benchmarks")
async def list_benchmarks(
    principal: CurrentPrincipal,
    service: BenchmarkServiceDep,
    filters: Annotated[BenchmarkFilter, Query()],
) -> PageEnvelope[BenchmarkRead]:
    """The runs of every project where the caller may view benchmarks."""
    return (await service.page_visible(principal, filters)).envelope()


@router.get("/benchmarks/compare")
async def compare_benchmarks(
    runs: BenchmarksCompared, service: BenchmarkServiceDep
) -> Envelope[Comparison]:
    """`?ids=a&ids=b...`: each run's headline figures side by side, and deltas from the first."""
    return Envelope(data=await service.compare(runs))


@router.get("/benchmarks/compare/charts/{kind}", response_class=Response, responses=_IMAGES)
async def compare_chart(
    kind: ChartKind,
    runs: BenchmarksCompared,
    service: BenchmarkServiceDep,
    format: Annotated[ChartFormat, Query()] = "svg",
) -> Response:
    """The runs overlaid on one chart (`ids` as for compare)."""
    body = await service.chart(runs, kind, format)
    return Response(body, media_type=MEDIA_TYPES[format])


@router.get(_RUN)
async def get_benchmark(
    run: BenchmarkReader, service: BenchmarkServiceDep
) -> Envelope[BenchmarkRead]:
    return Envelope(data=await service.get(run))


@router.post(_RUN + "/cancel", responses=errors(Conflict))
async def cancel_benchmark(
    run: BenchmarkManager, service: BenchmarkServiceDep
) -> Envelope[BenchmarkRead]:
    """Stops the load within about a second; what was measured is kept, marked partial."""
    return Envelope(data=await service.cancel(run))


@router.delete(_RUN, status_code=204, response_class=Response, responses=errors(Conflict))
async def delete_benchmark(run: BenchmarkManager, service: BenchmarkServiceDep) -> None:
    await service.delete(run)


@router.get(_RUN + "/results")
async def benchmark_results(
    run: BenchmarkReader, service: BenchmarkServiceDep
) -> Envelope[BenchmarkResults]:
    """Per stage: every metric (docs/benchmarks.md); the summary; a capacity search's answer."""
    return Envelope(data=await service.results(run))


@router.get(_RUN + "/requests")
async def benchmark_requests(
    run: BenchmarkReader,
    service: BenchmarkServiceDep,
    cursor: Annotated[RequestCursor, Query()],
) -> RequestPage:
    """The per-request records, in (stage, sequence) order, a keyset page at a time."""
    return await service.requests(run, cursor)


@router.get(
    _RUN + "/export",
    response_class=Response,
    responses={
        200: {"content": {"application/json": {}, "text/csv": {}, "application/x-ndjson": {}}}
    },
)
async def export_benchmark(
    run: BenchmarkReader,
    service: BenchmarkServiceDep,
    format: Annotated[ExportFormat, Query()] = "json",
) -> Response:
    """json: the run with its results; csv: one row per stage; jsonl: one line per request."""
    media_type, body = await service.export(run, format)
    filename = f"benchmark-{run.run.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if isinstance(body, bytes):
        return Response(body, media_type=media_type, headers=headers)
    return StreamingResponse(body, media_type=media_type, headers=headers)


@router.get(_RUN + "/charts/{kind}", response_class=Response, responses=_IMAGES)
async def benchmark_chart(
    kind: ChartKind,
    run: BenchmarkReader,
    service: BenchmarkServiceDep,
    format: Annotated[ChartFormat, Query()] = "svg",
) -> Response:
    """latency (TTFT/TPOT percentiles vs request rate), ttft, tpot (distributions), throughput
    (output tokens/s over time); `?format=png` for a PNG."""
    body = await service.chart([run], kind, format)
    return Response(body, media_type=MEDIA_TYPES[format])

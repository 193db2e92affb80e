"""`budapp` command line: serve, migrate, and administration for scripts."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from budapp.core import migrate as migrations
from budapp.core.errors import BudappError
from budapp.core.roles import Role
from budapp.settings import get_settings

app = typer.Typer(help="budapp: control plane of a self-hosted AI model-serving platform.")
admin = typer.Typer(help="Administration for scripts.")
app.add_typer(admin, name="admin")
audit = typer.Typer(help="The tamper-evident audit trail.")
app.add_typer(audit, name="audit")
keys = typer.Typer(help="Encryption keys of the credentials vault.")
app.add_typer(keys, name="keys")
workflows = typer.Typer(help="Durable workflows (deploy, undeploy, scale, delete).")
app.add_typer(workflows, name="workflows")
storage = typer.Typer(help="Object storage of model files and datasets.")
app.add_typer(storage, name="storage")
bench = typer.Typer(help="Benchmarks of OpenAI-compatible servers (docs/benchmarks.md).")
app.add_typer(bench, name="bench")
console = Console(stderr=True)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: BUDAPP_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: BUDAPP_PORT, 9081)")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """Run the API server (applies migrations first on the embedded SQLite default)."""
    # The app reads its own address from the settings (benchmarks of routers call its /v1).
    if host:
        os.environ["BUDAPP_HOST"] = host
    if port:
        os.environ["BUDAPP_PORT"] = str(port)
    get_settings.cache_clear()
    settings = get_settings()
    uvicorn.run(
        "budapp.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )


@app.command()
def gateway(
    host: Annotated[str | None, typer.Option(help="Address to bind (default: BUDAPP_HOST)")] = None,
    port: Annotated[
        int | None, typer.Option(help="Port (default: BUDAPP_GATEWAY_PORT, 9082)")
    ] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """Run only the OpenAI-compatible gateway (/v1, /metrics, /health), to scale it apart
    from the management API. Migrations are `budapp serve`'s or `budapp migrate`'s to apply."""
    settings = get_settings()
    uvicorn.run(
        "budapp.main:create_gateway_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.gateway_port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
    )


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision")] = "head",
    downgrade: Annotated[bool, typer.Option(help="Downgrade to the revision instead")] = False,
) -> None:
    """Apply (or roll back) database migrations."""
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    if downgrade:
        migrations.downgrade(url, revision)
    else:
        migrations.upgrade(url, revision)
    console.print(f"[green]database at {revision}[/green]")


@admin.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="Login e-mail")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            envvar="BUDAPP_NEW_USER_PASSWORD",
        ),
    ],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    role: Annotated[Role, typer.Option(help="Platform role")] = Role.USER,
    organization: Annotated[
        str | None,
        typer.Option(help="Organization name (created if missing; default: the default one)"),
    ] = None,
) -> None:
    """Create a user (and its organization if needed)."""
    from budapp.admin import create_user as create  # noqa: PLC0415 - keeps `--help` fast

    settings = get_settings()
    with _reported_errors():
        user_id = asyncio.run(
            create(
                settings,
                email=email,
                password=password,
                name=name or email,
                role=role,
                organization=organization,
            )
        )
    console.print(f"[green]created user {email} ({role.value}) id={user_id}[/green]")


@admin.command("create-org")
def create_org(name: Annotated[str, typer.Argument(help="Organization name")]) -> None:
    """Create an organization."""
    from budapp.admin import create_organization  # noqa: PLC0415

    with _reported_errors():
        organization_id = asyncio.run(create_organization(get_settings(), name))
    console.print(f"[green]created organization {name} id={organization_id}[/green]")


@audit.command("verify")
def audit_verify(
    from_sequence: Annotated[int | None, typer.Option(min=1, help="First record to check")] = None,
    to_sequence: Annotated[int | None, typer.Option(min=1, help="Last record to check")] = None,
) -> None:
    """Recompute the hash chain and name the first record that does not hold."""
    from budapp.admin import verify_audit_chain  # noqa: PLC0415

    with (
        _reported_errors(),
        Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("verify", total=None)

        def advance(checked: int, total: int) -> None:
            progress.update(task, completed=checked, total=total)

        result = asyncio.run(
            verify_audit_chain(get_settings(), from_sequence, to_sequence, advance)
        )
    if result.ok:
        console.print(f"[green]ok: {result.checked} records verified[/green]")
        return
    broken = result.first_broken
    assert broken is not None  # noqa: S101 - ok is False exactly when a break is named
    console.print(
        f"[red]broken at sequence {broken.sequence} (record {broken.record_id}): "
        f"{broken.reason}; {result.checked} records verified before it[/red]"
    )
    raise typer.Exit(1)


@keys.command("rotate")
def keys_rotate(
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Make no new key: re-encrypt what is not yet under the primary (after an "
            "interrupted run).",
        ),
    ] = False,
) -> None:
    """Make a new primary key and re-encrypt every credential under it (safe to re-run)."""
    from budapp.admin import rotate_keys  # noqa: PLC0415

    with (
        _reported_errors(),
        Progress(
            TextColumn("re-encrypting"), BarColumn(), MofNCompleteColumn(), console=console
        ) as progress,
    ):
        task = progress.add_task("rotate", total=None)

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        primary, report = asyncio.run(rotate_keys(get_settings(), advance, new_key=not resume))
    console.print(
        f"[green]primary key {primary}: {report.resealed} credential(s) re-encrypted[/green]"
    )
    if report.unreadable:
        names = ", ".join(str(credential) for credential in report.unreadable)
        console.print(f"[red]could not open (left as they were): {names}[/red]")
        raise typer.Exit(1)


@keys.command("retire")
def keys_retire(key_id: Annotated[str, typer.Argument(help="Key id to remove")]) -> None:
    """Remove an old key from the keyring file once nothing is sealed with it."""
    from budapp.admin import retire_key  # noqa: PLC0415

    with _reported_errors():
        asyncio.run(retire_key(get_settings(), key_id))
    console.print(f"[green]key {key_id} retired[/green]")


@keys.command("generate")
def keys_generate() -> None:
    """Print a new key as `kid:base64`, for BUDAPP_ENCRYPTION_KEYS."""
    from budapp.admin import generate_key  # noqa: PLC0415

    typer.echo(generate_key())


@workflows.command("watch")
def workflows_watch(
    run_id: Annotated[uuid.UUID, typer.Argument(help="The workflow's id (GET /workflows)")],
) -> None:
    """Follow a workflow run with a progress bar until it finishes; exits 1 unless it
    succeeded."""
    from budapp.admin import RunProgress, watch_workflow  # noqa: PLC0415

    with (
        _reported_errors(),
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("starting", total=None)

        def show(state: RunProgress) -> None:
            label = state.current or state.status.lower()
            progress.update(
                task, description=label, completed=state.steps_done, total=state.steps_total
            )

        final = asyncio.run(watch_workflow(get_settings(), run_id, show))
    if final.status == "SUCCEEDED":
        console.print("[green]succeeded[/green]")
        return
    console.print(f"[red]{final.status.lower()}: {final.error or ''}[/red]")
    raise typer.Exit(1)


@storage.command("sweep")
def storage_sweep(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
) -> None:
    """Delete stored objects nothing needs any more: unreferenced ones older than
    BUDAPP_STORAGE_ORPHAN_GRACE_HOURS, files of models and datasets deleted longer ago than
    BUDAPP_STORAGE_DELETED_RETENTION_DAYS, and abandoned partial uploads. Exits 1 if any
    object could not be deleted."""
    from budapp.adapters.storage import StorageError  # noqa: PLC0415
    from budapp.admin import sweep_storage  # noqa: PLC0415

    with (
        _reported_errors(),
        Progress(
            SpinnerColumn(), TextColumn("listing: {task.completed:.0f} objects"), console=console
        ) as progress,
    ):
        task = progress.add_task("list", total=None)

        def listed(count: int) -> None:
            progress.update(task, completed=count)

        try:
            report = asyncio.run(sweep_storage(get_settings(), dry_run=dry_run, listed=listed))
        except StorageError as exc:  # unreachable storage, a missing bucket, denied access
            console.print(f"[red]object storage: {exc}[/red]")
            raise typer.Exit(1) from exc
    verb = "would delete" if report.dry_run else "deleted"
    console.print(
        f"[green]{report.seen} objects seen; {verb} {report.deleted} "
        f"({report.orphans} unreferenced, {report.purged} of deleted models and datasets, "
        f"{report.abandoned} abandoned uploads), {report.bytes_freed} bytes[/green]"
    )
    if report.errors:
        console.print(f"[red]{report.errors} error(s); the first: {report.first_error}[/red]")
        raise typer.Exit(1)


@bench.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench_run(  # noqa: PLR0917 - one parameter per option
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="OpenAI-compatible base URL, ending in /v1")],
    model: Annotated[str, typer.Option(help="The model name to send")],
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the API key")
    ] = None,
    prompts_file: Annotated[
        Path | None, typer.Option(help="Prompts from a JSONL, CSV or Parquet file")
    ] = None,
    prompts_column: Annotated[str, typer.Option(help="Its column of prompts")] = "prompt",
    exact_output: Annotated[
        bool, typer.Option("--exact-output/--no-exact-output", help="Send ignore_eos")
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Write the results as JSON")] = None,
    requests: Annotated[Path | None, typer.Option(help="Write every request as JSONL")] = None,
    charts: Annotated[Path | None, typer.Option(help="Write SVG and PNG charts here")] = None,
    dry_run: Annotated[bool, typer.Option(help="Print the configuration; send nothing")] = False,
) -> None:
    """Benchmark any OpenAI-compatible server, no budapp server needed. The load options are
    those of a stored run's `command` (--profile, --concurrency, --rate, --duration,
    --input-tokens, --output-tokens, --slo-ttft-ms, ...: docs/benchmarks.md)."""
    from pydantic import ValidationError  # noqa: PLC0415

    from budapp.benchmarks.command import OPTIONS, config_from_options  # noqa: PLC0415
    from budapp.benchmarks.config import BenchmarkConfig  # noqa: PLC0415

    words = list(ctx.args)
    if len(words) % 2 or any(option not in OPTIONS for option in words[::2]):
        raise typer.BadParameter(f"unknown or incomplete options: {' '.join(words)}")
    document = config_from_options(dict(zip(words[::2], words[1::2], strict=True)))
    profile = document.setdefault("profile", {"kind": "concurrency"})
    if profile.get("kind", "concurrency") == "concurrency":
        profile.setdefault("kind", "concurrency")
        profile.setdefault("concurrency", 1)
    document["exact_output"] = exact_output
    try:
        config = BenchmarkConfig.model_validate(document)
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from None
    if dry_run:
        typer.echo(config.model_dump_json(indent=2))
        return
    asyncio.run(
        _bench_run(url, model, api_key_env, config, prompts_file, prompts_column,
                   output, requests, charts)
    )  # fmt: skip


async def _bench_run(  # noqa: PLR0917
    url: str,
    model: str,
    api_key_env: str | None,
    config: object,
    prompts_file: Path | None,
    prompts_column: str,
    output: Path | None,
    requests: Path | None,
    charts: Path | None,
) -> None:
    from budapp.benchmarks.local import read_prompts, run_local, write_charts  # noqa: PLC0415

    rows = read_prompts(prompts_file, prompts_column) if prompts_file else None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), console=console) as progress:
        task = progress.add_task("starting", total=None)

        def show(live: dict[str, object] | None, done: int) -> None:
            if live is not None:
                progress.update(
                    task,
                    description=(
                        f"stage {done + 1} ({live['stage_label']}): {live['requests_done']} "
                        f"requests, {live['current_rate']} req/s, TTFT p50 "
                        f"{live['ttft_p50_ms']} ms, TPOT p50 {live['tpot_p50_ms']} ms"
                    ),
                )

        report = await run_local(
            url=url,
            model=model,
            api_key_env=api_key_env,
            config=config,  # type: ignore[arg-type]
            rows=rows,
            on_progress=show,
            requests_file=requests,
        )
    stages = report["results"]["stages"]
    for stage in stages:
        metrics = stage["metrics"]
        console.print(
            f"[green]{stage['stage']['label']}[/green]: {metrics['requests']['succeeded']} ok, "
            f"{metrics['errors']['count']} errors, {metrics['request_throughput']} req/s, "
            f"{metrics['output_token_throughput']} output tok/s, TTFT p50/p99 "
            f"{metrics['ttft_ms'].get('p50')}/{metrics['ttft_ms'].get('p99')} ms, TPOT p50/p99 "
            f"{metrics['tpot_ms'].get('p50')}/{metrics['tpot_ms'].get('p99')} ms, ICL p50 "
            f"{metrics['icl_ms'].get('p50')} ms"
        )
    if output is not None:
        import orjson  # noqa: PLC0415

        output.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))  # noqa: ASYNC240
    if charts is not None:
        for path in await write_charts(charts, model, stages):
            console.print(f"wrote {path}")


@contextmanager
def _reported_errors() -> Iterator[None]:
    try:
        yield
    except BudappError as exc:
        console.print(f"[red]{exc.code}: {exc.message}[/red]")
        raise typer.Exit(1) from exc


if __name__ == "__main__":
    app()

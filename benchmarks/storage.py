"""Upload and download throughput of one large file through budapp, to each object storage
backend, against copying the same file with the backend's own client (cp for the local
directory, boto3 for S3), with the peak RSS of the budapp process during each transfer.

    uv run python -m benchmarks.storage                 # 1 GiB, both backends
    uv run python -m benchmarks.storage --size-mib 256 --backend local
    uv run python -m benchmarks.storage --record        # append the table to RESULTS.md

budapp runs as its own process (one uvicorn worker, SQLite); S3 is moto's server on loopback in
a process of its own. The client streams the multipart body from the file and the download to
a file, so neither side holds the file in memory. After the upload the script waits for the
safety scan to finish (it copies the object once more) before measuring the download.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import httpx
from boto3.s3.transfer import TransferConfig

MIB = 1024 * 1024
CHUNK = MIB
PASSWORD = "benchmark-admin-password"
BUCKET = "budapp-bench"
RESULTS = Path(__file__).with_name("RESULTS.md")


@dataclass
class Measurement:
    backend: str
    direction: str
    budapp_seconds: float
    # Each direct way of copying the file with the backend's own client: label -> seconds.
    direct_seconds: dict[str, float]
    peak_rss_mib: float
    baseline_rss_mib: float
    size: int

    def rate(self, seconds: float) -> float:
        return self.size / MIB / seconds


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples a process's RSS every 20 ms while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mib(self.pid))
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def make_source(path: Path, size: int) -> None:
    block = os.urandom(16 * MIB)
    with path.open("wb") as handle:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            handle.write(piece)
            written += len(piece)


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    moto = shutil.which("moto_server") or "moto_server"
    process = subprocess.Popen(  # noqa: S603 - our own venv's console script
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_http(endpoint)
    return process, endpoint


def start_budapp(
    data_dir: Path, backend: str, endpoint: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "BUDAPP_DATA_DIR": str(data_dir),
        "BUDAPP_ADMIN_PASSWORD": PASSWORD,
        "BUDAPP_LOG_LEVEL": "WARNING",
        "BUDAPP_ACCESS_LOG": "false",
        "BUDAPP_STORAGE_BACKEND": backend,
    }
    if backend == "s3":
        env |= {
            "BUDAPP_S3_BUCKET": BUCKET,
            "BUDAPP_S3_ENDPOINT_URL": endpoint,
            "BUDAPP_S3_ACCESS_KEY_ID": "bench",
            "BUDAPP_S3_SECRET_ACCESS_KEY": "bench-secret",
            "BUDAPP_S3_CREATE_BUCKET": "true",
        }
    command = [sys.executable, "-m", "uvicorn", "budapp.main:create_app", "--factory"]
    command += [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)  # noqa: S603
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/health")
    return process, base


def multipart(source: Path, boundary: str, name: str) -> tuple[Iterator[bytes], int]:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\n{name}\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="weights.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        with source.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk
        yield tail

    return body(), len(head) + source.stat().st_size + len(tail)


def through_budapp(
    base: str, pid: int, source: Path, target: Path, backend: str
) -> tuple[float, float, float, float, float]:
    with httpx.Client(base_url=base, timeout=600) as client:
        login = client.post(
            "/auth/login", json={"email": "admin@budapp.local", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        baseline = rss_mib(pid)
        boundary = secrets.token_hex(16)
        body, length = multipart(source, boundary, f"bench-{backend}-{secrets.token_hex(4)}")
        upload_headers = {
            **headers,
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(length),
        }
        with PeakRss(pid) as upload_rss:
            started = time.perf_counter()
            response = client.post("/models/local", content=body, headers=upload_headers)
            upload_seconds = time.perf_counter() - started
        response.raise_for_status()
        model = response.json()["data"]
        while model["scan_status"] == "pending":  # the scan copies the object once more
            time.sleep(0.5)
            model = client.get(f"/models/{model['id']}", headers=headers).json()["data"]
        file_id = model["files"][0]["id"]
        with PeakRss(pid) as download_rss, target.open("wb") as handle:
            started = time.perf_counter()
            url = f"/models/{model['id']}/files/{file_id}"
            with client.stream("GET", url, headers=headers) as download:
                download.raise_for_status()
                for chunk in download.iter_bytes(CHUNK):
                    handle.write(chunk)
            download_seconds = time.perf_counter() - started
    if target.stat().st_size != source.stat().st_size:
        raise SystemExit("the download is not the size of the upload")
    return upload_seconds, download_seconds, upload_rss.peak, download_rss.peak, baseline


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def direct_local(source: Path, workdir: Path) -> dict[str, tuple[float, float]]:
    """cp, and cp followed by an fsync of the copy: budapp fsyncs each object before it
    renames it into place (cp alone leaves the data in the page cache)."""
    stored, back = workdir / "direct-stored.bin", workdir / "direct-back.bin"
    results = {}
    for label, sync in (("cp", False), ("cp + fsync", True)):

        def copy(origin: Path, target: Path, sync: bool = sync) -> None:
            subprocess.run(["cp", str(origin), str(target)], check=True)  # noqa: S603, S607
            if sync:
                subprocess.run(["sync", str(target)], check=True)  # noqa: S603, S607

        up = timed(lambda: copy(source, stored))
        down = timed(lambda: copy(stored, back))
        stored.unlink()
        back.unlink()
        results[label] = (up, down)
    return results


def direct_s3(source: Path, workdir: Path, endpoint: str) -> dict[str, tuple[float, float]]:
    """boto3's transfer manager (parallel parts and ranged GETs), and one stream each way (a
    single PUT of the file, a single GET), as budapp does."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench-secret",
    )
    config = TransferConfig(multipart_chunksize=8 * MIB)
    back = workdir / "direct-back.bin"
    key = "direct/object"

    def stream_up() -> None:
        with source.open("rb") as handle:
            client.put_object(Bucket=BUCKET, Key=key, Body=handle)

    def stream_down() -> None:
        body = client.get_object(Bucket=BUCKET, Key=key)["Body"]
        with back.open("wb") as handle:
            while chunk := body.read(CHUNK):
                handle.write(chunk)

    results = {}
    up = timed(lambda: client.upload_file(str(source), BUCKET, key, Config=config))
    down = timed(lambda: client.download_file(BUCKET, key, str(back), Config=config))
    results["boto3 transfer manager"] = (up, down)
    back.unlink()
    client.delete_object(Bucket=BUCKET, Key=key)
    results["boto3 single stream"] = (timed(stream_up), timed(stream_down))
    back.unlink()
    client.delete_object(Bucket=BUCKET, Key=key)
    return results


def run_backend(backend: str, source: Path, workdir: Path) -> list[Measurement]:
    moto, endpoint = start_moto() if backend == "s3" else (None, "")
    data_dir = workdir / f"data-{backend}"
    budapp, base = start_budapp(data_dir, backend, endpoint)
    try:
        target = workdir / "downloaded.bin"
        up, down, up_rss, down_rss, baseline = through_budapp(
            base, budapp.pid, source, target, backend
        )
        target.unlink()
        direct = (
            direct_s3(source, workdir, endpoint)
            if backend == "s3"
            else direct_local(source, workdir)
        )
    finally:
        budapp.terminate()
        budapp.wait()
        if moto is not None:
            moto.terminate()
            moto.wait()
        shutil.rmtree(data_dir, ignore_errors=True)
    size = source.stat().st_size
    return [
        Measurement(
            backend, "upload", up, {k: v[0] for k, v in direct.items()}, up_rss, baseline, size
        ),
        Measurement(
            backend,
            "download",
            down,
            {k: v[1] for k, v in direct.items()},
            down_rss,
            baseline,
            size,
        ),
    ]


def table(results: list[Measurement]) -> str:
    lines = [
        "| backend | direction | budapp MiB/s | direct client | direct MiB/s | budapp / direct "
        "| peak RSS MiB (idle) |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for index, (label, seconds) in enumerate(r.direct_seconds.items()):
            ours = f"{r.rate(r.budapp_seconds):.0f}" if index == 0 else ""
            rss = f"{r.peak_rss_mib:.0f} ({r.baseline_rss_mib:.0f})" if index == 0 else ""
            lines.append(
                f"| {r.backend} | {r.direction} | {ours} | {label} | {r.rate(seconds):.0f} | "
                f"{r.budapp_seconds and seconds / r.budapp_seconds:.0%} | {rss} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--backend", choices=["local", "s3", "both"], default="both")
    parser.add_argument("--record", action="store_true", help="append the table to RESULTS.md")
    args = parser.parse_args()
    backends = ["local", "s3"] if args.backend == "both" else [args.backend]
    with tempfile.TemporaryDirectory(prefix="budapp-storage-bench-") as directory:
        workdir = Path(directory)
        source = workdir / "source.bin"
        make_source(source, args.size_mib * MIB)
        results = [m for backend in backends for m in run_backend(backend, source, workdir)]
    report = table(results)
    print(report)
    if args.record:
        commit = subprocess.run(  # noqa: S603 - git, with fixed arguments
            [shutil.which("git") or "git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        section = (
            f"\n## Object storage: {args.size_mib} MiB through budapp vs direct "
            f"(`benchmarks/storage.py`)\n\n"
            f"- date: {dt.date.today().isoformat()}, commit: `{commit}`\n"
            f"- machine: {os.cpu_count()} cores, {platform.machine()}; Python "
            f"{platform.python_version()}; budapp on one uvicorn worker, SQLite; S3 is moto's "
            f"server on loopback\n"
            f"- command: `uv run python -m benchmarks.storage --size-mib {args.size_mib} "
            f"--backend {args.backend} --record`\n\n{report}\n"
        )
        with RESULTS.open("a") as handle:
            handle.write(section)


if __name__ == "__main__":
    main()

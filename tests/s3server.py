"""A real S3 API for tests: moto's server mode on loopback, in a thread of the test process."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from moto.server import ThreadedMotoServer

from budapp.adapters.storage.s3 import S3ObjectStorage

ACCESS_KEY = "testing-access-key"
SECRET_KEY = "testing-secret-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def s3_storage(endpoint: str, bucket: str, *, part_size: int = 5 * 1024 * 1024) -> S3ObjectStorage:
    return S3ObjectStorage(
        bucket,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
        part_size=part_size,
        create_bucket=True,
    )

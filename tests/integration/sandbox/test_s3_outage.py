"""The sandbox S3's outages: a ``refuse`` fault's window and ``storage_down``/``storage_up``
(``S3Server.outage``/``resume``) are one mechanism, so they never undo each other."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import botocore.config
import botocore.exceptions
import pytest

from mlops_sandbox.faults import S3Fault
from mlops_sandbox.s3 import S3Server, client_from_env

BUCKET = "outages"


@pytest.fixture
def server() -> Iterator[S3Server]:
    started = S3Server(buckets=(BUCKET,))
    started.start()
    yield started
    started.stop()


@pytest.fixture
def client(server: S3Server) -> Iterator[Any]:
    made = client_from_env(
        server.env(),
        botocore.config.Config(
            retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=1, read_timeout=5
        ),
    )
    yield made
    made.close()


def refused(client: Any) -> bool:
    try:
        client.list_objects_v2(Bucket=BUCKET)
    except botocore.exceptions.EndpointConnectionError:
        return True
    return False


def test_storage_up_ends_a_refuse_window_and_its_end_does_not_undo_a_later_outage(
    server: S3Server, client: Any
) -> None:
    client.put_object(Bucket=BUCKET, Key="kept", Body=b"data")
    server.faults.add(S3Fault(action="refuse", seconds=0.5))
    assert refused(client)

    server.resume()  # storage_up within the window: S3 answers at once, with what it held
    assert client.get_object(Bucket=BUCKET, Key="kept")["Body"].read() == b"data"

    server.outage()  # storage_down: down until storage_up, whatever the fault's window said
    time.sleep(1.0)  # the time the fault's window would have ended
    assert refused(client)

    server.resume()
    assert not refused(client)

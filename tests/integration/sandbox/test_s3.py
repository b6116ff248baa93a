"""The sandbox's S3 endpoint on its own: buckets, credentials env, quiet serving."""

from __future__ import annotations

import pytest

from mlops_sandbox.s3 import S3Server, client_from_env


def test_s3_server_creates_its_buckets_and_serves_them_quietly(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with S3Server(buckets=("first", "second")) as server:
        env = server.env()
        client = client_from_env(env)
        try:
            names = {b["Name"] for b in client.list_buckets()["Buckets"]}
            client.put_object(Bucket="first", Key="k", Body=b"v")
            assert client.get_object(Bucket="first", Key="k")["Body"].read() == b"v"
        finally:
            client.close()
    assert {"first", "second"} <= names
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    captured = capfd.readouterr()
    assert "GET /" not in captured.out + captured.err
    assert "PUT /" not in captured.out + captured.err


def test_stopping_releases_the_port() -> None:
    server = S3Server()
    server.start()
    endpoint = server.endpoint
    server.stop()
    port = int(endpoint.rsplit(":", 1)[1])
    with S3Server(port=port) as again:
        assert again.endpoint == endpoint

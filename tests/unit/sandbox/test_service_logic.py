"""The Service forwarders' decisions, without sockets or an API."""

from __future__ import annotations

import json
from typing import Any

from mlops_sandbox.services import (
    ADDRESS_ANNOTATION,
    ADDRESSES_ANNOTATION,
    address_annotations,
    forwarded_ports,
    pod_is_ready,
    ready_endpoints,
    services_file_text,
    target_port,
)


def _pod(
    name: str,
    ip: str,
    *,
    labels: dict[str, str] | None = None,
    ready: bool = True,
    namespace: str = "ml",
    port: int = 8080,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": namespace, "labels": labels or {"app": "web"}},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": port}]}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def test_endpoints_are_the_ready_selected_pods_of_the_namespace_in_name_order() -> None:
    pods = [
        _pod("web-b", "127.0.0.3", port=9000),
        _pod("web-a", "127.0.0.2"),
        _pod("web-c", "127.0.0.4", ready=False),
        _pod("other", "127.0.0.5", labels={"app": "other"}),
        _pod("web-d", "127.0.0.6", namespace="elsewhere"),
    ]

    assert ready_endpoints(pods, "ml", {"app": "web"}, "http") == [
        ("127.0.0.2", 8080),
        ("127.0.0.3", 9000),
    ]
    assert ready_endpoints(pods, "ml", {"app": "web"}, 7000) == [
        ("127.0.0.2", 7000),
        ("127.0.0.3", 7000),
    ]
    assert ready_endpoints(pods, "ml", {"app": "web"}, "metrics") == []


def test_target_ports_are_numbers_or_container_port_names() -> None:
    pod = _pod("web-a", "127.0.0.2")
    assert target_port(pod, 80) == 80
    assert target_port(pod, "8081") == 8081
    assert target_port(pod, "http") == 8080
    assert target_port(pod, "missing") is None


def test_deleted_pending_or_addressless_pods_do_not_serve() -> None:
    pod = _pod("web-a", "127.0.0.2")
    assert pod_is_ready(pod)
    assert not pod_is_ready({**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "t"}})
    assert not pod_is_ready({**pod, "status": {**pod["status"], "phase": "Pending"}})
    assert not pod_is_ready({**pod, "status": {**pod["status"], "podIP": None}})


def test_only_tcp_ports_of_services_with_a_selector_are_forwarded() -> None:
    ports = [{"port": 80}, {"port": 53, "protocol": "UDP"}]
    service = {"spec": {"selector": {"app": "web"}, "ports": ports}}

    assert forwarded_ports(service) == [{"port": 80}]
    assert forwarded_ports({"spec": {"ports": ports}}) == []
    headless = {"spec": {**service["spec"], "clusterIP": "None"}}
    assert forwarded_ports(headless) == []


def test_annotations_name_the_first_port_and_map_all_when_there_are_several() -> None:
    one = [("http", "http://127.0.0.1:4000")]
    assert address_annotations(one) == {
        ADDRESS_ANNOTATION: "http://127.0.0.1:4000",
        ADDRESSES_ANNOTATION: None,
    }
    two = [*one, ("metrics", "http://127.0.0.1:4001")]
    annotations = address_annotations(two)
    assert annotations[ADDRESS_ANNOTATION] == "http://127.0.0.1:4000"
    assert json.loads(annotations[ADDRESSES_ANNOTATION] or "") == dict(two)
    assert address_annotations([]) == {ADDRESS_ANNOTATION: None, ADDRESSES_ANNOTATION: None}


def test_the_services_file_has_a_line_per_service_port() -> None:
    text = services_file_text(
        {
            ("ml", "web"): [
                ("http", "http://127.0.0.1:4000"),
                ("metrics", "http://127.0.0.1:4001"),
            ],
            ("default", "api"): [("80", "http://127.0.0.1:4002")],
        }
    )
    assert text.splitlines()[1:] == [
        "default/api http://127.0.0.1:4002",
        "ml/web http://127.0.0.1:4000",
        "ml/web:metrics http://127.0.0.1:4001",
    ]
    assert text.startswith("#")

"""Table output: printer-column JSONPath like the API server's, ages, built-in columns."""

from __future__ import annotations

import datetime

import pytest

from mlops_sandbox import tables

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
SERVICE = {
    "metadata": {"name": "iris", "creationTimestamp": "2026-01-01T11:55:00Z"},
    "spec": {"model": "iris", "replicas": 2},
    "status": {
        "currentVersion": 3,
        "conditions": [
            {"type": "Degraded", "status": "False"},
            {"type": "Ready", "status": "True"},
        ],
        "history": [{"version": 2}, {"version": 3}],
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        (".spec.model", ["iris"]),
        ('.status.conditions[?(@.type=="Ready")].status', ["True"]),
        (".status.conditions[?(@.type!='Ready')].type", ["Degraded"]),
        (".status.history[-1].version", [3]),
        (".status.history[*].version", [2, 3]),
        ("{.spec.replicas}", [2]),
        (".status.missing.field", []),
        ('.status.conditions[?(@.type=="Absent")].status', []),
    ],
)
def test_jsonpath_selects_like_the_api_server(expression: str, expected: list[object]) -> None:
    assert tables.jsonpath(expression, SERVICE) == expected


def test_an_unparsable_jsonpath_is_an_error_and_its_cell_empty() -> None:
    with pytest.raises(tables.JSONPathError):
        tables.jsonpath(".status[?bad", SERVICE)
    assert tables.custom_row([{"name": "X", "jsonPath": ".status[?bad"}], SERVICE, NOW) == [
        "iris",
        None,
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "<invalid>"),
        (0, "0s"),
        (119, "119s"),
        (303, "5m3s"),
        (600, "10m"),
        (3 * 3600, "3h"),
        (7 * 3600 + 60 * 5, "7h5m"),
        (30 * 3600, "30h"),
        (50 * 3600, "2d2h"),
        (20 * 86400, "20d"),
        (3 * 365 * 86400, "3y"),
    ],
)
def test_ages_read_like_kubectl_get(seconds: int, text: str) -> None:
    assert tables.human_duration(seconds) == text


def test_custom_resources_get_their_printer_columns_typed() -> None:
    printer = [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
        {"name": "Version", "type": "integer", "jsonPath": ".status.currentVersion"},
        {
            "name": "Ready",
            "type": "string",
            "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        },
        {"name": "URL", "type": "string", "jsonPath": ".status.url", "priority": 1},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    columns, row = tables.columns_and_row("mlops.dev", "inferenceservices", printer)
    assert [(c["name"], c["type"], c["priority"]) for c in columns] == [
        ("Name", "string", 0),
        ("Model", "string", 0),
        ("Version", "integer", 0),
        ("Ready", "string", 0),
        ("URL", "string", 1),
        ("Age", "date", 0),
    ]
    assert row(SERVICE, NOW) == ["iris", "iris", 3, "True", None, "5m"]


def test_a_crd_without_printer_columns_shows_name_and_age() -> None:
    columns, row = tables.columns_and_row("mlops.dev", "widgets", [])
    assert [c["name"] for c in columns] == ["Name", "Age"]
    assert row(SERVICE, NOW) == ["iris", "5m"]


def test_pods_show_readiness_status_and_restarts() -> None:
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2026-01-01T11:59:00Z"},
        "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "containerStatuses": [
                {"ready": True, "restartCount": 1, "state": {"running": {}}},
                {
                    "ready": False,
                    "restartCount": 2,
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                },
            ],
        },
    }
    columns, row = tables.columns_and_row("", "pods", None)
    assert [c["name"] for c in columns if c["priority"] == 0] == [
        "Name",
        "Ready",
        "Status",
        "Restarts",
        "Age",
    ]
    assert row(pod, NOW)[:5] == ["p", "1/2", "CrashLoopBackOff", "3", "60s"]


def test_jobs_show_status_completions_and_duration() -> None:
    job = {
        "metadata": {"name": "train", "creationTimestamp": "2026-01-01T11:00:00Z"},
        "spec": {"completions": 1, "selector": {"matchLabels": {"controller-uid": "u"}}},
        "status": {
            "succeeded": 1,
            "startTime": "2026-01-01T11:00:00Z",
            "completionTime": "2026-01-01T11:00:42Z",
            "conditions": [{"type": "Complete", "status": "True"}],
        },
    }
    _, row = tables.columns_and_row("batch", "jobs", None)
    assert row(job, NOW) == [
        "train",
        "Complete",
        "1/1",
        "42s",
        "60m",
        "<none>",
        "<none>",
        "controller-uid=u",
    ]


def test_a_table_carries_metadata_rows_unless_asked_otherwise() -> None:
    columns, row = tables.columns_and_row("", "configmaps", None)
    cm = {
        "metadata": {"name": "c", "creationTimestamp": "2026-01-01T12:00:00Z"},
        "data": {"a": "1"},
    }
    table = tables.table(columns, [(cm, row(cm, NOW))], resource_version="7")
    assert table["kind"] == "Table"
    assert table["rows"][0]["cells"] == ["c", 1, "0s"]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    bare = tables.table(columns, [(cm, row(cm, NOW))], resource_version="7", include_object="None")
    assert "object" not in bare["rows"][0]


@pytest.mark.parametrize(
    ("accept", "wanted"),
    [
        ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json", True),
        ("application/json", False),
        ("application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io", False),
    ],
)
def test_only_a_table_accept_header_gets_a_table(accept: str, wanted: bool) -> None:
    assert tables.wants_table(accept) is wanted

"""The pure validators of built-in objects: Go's quantity parsing and apimachinery's wording."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_sandbox.builtin_validation import (
    QUANTITY_FORMAT_ERROR,
    QUANTITY_NUMERIC_ERROR,
    QUANTITY_SUFFIX_ERROR,
    QuantityError,
    decode_error,
    go_value,
    is_dns1035_label,
    is_dns1123_label,
    is_env_var_name,
    is_qualified_name,
    is_valid_label_value,
    is_valid_port_name,
    parse_quantity,
    validate,
)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1", "1"),
        ("0.5", "500m"),
        ("1000", "1k"),
        ("1500m", "1500m"),
        ("1Gi", "1Gi"),
        ("1024Mi", "1Gi"),
        ("0.5Gi", "512Mi"),
        ("0.1Gi", "107374182400m"),
        ("1e3", "1e3"),
        ("1.0000000001", "1000000001n"),  # rounded up to the nano
        ("-1", "-1"),
        ("-0.5", "-500m"),
        ("+", "0"),
        ("", None),
    ],
)
def test_quantities_parse_and_print_as_in_go(text: str, canonical: str | None) -> None:
    if canonical is None:
        with pytest.raises(QuantityError):
            parse_quantity(text)
    else:
        assert str(parse_quantity(text)) == canonical


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", QUANTITY_FORMAT_ERROR),
        ("1.2.3", QUANTITY_FORMAT_ERROR),
        ("2 cores", QUANTITY_FORMAT_ERROR),
        ("192i", QUANTITY_SUFFIX_ERROR),
        ("1e", QUANTITY_SUFFIX_ERROR),
        ("2ki", QUANTITY_SUFFIX_ERROR),
        (".e-10", QUANTITY_NUMERIC_ERROR),
    ],
)
def test_bad_quantities_fail_with_the_api_servers_message(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(text)
    assert str(info.value) == message


def test_name_rules_word_their_errors_as_apimachinery() -> None:
    assert is_dns1123_label("my-name") == []
    assert is_dns1123_label("a.b") == ["must not contain dots"]
    assert is_dns1123_label("x" * 64) == ["must be no more than 63 characters"]
    assert is_dns1035_label("1abc") == [
        "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with"
        " an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or"
        " 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
    ]


def test_label_keys_and_values() -> None:
    assert is_qualified_name("app.kubernetes.io/name") == []
    assert is_qualified_name("/name") == ["prefix part must be non-empty"]
    assert is_qualified_name("a/b/c")[0].startswith("a qualified name must consist of")
    assert is_qualified_name("example.com/" + "n" * 64) == [
        "name part must be no more than 63 characters"
    ]
    assert is_valid_label_value("") == []
    assert is_valid_label_value("v1.2_x-y") == []
    assert len(is_valid_label_value("-x")) == 1


@pytest.mark.parametrize(
    ("name", "errors"),
    [
        ("http", []),
        ("metrics-9090", []),
        ("h" * 16, ["must be no more than 15 characters"]),
        ("8080", ["must contain at least one letter (a-z)"]),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("-a", ["must not begin or end with a hyphen"]),
        (
            "HTTP",
            [
                "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                "must contain at least one letter (a-z)",
            ],
        ),
    ],
)
def test_port_names_are_iana_service_names(name: str, errors: list[str]) -> None:
    assert is_valid_port_name(name) == errors


def test_env_var_names() -> None:
    assert is_env_var_name("MY_ENV.name-1") == []
    assert len(is_env_var_name("1X")) == 1
    assert is_env_var_name("..x") == ["must not start with '..'"]


def pod_job(**container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"containers": [{"name": "main", **container}]}}},
    }


def test_resources_are_checked_per_resource_name() -> None:
    resources = {
        "requests": {"cpu": "2", "gpu": "1", "example.com/gpu": "1"},
        "limits": {"cpu": "1", "example.com/gpu": "500m"},
    }
    errors = validate("batch", "jobs", pod_job(resources=resources))
    where = "spec.template.spec.containers[0].resources"
    assert [(error.field, error.detail) for error in errors] == [
        (f"{where}.limits[example.com/gpu]", 'Invalid value: "500m": must be an integer'),
        (f"{where}.requests", 'Invalid value: "2": must be less than or equal to cpu limit of 1'),
        (f"{where}.requests", 'Invalid value: "1": must be equal to example.com/gpu limit of 500m'),
        (
            f"{where}.requests[gpu]",
            'Invalid value: "gpu": must be a standard resource type or fully qualified',
        ),
        (
            f"{where}.requests[gpu]",
            'Invalid value: "gpu": must be a standard resource for containers',
        ),
    ]


def test_duplicate_container_and_port_names() -> None:
    spec = {
        "containers": [
            {"name": "main", "ports": [{"name": "http", "containerPort": 80}] * 2},
            {"name": "main"},
        ]
    }
    errors = validate("", "pods", {"metadata": {"name": "p"}, "spec": spec})
    assert [(error.reason, error.field) for error in errors] == [
        ("FieldValueDuplicate", "spec.containers[0].ports[1].name"),
        ("FieldValueDuplicate", "spec.containers[1].name"),
    ]


def test_generate_name_may_end_with_a_dash() -> None:
    assert validate("", "configmaps", {"metadata": {"generateName": "run-", "name": "run-x"}}) == []
    errors = validate("", "configmaps", {"metadata": {"generateName": "Run-"}})
    assert [error.field for error in errors] == ["metadata.generateName"]


def test_only_built_in_kinds_are_validated() -> None:
    bad = {"metadata": {"name": "Bad Name", "labels": {"a": "b c"}}}
    assert validate("mlops.dev", "trainingjobs", bad) == []
    assert decode_error("mlops.dev", "trainingjobs", {"metadata": {"name": 1}}) is None
    assert [error.field for error in validate("", "secrets", bad)] == [
        "metadata.name",
        "metadata.labels",
    ]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        (
            {"metadata": {"labels": {"version": 2}}},
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type"
            " string",
        ),
        (
            pod_job(ports=[{"containerPort": "8080"}]),
            "json: cannot unmarshal string into Go struct field"
            " ContainerPort.spec.template.spec.containers.ports.containerPort of type int32",
        ),
        (
            pod_job(ports=[{"containerPort": 8080.5}]),
            "json: cannot unmarshal number 8080.5 into Go struct field"
            " ContainerPort.spec.template.spec.containers.ports.containerPort of type int32",
        ),
        (
            pod_job(resources={"limits": "1"}),
            "json: cannot unmarshal string into Go struct field"
            " ResourceRequirements.spec.template.spec.containers.resources.limits of type"
            " v1.ResourceList",
        ),
        (pod_job(resources={"limits": {"cpu": True}}), QUANTITY_FORMAT_ERROR),
        (pod_job(resources={"limits": {"cpu": 2, "memory": None}}), None),
    ],
)
def test_undecodable_values_name_their_go_field(obj: dict[str, Any], message: str | None) -> None:
    assert decode_error("batch", "jobs", obj) == message


def test_go_value_prints_like_percent_plus_v() -> None:
    patch = {"spec": {"b": [1, 2.5, 1e6, None, True], "a": "x"}}
    assert go_value(patch) == "map[spec:map[a:x b:[1 2.5 1e+06 <nil> true]]]"

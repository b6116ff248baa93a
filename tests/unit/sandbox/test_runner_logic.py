"""The runner's decisions, without processes or an API: environment, commands, status."""

from __future__ import annotations

import base64
import pathlib
from typing import Any

import pytest
import yaml

from mlops_sandbox import runner
from mlops_sandbox.kubeconfig import kubeconfig_dict, write_kubeconfig
from mlops_sandbox.runner import (
    ContainerConfigError,
    ContainerCreateError,
    PodFacts,
    backoff_delay,
    base_env,
    container_argv,
    exit_code_of,
    job_counts,
    job_finish_patches,
    job_finish_time,
    job_finished,
    log_tail,
    pod_name_for,
    resolve_env,
    secret_data,
    termination_message,
)

POD = PodFacts(name="train-abcde", namespace="ml", uid="uid-1", labels={"app": "x"})
ENTRYPOINT = ("/venv/bin/python", "-m", "mlops_operator")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_data_decodes_data_and_overlays_string_data() -> None:
    secret = {"data": {"A": _b64("from-data"), "B": _b64("b")}, "stringData": {"A": "plain"}}
    assert secret_data(secret) == {"A": "plain", "B": "b"}


def test_resolve_env_takes_values_secrets_configmaps_and_pod_fields() -> None:
    container: dict[str, Any] = {
        "env": [
            {"name": "PLAIN", "value": "v"},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "id"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        ]
    }
    sources = {("secret", "s3"): {"id": "AKIA"}, ("configmap", "cfg"): {"level": "debug"}}
    env = resolve_env(container, POD, sources)
    assert env == {
        "PLAIN": "v",
        "KEY": "AKIA",
        "LEVEL": "debug",
        "POD": "train-abcde",
        "NS": "ml",
        "IP": "127.0.0.1",
        "UID": "uid-1",
        "APP": "x",
    }


def test_resolve_env_applies_env_from_with_prefix_and_lets_env_win() -> None:
    container = {
        "envFrom": [
            {"secretRef": {"name": "creds"}},
            {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
        ],
        "env": [{"name": "AWS_ACCESS_KEY_ID", "value": "override"}],
    }
    sources = {
        ("secret", "creds"): {"AWS_ACCESS_KEY_ID": "id", "AWS_SECRET_ACCESS_KEY": "key"},
        ("configmap", "cfg"): {"mode": "fast", "not a name": "skipped"},
    }
    env = resolve_env(container, POD, sources)
    assert env == {
        "AWS_ACCESS_KEY_ID": "override",
        "AWS_SECRET_ACCESS_KEY": "key",
        "CFG_mode": "fast",
    }


def test_resolve_env_expands_references_to_earlier_variables() -> None:
    container = {
        "env": [
            {"name": "BUCKET", "value": "models"},
            {"name": "URI", "value": "s3://$(BUCKET)/x/$(UNDEFINED)/$$(BUCKET)"},
        ]
    }
    assert resolve_env(container, POD, {})["URI"] == "s3://models/x/$(UNDEFINED)/$(BUCKET)"


def test_missing_secret_is_a_config_error_with_the_kubelet_message() -> None:
    container = {"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "x", "key": "k"}}}]}
    with pytest.raises(ContainerConfigError, match='^secret "x" not found$'):
        resolve_env(container, POD, {("secret", "x"): None})


def test_missing_key_is_a_config_error_naming_the_namespace() -> None:
    container = {
        "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]
    }
    with pytest.raises(ContainerConfigError, match="^couldn't find key k in ConfigMap ml/cfg$"):
        resolve_env(container, POD, {("configmap", "cfg"): {}})


def test_missing_env_from_source_is_a_config_error() -> None:
    with pytest.raises(ContainerConfigError, match='^configmap "cfg" not found$'):
        resolve_env({"envFrom": [{"configMapRef": {"name": "cfg"}}]}, POD, {})


def test_optional_references_are_skipped_when_missing() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "gone", "optional": True}}],
        "env": [
            {
                "name": "A",
                "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
            },
            {
                "name": "B",
                "valueFrom": {"secretKeyRef": {"name": "s", "key": "nokey", "optional": True}},
            },
        ],
    }
    assert resolve_env(container, POD, {("secret", "gone"): None, ("secret", "s"): {}}) == {}


def test_unsupported_value_sources_fail_the_container() -> None:
    container = {"env": [{"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "cpu"}}}]}
    with pytest.raises(ContainerCreateError):
        resolve_env(container, POD, {})


def test_referenced_sources_lists_every_secret_and_configmap() -> None:
    container = {
        "envFrom": [{"secretRef": {"name": "a"}}, {"configMapRef": {"name": "b"}}],
        "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "c", "key": "k"}}},
            {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "d", "key": "k"}}},
            {"name": "Z", "value": "plain"},
        ],
    }
    assert runner.referenced_sources(container) == {
        ("secret", "a"),
        ("configmap", "b"),
        ("secret", "c"),
        ("configmap", "d"),
    }


def test_base_env_gives_pods_nothing_of_the_runner_but_python_essentials(
    tmp_path: pathlib.Path,
) -> None:
    inherited = {
        "PATH": "/venv/bin:/usr/bin",
        "PYTHONPATH": "/src",
        "AWS_SECRET_ACCESS_KEY": "runner-only",
        "KUBECONFIG": "/runner/kubeconfig",
    }
    env = base_env(tmp_path, "pod-1", inherited, virtual_env="/venv")
    assert env["HOME"] == str(tmp_path)
    assert env["PATH"] == "/venv/bin:/usr/bin"
    assert env["PYTHONPATH"] == "/src"
    assert env["VIRTUAL_ENV"] == "/venv"
    assert env["HOSTNAME"] == "pod-1"
    assert not {"AWS_SECRET_ACCESS_KEY", "KUBECONFIG"} & env.keys()


def test_container_argv_joins_command_and_args_onto_the_entrypoint() -> None:
    container = {"command": ["mlops-operator", "train"], "args": ["-f", "$(MANIFEST)"]}
    argv = container_argv(container, {"MANIFEST": "/m.yaml"}, ENTRYPOINT)
    assert argv == [*ENTRYPOINT, "train", "-f", "/m.yaml"]


def test_container_argv_accepts_args_only_and_a_full_path() -> None:
    assert container_argv({"args": ["mlops-operator", "crds"]}, {}, ENTRYPOINT) == [
        *ENTRYPOINT,
        "crds",
    ]
    assert container_argv({"command": ["/usr/local/bin/mlops-operator"]}, {}, ENTRYPOINT) == [
        *ENTRYPOINT
    ]


@pytest.mark.parametrize(
    "container",
    [{"command": ["python", "-c", "print(1)"]}, {"args": ["sh"]}, {}],
)
def test_container_argv_refuses_anything_but_the_runtime_entrypoint(
    container: dict[str, Any],
) -> None:
    with pytest.raises(ContainerCreateError, match="only runs 'mlops-operator' commands"):
        container_argv(container, {}, ENTRYPOINT)


def test_a_secret_expanded_into_a_refused_command_stays_out_of_the_message() -> None:
    container = {"command": ["sh", "-c", "echo $(TOKEN)"]}
    with pytest.raises(ContainerCreateError) as error:
        container_argv(container, {"TOKEN": "s3cr3t"}, ENTRYPOINT)
    assert "s3cr3t" not in str(error.value)
    assert "$(TOKEN)" in str(error.value)


@pytest.mark.parametrize(
    ("spec", "why"),
    [
        ({"containers": [{}, {}]}, "exactly one container, not 2"),
        ({"containers": []}, "exactly one container, not 0"),
        ({"containers": [{}], "initContainers": [{}]}, "init containers"),
    ],
)
def test_pods_the_sandbox_cannot_run_are_named(spec: dict[str, Any], why: str) -> None:
    assert why in (runner.unsupported_pod_features(spec) or "")


def test_a_single_container_pod_is_supported() -> None:
    assert runner.unsupported_pod_features({"containers": [{}], "volumes": [{}]}) is None


def test_exit_code_of_a_signal_is_128_plus_the_signal() -> None:
    assert exit_code_of(0) == 0
    assert exit_code_of(3) == 3
    assert exit_code_of(-15) == 143
    assert exit_code_of(-9) == 137


def test_termination_message_comes_from_the_file_capped_at_4096_bytes() -> None:
    message = termination_message(b"x" * 5000, b"log", policy="File", exit_code=1)
    assert message == "x" * 4096


def test_termination_message_falls_back_to_the_log_tail_only_on_error() -> None:
    log = b"".join(f"line {i}\n".encode() for i in range(200))
    fallback = termination_message(b"", log, policy="FallbackToLogsOnError", exit_code=1)
    assert fallback.endswith("line 199\n")
    assert fallback.count("\n") == 80
    assert termination_message(b"", log, policy="FallbackToLogsOnError", exit_code=0) == ""
    assert termination_message(b"", log, policy=None, exit_code=1) == ""
    assert termination_message(b"own", log, policy="FallbackToLogsOnError", exit_code=1) == "own"


def test_log_tail_keeps_at_most_2048_bytes() -> None:
    tail = log_tail(b"y" * 10_000 + b"\n")
    assert len(tail.encode()) == 2048
    assert tail.endswith("\n")


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    delays = [backoff_delay(n, base=0.2, cap=2.0) for n in range(7)]
    assert delays == [0.0, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]


def test_pod_names_are_the_job_name_and_five_characters_truncated_like_generate_name() -> None:
    assert pod_name_for("train", "abcde") == "train-abcde"
    long = pod_name_for("x" * 80, "abcde")
    assert len(long) == 63
    assert long.endswith("abcde")
    assert len(pod_name_for("train")) == len("train-") + 5


def test_job_counts_drop_zero_counters_but_keep_ready() -> None:
    patch = job_counts(active=0, ready=0, succeeded=1, failed=0)
    assert patch == {"active": None, "ready": 0, "succeeded": 1, "failed": None}


def test_success_writes_success_criteria_met_then_complete_with_completion_time() -> None:
    first, final = job_finish_patches({}, runner.REASON_COMPLETIONS_REACHED, "2025-01-01T00:00:00Z")
    assert [c["type"] for c in first["conditions"]] == ["SuccessCriteriaMet"]
    assert [c["type"] for c in final["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert final["completionTime"] == "2025-01-01T00:00:00Z"
    assert final["conditions"][1]["message"] == "Reached expected number of succeeded pods"
    assert job_finished(final)
    assert job_finish_time(final) is not None


@pytest.mark.parametrize(
    ("reason", "message"),
    [
        ("BackoffLimitExceeded", "Job has reached the specified backoff limit"),
        ("DeadlineExceeded", "Job was active longer than specified deadline"),
    ],
)
def test_failure_writes_failure_target_then_failed_with_the_controller_message(
    reason: str, message: str
) -> None:
    first, final = job_finish_patches({}, reason, "2025-01-01T00:00:00Z")
    assert [c["type"] for c in first["conditions"]] == ["FailureTarget"]
    assert [(c["type"], c["reason"], c["message"]) for c in final["conditions"]] == [
        ("FailureTarget", reason, message),
        ("Failed", reason, message),
    ]
    assert "completionTime" not in final
    assert job_finished(first)
    assert job_finish_time(final) is not None


def test_a_job_without_terminal_conditions_is_not_finished() -> None:
    status = {"conditions": [{"type": "Suspended", "status": "True"}], "active": 1}
    assert not job_finished(status)
    assert job_finish_time(status) is None


def test_kubeconfig_points_the_sandbox_context_at_the_api(tmp_path: pathlib.Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1234")
    assert yaml.safe_load(path.read_text()) == kubeconfig_dict("http://127.0.0.1:1234")
    config = kubeconfig_dict("http://127.0.0.1:1234")
    assert config["current-context"] == "mlops-sandbox"
    assert config["contexts"][0]["context"]["namespace"] == "default"
    assert config["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True
    assert path.stat().st_mode & 0o077 == 0


def test_env_paths_inside_an_empty_dir_mount_point_at_the_pods_directory() -> None:
    from mlops_sandbox.runner import map_volume_paths

    env = {"MLOPS_CACHE_DIR": "/cache", "HOME": "/tmp", "DATA": "/tmp/x/y", "OTHER": "/cached"}
    mapped = map_volume_paths(env, {"/cache": "/pods/p/volumes/cache", "/tmp": "/pods/p/tmp"})
    assert mapped == {
        "MLOPS_CACHE_DIR": "/pods/p/volumes/cache",
        "HOME": "/pods/p/tmp",
        "DATA": "/pods/p/tmp/x/y",
        "OTHER": "/cached",
    }

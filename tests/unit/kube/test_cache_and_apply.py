"""Watch state remembers our own writes until the watch catches up; status writes send exactly
what differs, with null for what went away."""

from __future__ import annotations

from typing import Any

from mlops_operator.kube import client as k8s
from mlops_operator.kube.apply import merge_diff
from mlops_operator.kube.cache import Cache


def obj(name: str, rv: int, model: str = "m", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)},
        "spec": {"model": model},
        "status": status,
    }


def cache_with(*seen: dict[str, Any]) -> Cache:
    cache = Cache()
    index: dict[Any, list[dict[str, Any]]] = {}
    for o in seen:
        index[("ns", o["metadata"]["name"])] = [o]
        index.setdefault(("model", "ns", o["spec"]["model"]), []).append(o)
    cache.attach(k8s.MODELVERSIONS, index)
    return cache


def test_our_write_is_seen_before_the_watch_delivers_it_and_dropped_after() -> None:
    cache = cache_with(obj("a", 5, phase="Pending"))
    written = obj("a", 7, phase="Ready")
    cache.remember(k8s.MODELVERSIONS, written)
    assert cache.get(k8s.MODELVERSIONS, "ns", "a") == written
    cache.observed(k8s.MODELVERSIONS, obj("a", 6), deleted=False)  # an older event
    assert cache.pending_writes == 1
    cache.observed(k8s.MODELVERSIONS, obj("a", 7), deleted=False)
    assert cache.pending_writes == 0


def test_a_newer_watch_state_wins_over_an_older_write() -> None:
    newest = obj("a", 9, phase="Degraded")
    cache = cache_with(newest)
    cache.remember(k8s.MODELVERSIONS, obj("a", 7, phase="Ready"))
    assert cache.get(k8s.MODELVERSIONS, "ns", "a") == newest


def test_an_object_we_created_is_found_by_model_before_its_first_event() -> None:
    cache = cache_with(obj("a", 5))
    cache.remember(k8s.MODELVERSIONS, obj("b", 8))
    names = sorted(o["metadata"]["name"] for o in cache.of_model(k8s.MODELVERSIONS, "ns", "m"))
    assert names == ["a", "b"]


def test_a_deleted_object_forgets_our_write() -> None:
    cache = cache_with()
    cache.remember(k8s.MODELVERSIONS, obj("a", 8))
    cache.observed(k8s.MODELVERSIONS, obj("a", 8), deleted=True)
    assert cache.get(k8s.MODELVERSIONS, "ns", "a") is None


def test_merge_diff_sends_changes_only_and_null_for_removed_fields() -> None:
    before = {
        "phase": "Ready",
        "retraining": {"active": "svc-retrain-1", "count": 1},
        "history": [{"version": 1}],
    }
    after = {
        "phase": "Ready",
        "retraining": {"count": 1},
        "history": [{"version": 1}, {"version": 2}],
    }
    assert merge_diff(before, after) == {
        "retraining": {"active": None},
        "history": [{"version": 1}, {"version": 2}],
    }
    assert merge_diff(after, after) == {}


def test_the_echo_of_a_write_names_its_writer_so_only_that_trigger_stays_quiet() -> None:
    cache = cache_with()
    cache.remember(k8s.MODELVERSIONS, obj("a", 8), "inferenceservices")  # a degradation mark
    assert cache.observed(k8s.MODELVERSIONS, obj("a", 8), deleted=False) == "inferenceservices"
    cache.remember(k8s.MODELVERSIONS, obj("b", 9), "modelversions")
    assert cache.observed(k8s.MODELVERSIONS, obj("b", 10), deleted=False) is None  # newer: news
    cache.remember(k8s.MODELVERSIONS, obj("c", 11))  # a read, not a write
    assert cache.observed(k8s.MODELVERSIONS, obj("c", 11), deleted=False) is None


def test_a_models_objects_are_found_among_many_pending_writes_of_other_models() -> None:
    cache = cache_with(obj("a", 5, model="m"))
    for i in range(2000):
        cache.remember(k8s.MODELVERSIONS, obj(f"other-{i}", 10 + i, model=f"x{i % 7}"))
    cache.remember(k8s.MODELVERSIONS, obj("b", 9000, model="m"))
    names = sorted(o["metadata"]["name"] for o in cache.of_model(k8s.MODELVERSIONS, "ns", "m"))
    assert names == ["a", "b"]
    cache.observed(k8s.MODELVERSIONS, obj("b", 9000, model="m"), deleted=False)
    assert cache.of_model(k8s.MODELVERSIONS, "ns", "m")[0]["metadata"]["name"] == "a"

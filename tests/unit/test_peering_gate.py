"""The peering gate: reconciles wait while kopf's peering pauses the replica, and until it has
let the replica act for the settle time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from kopf._cogs.aiokits.aiotoggles import ToggleSet
from kopf._core.reactor import orchestration, running

from mlops_operator.peering import Gate, follow_kopf


class Paused:
    def __init__(self, on: bool) -> None:
        self.on = on

    def is_on(self) -> bool:
        return self.on


def test_the_gate_is_closed_until_kopf_says_whether_it_is_paused() -> None:
    assert not Gate().is_open(0.0)


def test_the_gate_opens_only_once_kopf_has_let_the_replica_act_for_the_settle_time() -> None:
    gate = Gate(settle=5.0)
    gate.paused = Paused(on=False)

    assert not gate.is_open(100.0)
    assert not gate.is_open(104.9)
    assert gate.is_open(105.0)


def test_a_pause_closes_the_gate_and_the_settle_time_starts_again_after_it() -> None:
    paused = Paused(on=False)
    gate = Gate(settle=5.0)
    gate.paused = paused
    gate.is_open(0.0)
    assert gate.is_open(10.0)

    paused.on = True
    assert not gate.is_open(11.0)
    paused.on = False
    assert not gate.is_open(12.0)
    assert not gate.is_open(16.9)
    assert gate.is_open(17.0)


def test_without_peering_the_gate_is_open_at_once() -> None:
    gate = Gate(settle=0.0)
    gate.paused = Paused(on=False)

    assert gate.is_open(0.0)


async def test_a_waiting_reconcile_goes_on_when_kopf_resumes() -> None:
    paused = Paused(on=True)
    gate = Gate()
    gate.paused = paused
    waiting = asyncio.create_task(gate.wait())
    await asyncio.sleep(0.3)
    assert not waiting.done()

    paused.on = False

    await asyncio.wait_for(waiting, timeout=2)


@pytest.fixture
def kopf_orchestrator() -> Iterator[None]:
    original = orchestration.orchestrator
    yield
    orchestration.orchestrator = original  # type: ignore[method-assign]


def test_kopf_gives_its_pause_state_to_its_orchestrator_by_name() -> None:
    # What follow_kopf relies on: kopf's start-up looks the orchestrator up on its module when
    # it calls it, with the pause state as the ``operator_paused`` keyword.
    assert "operator_paused" in inspect.signature(orchestration.orchestrator).parameters
    assert "orchestration.orchestrator(" in inspect.getsource(running.spawn_tasks)


async def test_the_gate_reads_the_pause_state_kopf_gives_its_orchestrator(
    kopf_orchestrator: None,
) -> None:
    seen: dict[str, Any] = {}

    async def orchestrator(**kwargs: Any) -> None:
        seen.update(kwargs)

    orchestration.orchestrator = orchestrator  # type: ignore[assignment]
    gate = Gate()
    assert follow_kopf(gate)
    paused = ToggleSet(any)
    toggle = await paused.make_toggle(True, name="a peer of higher priority")

    # As kopf's running loop calls it: the attribute is looked up at call time.
    await orchestration.orchestrator(operator_paused=paused)

    assert seen["operator_paused"] is paused
    assert not gate.is_open(0.0)
    await toggle.turn_to(False)
    assert gate.is_open(0.0)


async def test_an_orchestrator_without_the_pause_state_leaves_reconciles_free(
    kopf_orchestrator: None,
) -> None:
    # A kopf release that stopped handing it over: the gate cannot follow, and says so
    # rather than holding every reconcile forever.
    async def orchestrator(**kwargs: Any) -> None:
        return None

    orchestration.orchestrator = orchestrator  # type: ignore[assignment]
    gate = Gate()
    follow_kopf(gate)

    await orchestration.orchestrator(processor=None)

    assert gate.is_open(0.0)

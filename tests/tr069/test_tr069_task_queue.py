"""The per-device task queue: a task whose RPC is never answered fails after
``max_task_attempts`` sends (its sessions died, or the ACS did), so the tasks behind it proceed."""

from __future__ import annotations

import random
from pathlib import Path

from tr069_world import MONDAY, RawCpe, World, inform_bytes

from otaharness.protocols.cwmp import Reboot, parse_envelope
from otaharness.runtime.clock import VirtualClock
from otaharness.servers.tr069 import AcsConfig, device_id_of
from otaharness.servers.tr069.acs import Acs
from otaharness.servers.tr069.service import config_from_settings
from otaharness.servers.tr069.store import Store

STUCK = device_id_of("E48D8C", "CHR", "STUCK")


async def _session_until_rpc(client: RawCpe) -> str:
    """Inform, then an empty POST: the header ID of the RPC the ACS sends (``acs-<task>``)."""
    assert (await client.post(inform_bytes("STUCK")))[0] == 200
    status, data, _ = await client.post(b"")
    assert status == 200, data
    envelope = parse_envelope(data)
    assert isinstance(envelope.body, Reboot)
    return envelope.header.id


def test_an_unanswered_task_fails_after_its_attempts_and_the_next_one_is_sent(run_world):
    async def main(world: World) -> None:
        await world.start(AcsConfig(max_task_attempts=2, session_idle_timeout=30))
        client = RawCpe(world, "127.2.0.1")
        try:
            assert (await client.post(inform_bytes("STUCK")))[0] == 200
            await world.clock.run_for(31)  # that session ends: nothing was queued
            for _ in range(2):  # two tasks queued: two reboots
                assert (await world.admin("POST", f"/devices/{STUCK}/reboot"))[0] == 202
            first, second = (task["id"] for task in world.acs.store.tasks(STUCK))
            for attempt in (1, 2):  # the device never answers the Reboot; its session dies
                assert await _session_until_rpc(client) == f"acs-{first}"
                await world.clock.run_for(31)
                assert world.acs.store.task(first)["attempts"] == attempt
            failed = world.acs.store.task(first)
            assert failed["state"] == "failed"
            assert "no answer after 2 attempts" in failed["result"]["error"]
            assert [e["detail"]["task"] for e in world.acs.store.events(STUCK)
                    if e["kind"] == "task-failed"] == [first]
            assert await _session_until_rpc(client) == f"acs-{second}"  # no longer blocked
        finally:
            await client.close()

    run_world(main)


def _stopped_acs_state(tmp_path: Path, attempts: int) -> int:
    """A state directory whose ACS was killed with a task's RPC sent ``attempts`` times."""
    store = Store(tmp_path)
    task_id = store.add_task(STUCK, "reboot", {}, 0.0)
    store.update_task(task_id, state="sent", command_key=f"otaharness-{task_id}",
                      attempts=attempts)
    store.close()
    return task_id


def test_a_restart_returns_tasks_left_sent_and_counts_the_lost_attempt(tmp_path):
    returned = _stopped_acs_state(tmp_path / "once", attempts=1)
    spent = _stopped_acs_state(tmp_path / "spent", attempts=3)
    for folder, task_id, state in (("once", returned, "pending"), ("spent", spent, "failed")):
        store = Store(tmp_path / folder)
        Acs(store, VirtualClock(MONDAY), AcsConfig(max_task_attempts=3), random.Random(1)).start()
        task = store.task(task_id)
        assert task["state"] == state, folder
        if state == "failed":
            assert "the ACS stopped before the CPE answered" in task["result"]["error"]
        store.close()


def test_task_attempts_is_a_checked_setting():
    assert config_from_settings({"task_attempts": "5"}).max_task_attempts == 5
    assert AcsConfig().max_task_attempts == 3
    for bad in ("0", "many"):
        try:
            config_from_settings({"task_attempts": bad})
        except ValueError as error:
            assert "task_attempts" in str(error)
        else:
            raise AssertionError(f"task_attempts={bad} was accepted")

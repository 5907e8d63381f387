"""Bad input to the network server through the LNS websocket: each message is dropped with a log
line, and neither the network server's state nor the station's connection changes (garbage text
is the exception for the connection: the LNS closes it with 1007, the station reconnects)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from lorawan_e2e_world import GATEWAY_EUI, World, run_world

from otaharness.protocols.basics_station import format_eui
from otaharness.protocols.basics_station.lns_data import RadioInfo, UplinkInfo, uplink_from_phy_payload
from otaharness.protocols.lorawan import MType, SessionKeys, build_data_frame
from otaharness.servers.basics_station.registry import StationRecord

DEV_EUI = 0x0004A30B001C0AB9
DEV_ADDR = 0x260B1F2A
KEYS = SessionKeys(nwk_s_key=bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3"),
                   app_s_key=bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588"))
RADIO = RadioInfo(dr=5, freq=868_100_000, upinfo=UplinkInfo(rctx=0, xtime=0x0100_0000_1000, rssi=-60, snr=8.5))


def updf(fcnt: int, payload: bytes = b"data", *, dev_addr: int = DEV_ADDR, keys: SessionKeys = KEYS) -> dict[str, Any]:
    frame = build_data_frame(MType.UNCONFIRMED_DATA_UP, dev_addr=dev_addr, fcnt=fcnt, keys=keys, fport=2,
                             payload=payload)
    return uplink_from_phy_payload(frame.to_bytes(), RADIO).to_dict()


def snapshot(world: World) -> tuple[Any, ...]:
    assert world.ns is not None and world.api is not None
    return (world.ns.registry.all_devices(), len(world.api.events), len(world.ns.registry.queued(DEV_EUI)))


BAD_MESSAGES: dict[str, tuple[Any, str]] = {  # message, what the log line says
    "bad MIC": ({**updf(1), "MIC": 12345}, "MIC check failed"),
    "short frame (FOpts shorter than FOptsLen)": ({**updf(1), "FCtrl": 0x03}, "FOptsLen 3"),
    "FCnt out of range": ({**updf(1), "FCnt": 70000}, "'FCnt' must be in 0..65535"),
    "unknown DevAddr": (updf(1, dev_addr=0x26FFFFFF), "unknown DevAddr 26FFFFFF"),
    "replayed counter": (updf(0), "FCnt 0 replayed"),
    "jreq with a bad DevEui": ({"msgtype": "jreq", "MHdr": 0, "JoinEui": "00-00-00-00-00-00-00-01",
                                "DevEui": "garbage", "DevNonce": 1, "MIC": 1, **RADIO.to_dict()}, "EUI 'garbage'"),
    "dntxed for no dnmsg": ({"msgtype": "dntxed", "diid": 999, "DR": 0, "Freq": 869525000,
                             "DevEui": "00-00-00-00-00-00-00-01"}, "unknown diid 999"),
    "dntxed without fields": ({"msgtype": "dntxed"}, "missing field"),
    "updf missing upinfo": ({k: v for k, v in updf(1).items() if k != "upinfo"}, "missing field 'upinfo'"),
}


@pytest.mark.parametrize("case", sorted(BAD_MESSAGES))
def test_bad_message_is_dropped_with_a_log_line(tmp_path: Path, case: str, caplog: pytest.LogCaptureFixture) -> None:
    async def main(world: World) -> None:
        assert world.ns is not None
        urls = world.server.endpoints()
        world.server.registry.put(StationRecord(GATEWAY_EUI, tc_uri=urls["lns"]))
        world.ns.add_abp_device(DEV_EUI, DEV_ADDR, KEYS.nwk_s_key, KEYS.app_s_key)
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{urls['lns']}/router-data/{format_eui(GATEWAY_EUI, '')}") as ws:
                await ws.send_str(json.dumps({"msgtype": "version", "station": "2.0.6(linux/std)", "firmware": None,
                                              "package": None, "model": "linux", "protocol": 2, "features": ""}))
                assert json.loads((await ws.receive()).data)["msgtype"] == "router_config"
                await ws.send_str(json.dumps(updf(0)))  # a good uplink first: FCnt 0 is taken
                await world.until(lambda: len(world.api.events) == 1, 5)  # type: ignore[union-attr]
                before = snapshot(world)
                caplog.clear()
                with caplog.at_level(logging.WARNING):
                    await ws.send_str(json.dumps(BAD_MESSAGES[case][0]))
                    await asyncio.sleep(1.0)
                assert snapshot(world) == before
                warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
                assert any(BAD_MESSAGES[case][1] in line for line in warnings), warnings
                assert not ws.closed and GATEWAY_EUI in world.server.lns.sessions
                await ws.send_str(json.dumps(updf(1, b"after")))  # the connection still carries traffic
                await world.until(lambda: len(world.api.events) == 2, 5)  # type: ignore[union-attr]

    run_world(tmp_path, main)


@pytest.mark.parametrize("garbage", ["not json {", "[1, 2, 3]", '{"no": "msgtype"}'])
def test_garbage_text_is_dropped_and_changes_nothing_else(tmp_path: Path, garbage: str,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    """The LNS closes a connection that sends garbage (1007); the station may reconnect at once."""

    async def main(world: World) -> None:
        assert world.ns is not None
        urls = world.server.endpoints()
        world.server.registry.put(StationRecord(GATEWAY_EUI, tc_uri=urls["lns"]))
        world.ns.add_abp_device(DEV_EUI, DEV_ADDR, KEYS.nwk_s_key, KEYS.app_s_key)
        url = f"{urls['lns']}/router-data/{format_eui(GATEWAY_EUI, '')}"
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(url) as ws:
                await ws.send_str(json.dumps(updf(0)))
                await world.until(lambda: len(world.api.events) == 1, 5)  # type: ignore[union-attr]
                before = snapshot(world)
                with caplog.at_level(logging.WARNING):
                    await ws.send_str(garbage)
                    message = await ws.receive()
                assert message.type == aiohttp.WSMsgType.CLOSE and message.data == 1007
                assert any(record.levelno >= logging.WARNING for record in caplog.records), "no log line"
                assert snapshot(world) == before
            async with http.ws_connect(url) as ws:
                await ws.send_str(json.dumps(updf(1, b"after")))
                await world.until(lambda: len(world.api.events) == 2, 5)  # type: ignore[union-attr]

    run_world(tmp_path, main)

"""The radio capture of an end-to-end scenario (stations, network server, devices), read back by
Debian tshark 4.0.17 with the Wireshark key log: every data frame below FCnt 65536 shows a good MIC
and the decrypted payload our codec computes. tshark 4.0 checks MICs with the 16-bit counter, so
frames above it are checked with our codec only (see tests/lorawan_radio/test_lora_capture.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from lorawan_e2e_world import World, run_world
from scapy.utils import RawPcapReader

from otaharness.emulators.lorawan_device import AbpActivation, DeviceClass, DeviceConfig
from otaharness.protocols.lorawan import EU868, DataFrame, SessionKeys, decode_phy_payload, derive_mc_session_keys, reconstruct_fcnt
from otaharness.runtime.lora_capture import KEY_TABLE, LORATAP_V0

ABP_ADDR = 0x26011B01
ABP_KEYS = SessionKeys(nwk_s_key=bytes.fromhex("44024241ed4ce9a68c6a8bc055233fd3"),
                       app_s_key=bytes.fromhex("ec925802ae430ca77fd3dd73cb2cc588"))
MC_ADDR = 0x01AB0001




def _scenario(tmp_path: Path) -> tuple[Path, Path, int]:
    async def main(world: World) -> tuple[Path, Path, int]:
        assert world.ns is not None and world.field is not None and world.capture is not None
        await world.station()
        otaa = world.device("otaa", 0x0004A30B001C0530)
        assert await otaa.join()
        world.ns.add_abp_device(0xAB, ABP_ADDR, ABP_KEYS.nwk_s_key, ABP_KEYS.app_s_key, "C", fcnt_up=0xFFFD,
                                nfcnt_down=0xFFFF)
        abp = world.field.add_device("abp", DeviceConfig(dev_eui=0xAB, abp=AbpActivation(ABP_ADDR, ABP_KEYS),
                                                         device_class=DeviceClass.C), (0.0, 700.0), world.rng("abp"))
        abp.session.fcnt_up, abp.session.fcnt_down = 0xFFFE, 0xFFFE
        mc_keys = derive_mc_session_keys(bytes(range(1, 17)), MC_ADDR)
        world.ns.create_multicast_group(MC_ADDR, mc_keys.nwk_s_key, mc_keys.app_s_key, EU868.rx2_frequency_hz, 0,
                                        name="g")
        abp.add_multicast_group(0, MC_ADDR, mc_keys)
        for index in range(3):
            world.ns.enqueue_downlink(0x0004A30B001C0530, 9, b"down-%d" % index)
            await otaa.send(2, b"otaa-%d" % index)
            await abp.send(3, b"abp-%d" % index)
            await asyncio.sleep(30)
        world.ns.enqueue_downlink(0xAB, 5, b"class-c-1")
        world.ns.enqueue_downlink(0xAB, 5, b"class-c-2")
        await asyncio.sleep(60)
        frame = world.ns.enqueue_multicast("g", 201, b"fragment")
        await asyncio.wait_for(frame.transmitted, 60)
        await asyncio.sleep(60)
        return world.capture.path, world.capture.key_dir, world.capture.frames

    return run_world(tmp_path, main, capture=True)


def test_scenario_capture_read_by_tshark_with_correct_mics(tshark: str, tmp_path: Path) -> None:
    path, key_dir, frames = _scenario(tmp_path)
    rows = (key_dir / KEY_TABLE).read_text().splitlines()
    sessions = {int.from_bytes(bytes.fromhex(row.split(",")[0].strip('"')), "little"):
                SessionKeys(nwk_s_key=bytes.fromhex(row.split(",")[1].strip('"')),
                            app_s_key=bytes.fromhex(row.split(",")[2].strip('"'))) for row in rows}
    assert set(sessions) >= {ABP_ADDR, MC_ADDR} and len(sessions) == 3
    fields = ["lorawan.mhdr.mtype", "lorawan.fhdr.devaddr", "lorawan.fhdr.fcnt", "lorawan.mic.status",
              "lorawan.frmpayload_decrypted"]
    result = subprocess.run(
        [tshark, "-r", str(path), "-T", "fields", "-E", "separator=|", *sum((["-e", f] for f in fields), [])],
        env={**os.environ, "WIRESHARK_CONFIG_DIR": str(key_dir)}, capture_output=True, text=True, timeout=60,
        check=True)
    dissected = [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines()]
    assert len(dissected) == frames
    last: dict[tuple[int, bool], int] = {}
    good = above_16_bits = 0
    for packet, row in zip((p for p, _ in RawPcapReader(str(path))), dissected):
        phy = decode_phy_payload(packet[LORATAP_V0.size:])
        if not isinstance(phy, DataFrame):
            continue
        keys = sessions[phy.dev_addr]
        key = (phy.dev_addr, phy.uplink)
        fcnt = last[key] = reconstruct_fcnt(phy.fcnt16, last.get(key, 0))
        assert phy.mic_is_valid(keys.nwk_s_key, fcnt)
        if fcnt > 0xFFFF:
            above_16_bits += 1
            continue
        assert row["lorawan.mic.status"] == "1", (row, fcnt)  # 1 = Good
        if phy.fport:
            assert bytes.fromhex(row["lorawan.frmpayload_decrypted"]) == phy.decrypt_payload(keys, fcnt)
        good += 1
    assert good >= 8 and above_16_bits >= 2  # ABP uplink and class C downlink 0x10000

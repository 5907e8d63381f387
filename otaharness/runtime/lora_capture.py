"""Radio traffic as a LoRaTap pcap (DLT 270) plus a Wireshark LoRaWAN key log beside it.

Each frame on the medium becomes one packet: a LoRaTap version 0 header (the version Debian
tshark 4.0.17's dissector reads; layout from the LoRaTap README, all fields big-endian) and the
PHYPayload. The packet time is the end of the frame's airtime (when receivers have it), so the
file stays in time order although frames overlap. RSSI/SNR are the strongest reception's (zero
when nobody received the frame).

Key log: ``<capture>.wireshark/encryption_keys_lorawan``, one UAT row per DevAddr or McAddr::

    "04030201","<NwkSKey hex>","<AppSKey hex>","<AppEUI hex>"

Wireshark 4.0's table takes DevAddr in wire (little-endian) order and has no AppKey column, so
join-request/accept MICs stay unverified. Use it with
``WIRESHARK_CONFIG_DIR=<capture>.wireshark tshark -r <capture>``, by copying the file into the
Wireshark configuration folder, or with the ``-o uat:...`` options of :meth:`tshark_options`.
tshark 4.0.17 checks data MICs with the 16-bit frame counter only: frames whose 32-bit counter is
above 65535 show "MIC Bad" there although they are right (see tests/lorawan_radio).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from otaharness.protocols.lorawan.keys import SessionKeys
from otaharness.runtime.capture import LINKTYPE_LORATAP, PcapWriter

if TYPE_CHECKING:  # the runtime does not depend on the emulators at run time
    from otaharness.runtime.radio import AirFrame, RadioMedium, Reception

# LoRaTap v0: lt_version, lt_padding, lt_length, frequency (Hz), bandwidth (125 kHz units), sf,
# packet_rssi, max_rssi, current_rssi, snr (0.25 dB, two's complement), sync_word.
LORATAP_V0 = struct.Struct(">BBHIBBBBBbB")
LORATAP_SYNC_WORD_LORAWAN = 0x34
LORATAP_BANDWIDTH_UNIT_HZ = 125_000
RSSI_BASE_DBM = -139  # packet_rssi = dBm + 139 (quarter dB steps when the SNR is negative)
KEY_TABLE = "encryption_keys_lorawan"


class _Clock(Protocol):
    def epoch(self) -> float: ...

    def monotonic(self) -> float: ...


def _rssi_octet(rssi_dbm: float, snr_db: float) -> int:
    value = rssi_dbm - RSSI_BASE_DBM
    if snr_db < 0:
        value *= 4
    return max(0, min(255, round(value)))


def loratap_header(frequency_hz: int, bandwidth_hz: int, spreading_factor: int,
                   rssi_dbm: float | None = None, snr_db: float | None = None) -> bytes:
    """The 15-octet LoRaTap v0 header of one LoRa frame."""
    rssi = 0 if rssi_dbm is None or snr_db is None else _rssi_octet(rssi_dbm, snr_db)
    snr = 0 if snr_db is None else max(-128, min(127, round(snr_db * 4)))
    return LORATAP_V0.pack(0, 0, LORATAP_V0.size, frequency_hz, bandwidth_hz // LORATAP_BANDWIDTH_UNIT_HZ,
                           spreading_factor, rssi, rssi, rssi, snr, LORATAP_SYNC_WORD_LORAWAN)


def key_table_row(address: int, keys: SessionKeys, app_eui: int = 0) -> str:
    """One ``encryption_keys_lorawan`` row; the address in wire (little-endian) order."""
    return (f'"{address.to_bytes(4, "little").hex()}","{keys.nwk_s_key.hex()}","{keys.app_s_key.hex()}",'
            f'"{app_eui:016x}"')


class LoraCapture:
    """Writes every frame of a medium to ``path``; collects session keys for the key log."""

    def __init__(self, path: str | Path, clock: _Clock) -> None:
        self.path = Path(path)
        self.clock = clock
        self.key_dir = self.path.with_name(self.path.name + ".wireshark")
        self._writer = PcapWriter(self.path, linktype=LINKTYPE_LORATAP)
        self._rows: list[str] = []
        self.frames = 0

    def attach(self, medium: RadioMedium) -> None:
        medium.add_monitor(self.record)

    def record(self, frame: AirFrame, receptions: list[Reception]) -> None:
        best = max(receptions, key=lambda reception: reception.rssi_dbm, default=None)
        transmission = frame.transmission
        header = loratap_header(transmission.frequency_hz, transmission.bandwidth_hz, transmission.spreading_factor,
                                best.rssi_dbm if best else None, best.snr_db if best else None)
        # Loop time → capture time: the clock's epoch minus how long ago the frame ended.
        ts = self.clock.epoch() - (self.clock.monotonic() - frame.end)
        self._writer.write_raw(header + bytes(transmission.phy_payload), ts)
        self.frames += 1

    def add_session(self, address: int, keys: SessionKeys) -> None:
        """Log the keys of a unicast session (DevAddr) or multicast group (McAddr)."""
        row = key_table_row(address, keys)
        if row in self._rows:
            return
        self._rows.append(row)
        self.key_dir.mkdir(parents=True, exist_ok=True)
        (self.key_dir / KEY_TABLE).write_text("".join(r + "\n" for r in self._rows))

    def tshark_options(self) -> list[str]:
        """The key log as tshark ``-o uat:`` options."""
        return [option for row in self._rows for option in ("-o", f"uat:{KEY_TABLE}:{row}")]

    def close(self) -> None:
        self._writer.close()

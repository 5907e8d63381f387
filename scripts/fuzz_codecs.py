"""Coverage-guided fuzzing of the codecs with atheris, for campaigns longer than CI's hypothesis
tests. Each target feeds the fuzzer's bytes to one decoder; the only exception it may raise is
the codec's own error (all are ValueError subclasses) — anything else is a finding.

    pip install atheris
    python scripts/fuzz_codecs.py --list
    python scripts/fuzz_codecs.py lorawan-frames -atheris_runs=1000000 corpus/lorawan/
    python scripts/fuzz_codecs.py cwmp -max_total_time=600

Arguments after the target go to libFuzzer (-max_total_time, -atheris_runs, corpus folders).
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def _targets() -> dict[str, Callable[[bytes], object]]:
    from otaharness.protocols import aws_iot_jobs, json_input, mqtt_wire
    from otaharness.protocols.basics_station.lns_data import decode_station_message
    from otaharness.protocols.cwmp.envelope import parse_envelope
    from otaharness.protocols.lorawan.frames import decode_phy_payload
    from otaharness.protocols.lorawan.mac_commands import decode_mac_commands

    def mqtt_packets(data: bytes) -> None:
        buffer = bytearray(data)
        while (packet := mqtt_wire.take_packet(buffer, 1 << 20)) is not None:
            kind = mqtt_wire.packet_type(packet)
            if kind == mqtt_wire.CONNECT:
                mqtt_wire.parse_connect(packet)
            elif kind == mqtt_wire.SUBSCRIBE:
                mqtt_wire.parse_subscribe(packet, 5)
            elif kind == mqtt_wire.PUBLISH:
                mqtt_wire.parse_publish(packet, 5)

    return {
        "json": json_input.parse_json,
        "mqtt-wire": mqtt_packets,
        "lorawan-frames": decode_phy_payload,
        "lorawan-mac-uplink": lambda data: decode_mac_commands(data, uplink=True),
        "lns-messages": decode_station_message,
        "cwmp": parse_envelope,
        "aws-jobs-payload": aws_iot_jobs.decode_jobs_payload,
    }


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] in ("--list", "-h", "--help"):
        print("targets:", ", ".join(sorted(_targets())))
        return
    import atheris  # type: ignore[import-not-found]

    with atheris.instrument_imports():  # coverage of our codecs guides the fuzzer
        targets = _targets()
    decode = targets[sys.argv[1]]

    def one_input(data: bytes) -> None:
        try:
            decode(data)
        except ValueError:
            pass  # the codec's own refusal

    atheris.Setup([sys.argv[0], *sys.argv[2:]], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

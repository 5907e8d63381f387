"""CLI: ``otaharness basics-station prepare`` — a signature key, its checksum, a firmware digest.

Writes ``sig-N.key``, ``sig-N.pem``, ``sig-N.crc`` into ``--output-dir`` and, with
``--firmware``, the base64 digest of that file (``--digest``, default ``<firmware>.digest``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from otaharness.provision.basics_station import prepare_signature_key, write_firmware_digest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output-dir", type=Path, required=True, help="where sig-N.key/.pem/.crc go")
    parser.add_argument("--key-index", type=int, default=0, help="N in sig-N.key (default 0)")
    parser.add_argument("--firmware", type=Path, help="update file to sign with the new key")
    parser.add_argument("--digest", type=Path, help="digest file (default: <firmware>.digest)")


async def run(args: argparse.Namespace) -> int:
    prepared = prepare_signature_key(args.output_dir, args.key_index)
    print(f"key {prepared.key_file} (crc {prepared.crc}), private key {prepared.private_key_file}")
    if args.firmware is not None:
        digest_file = args.digest or args.firmware.with_name(args.firmware.name + ".digest")
        write_firmware_digest(args.firmware, prepared.private_key_file, digest_file)
        print(f"digest {digest_file}")
    return 0

"""What the emulated CPEs download and install: MikroTik upgrade XML descriptors (fact sheet
§5), dummy RouterOS ``.npk`` packages, generic firmware images, RouterOS ``.alter`` scripts.

The dummy formats are ours, NOT the vendors' (no real firmware is involved):

* dummy ``.npk``: the real NPK magic ``1E F1 D0 BA`` (0xBAD0F11E little-endian), a u32
  little-endian payload length, then ``name NUL version NUL`` and filler bytes, then a u32
  CRC-32 of everything before it. A wrong magic, length or CRC means "file corrupted".
* generic image: ``OTAFW1\\n``, one JSON header line ``{"version": ..., "sha256": ...}``, payload.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import zlib
from dataclasses import dataclass

from otaharness.protocols.cwmp.errors import CwmpError
from otaharness.protocols.cwmp.safe_xml import parse_untrusted_xml

NPK_MAGIC = 0xBAD0F11E
IMAGE_MAGIC = b"OTAFW1\n"


class CorruptFile(ValueError):
    """Downloaded content that cannot be installed (TransferComplete fault 9018)."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str


def build_dummy_npk(name: str, version: str, filler: int = 4096) -> bytes:
    payload = name.encode() + b"\0" + version.encode() + b"\0" + bytes(i % 251 for i in range(filler))
    body = struct.pack("<II", NPK_MAGIC, len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body))


def parse_dummy_npk(data: bytes) -> Package:
    if len(data) < 12:
        raise CorruptFile(f"package of {len(data)} bytes is too short")
    magic, length = struct.unpack_from("<II", data)
    if magic != NPK_MAGIC:
        raise CorruptFile(f"not a RouterOS package (magic {magic:#010x})")
    if len(data) != 8 + length + 4:
        raise CorruptFile(f"package length field {length} does not match {len(data)} bytes")
    (crc,) = struct.unpack_from("<I", data, 8 + length)
    if crc != zlib.crc32(data[: 8 + length]):
        raise CorruptFile("package checksum mismatch")
    fields = data[8: 8 + length].split(b"\0", 2)
    if len(fields) < 3:
        raise CorruptFile("package header lacks name and version")
    try:
        return Package(fields[0].decode(), fields[1].decode())
    except UnicodeDecodeError:
        raise CorruptFile("package name or version is not UTF-8") from None


def build_image(version: str, payload: bytes) -> bytes:
    header = json.dumps({"version": version, "sha256": hashlib.sha256(payload).hexdigest()})
    return IMAGE_MAGIC + header.encode() + b"\n" + payload


def parse_image(data: bytes) -> str:
    """The version a generic firmware image installs."""
    if not data.startswith(IMAGE_MAGIC):
        raise CorruptFile("not a firmware image (bad magic)")
    header_line, newline, payload = data[len(IMAGE_MAGIC):].partition(b"\n")
    try:
        header = json.loads(header_line)
        version, digest = str(header["version"]), str(header["sha256"])
    except (ValueError, KeyError, TypeError):
        raise CorruptFile("firmware image header is not valid JSON") from None
    if not newline or hashlib.sha256(payload).hexdigest() != digest:
        raise CorruptFile("firmware image checksum mismatch")
    return version


def parse_upgrade_xml(data: bytes) -> list[str]:
    """The package URLs of a MikroTik ``<upgrade version="1" type="links">`` descriptor."""
    try:
        root = parse_untrusted_xml(data)
    except CwmpError as exc:
        raise CorruptFile(f"upgrade descriptor is not XML: {exc}") from None
    if root.tag != "upgrade" or root.get("version") != "1" or root.get("type") != "links":
        raise CorruptFile('expected <upgrade version="1" type="links">')
    urls = [(node.text or "").strip() for node in root.findall("links/link/url")]
    if not urls or not all(urls):
        raise CorruptFile("upgrade descriptor lists no package URL")
    return urls


_ROUTEROS_COMMAND = re.compile(r"^(/[\w/ -]+?)\s+set\s+(.*)$")
_ASSIGNMENT = re.compile(r'([\w-]+)=("(?:[^"\\]|\\.)*"|\S+)')


def parse_alter_script(text: str) -> list[tuple[str, dict[str, str]]]:
    """``/path set key=value ...`` lines of a RouterOS script (comments and others ignored)."""
    commands = []
    for line in text.splitlines():
        match = _ROUTEROS_COMMAND.match(line.strip())
        if match:
            values = {k: v.strip('"') for k, v in _ASSIGNMENT.findall(match.group(2))}
            commands.append((match.group(1).strip(), values))
    return commands

"""A field device behind the OLT gateway, and the field procedure that writes its slots.

The field procedure (the gateway's local link to the device, e.g. a serial or radio protocol) is
modelled as three requests, each answered by an acknowledgement or a refusal:

    Begin(slot, size, sha256, version) → Ack | Refusal    the device prepares the slot
    Chunk(slot, offset, data)          → Ack | Refusal    in order, offset = bytes so far
    Commit(slot)                       → Ack | Refusal    the device checks sha256, then switches

Slots and configuration are non-volatile; a transfer in progress is RAM (lost on power cut).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Begin:
    slot: str
    size: int
    sha256: str
    version: str


@dataclass(frozen=True)
class Chunk:
    slot: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class Commit:
    slot: str


FieldRequest = Begin | Chunk | Commit


@dataclass(frozen=True)
class Ack:
    step: str
    received: int = 0


@dataclass(frozen=True)
class Refusal:
    step: str
    reason: str


@dataclass
class SlotImage:
    version: str
    sha256: str
    data: bytes


@dataclass
class _Transfer:
    begin: Begin
    received: bytearray = field(default_factory=bytearray)


# An action handler gets (device, payload) and may return (event name, event payload) to answer.
ActionHandler = Callable[["FieldDevice", dict[str, Any]], Awaitable[tuple[str, dict[str, Any]] | None]]


class FieldDevice:
    def __init__(self, device_id: str, *, slot_sizes: dict[str, int] | None = None,
                 attributes: dict[str, Any] | None = None,
                 configuration: dict[str, Any] | None = None,
                 write_delay: float = 0.0) -> None:
        self.device_id = device_id
        self.slot_sizes = slot_sizes or {}  # capacity per slot; absent = unlimited
        self.attributes = dict(attributes or {})
        self.configuration = dict(configuration or {})  # non-volatile
        self.slots: dict[str, SlotImage] = {}  # non-volatile
        self.write_delay = write_delay  # loop seconds per field request (flash write time)
        self.refuse: dict[str, str] = {}  # step ("begin"/"chunk"/"commit") -> reason, to test refusals
        self.actions: dict[str, ActionHandler] = {}
        self.log: list[FieldRequest] = []
        self._transfer: _Transfer | None = None

    async def field(self, request: FieldRequest) -> Ack | Refusal:
        """Answer one field-procedure request, after the device's write time."""
        if self.write_delay:
            await asyncio.sleep(self.write_delay)
        self.log.append(request)
        match request:
            case Begin():
                return self._begin(request)
            case Chunk():
                return self._chunk(request)
            case Commit():
                return self._commit(request)

    def _begin(self, request: Begin) -> Ack | Refusal:
        if "begin" in self.refuse:
            return Refusal("begin", self.refuse["begin"])
        capacity = self.slot_sizes.get(request.slot)
        if capacity is not None and request.size > capacity:
            return Refusal("begin", f"{request.slot} slot holds {capacity} bytes, not {request.size}")
        self._transfer = _Transfer(request)
        return Ack("begin")

    def _chunk(self, request: Chunk) -> Ack | Refusal:
        transfer = self._transfer
        if "chunk" in self.refuse:
            return Refusal("chunk", self.refuse["chunk"])
        if transfer is None or transfer.begin.slot != request.slot:
            return Refusal("chunk", "no transfer begun for this slot")
        if request.offset != len(transfer.received):
            return Refusal("chunk", f"expected offset {len(transfer.received)}, got {request.offset}")
        if len(transfer.received) + len(request.data) > transfer.begin.size:
            return Refusal("chunk", "more bytes than announced")
        transfer.received += request.data
        return Ack("chunk", len(transfer.received))

    def _commit(self, request: Commit) -> Ack | Refusal:
        transfer, self._transfer = self._transfer, None
        if "commit" in self.refuse:
            return Refusal("commit", self.refuse["commit"])
        if transfer is None or transfer.begin.slot != request.slot:
            return Refusal("commit", "no transfer begun for this slot")
        digest = hashlib.sha256(transfer.received).hexdigest()
        if digest != transfer.begin.sha256:
            return Refusal("commit", f"image sha256 {digest} does not match the announced one")
        self.slots[request.slot] = SlotImage(transfer.begin.version, digest, bytes(transfer.received))
        return Ack("commit", len(transfer.received))

    def power_cut(self) -> None:
        self._transfer = None

    async def on_action(self, action: str, payload: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        handler = self.actions.get(action)
        return None if handler is None else await handler(self, payload)

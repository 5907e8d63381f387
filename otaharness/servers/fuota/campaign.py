"""Campaign model: configuration, stages, per-device state (all JSON-serialisable for SQLite)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum, IntEnum
from typing import Any

from otaharness.protocols.fuota.fec import MAX_N
from otaharness.protocols.json_input import JsonInputError
from otaharness.protocols.lorawan import EU868, Region, frame_time_on_air_s

from .schemas import check_config

DATA_FRAGMENT_OVERHEAD = 3  # CID + IndexAndN (TS004 §3.6)
FRAME_OVERHEAD = 13  # MHDR, FHDR without FOpts, FPort, MIC
MAX_TIMEOUT_EXPONENT = 15  # TimeOut is 4 bits: at most 2^15 s


class CampaignError(ValueError):
    """A campaign request that cannot be carried out (bad configuration, wrong state); ``field``
    names the offending configuration field where one is (``$.config.redundancy``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownCampaign(CampaignError):
    """No campaign with this id."""


class CorruptCampaign(CampaignError):
    """A stored campaign whose rows cannot be read back (reported per campaign, never a crash)."""


class CampaignKind(str, Enum):
    FIRMWARE = "firmware"  # the seed's firmware update campaign (stages 1-7)
    BINARY = "binary"  # the seed's binary campaign: deliver a file, no reboot, no upgrade check


class Stage(IntEnum):
    """The seed's stages, numbered as there."""

    MC_GROUP_SETUP = 1
    DEV_REBOOT_TIME = 2
    FRAG_SESSION_SETUP = 3
    MC_SESSION_SETUP = 4
    DL_FRAGMENT = 5
    UPGRADE_IMAGE = 6
    COMPLETION_VERIFICATION = 7


class CampaignState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    STOPPING = "stopping"  # stop requested: cleanup traffic under way
    STOPPED = "stopped"
    FINISHED = "finished"


class DeviceStatus(str, Enum):
    ACTIVE = "active"  # still taking part
    READY = "ready"  # has the image (FEC off: DevUpgradeImageAns 3; FEC on: session complete)
    PASSED = "passed"
    FAILED = "failed"


@dataclass
class CampaignDevice:
    """A device of a campaign: its DevEUI, the 1.0.x GenAppKey its McRootKey derives from, and
    the FUOTA implementation profile that decides how its FragSessionStatusAns is read."""

    dev_eui: int
    gen_app_key: str  # hex
    profile: str = "specification"  # or "loramac-node"


@dataclass
class CampaignConfig:
    name: str
    devices: list[CampaignDevice]
    firmware_version: int  # the version the image carries (DevVersionAns after the upgrade)
    kind: CampaignKind = CampaignKind.FIRMWARE
    fec: bool = True
    redundancy: float = 0.2  # coded fragments as a share of the uncoded ones (FEC on)
    data_rate: int = 5
    frequency: int = 869_525_000
    session_class: str = "C"  # "B": commands only, beacon-synchronised reception out of scope
    ping_slot_periodicity: int = 0  # class B only
    # class C session start this long after stage 4 begins; None: every unicast attempt fits before it
    session_start_delay_s: float | None = None
    session_timeout_exponent: int | None = None  # None: from the fragment count and duty cycle
    frag_size: int | None = None  # None: the largest DataFragment the data rate carries
    mc_group_id: int = 0
    frag_index: int = 0
    block_ack_delay: int = 0
    reboot_time: float | None = None  # Unix seconds: stage 2 programs the reboot for then
    reboot_countdown_s: int = 30  # without reboot_time: DevRebootCountdownReq after stage 6
    success_threshold: float = 1.0  # share of the campaign's devices
    max_rounds: int = 2
    unicast_timeout_s: float = 120.0
    unicast_attempts: int = 3
    verification_timeout_s: float = 300.0  # wait for DevVersionAns after the reboot before asking

    def __post_init__(self) -> None:
        try:
            self.kind = CampaignKind(self.kind)
        except ValueError:
            raise CampaignError(f"kind is one of {[k.value for k in CampaignKind]}") from None
        if not self.devices:
            raise CampaignError("a campaign needs at least one device")
        if len({device.dev_eui for device in self.devices}) != len(self.devices):
            raise CampaignError("a device is listed twice")
        if not 0 < self.success_threshold <= 1:
            raise CampaignError("success_threshold is a share of the devices: 0 < t <= 1")
        if self.max_rounds < 1 or self.unicast_attempts < 1:
            raise CampaignError("max_rounds and unicast_attempts must be at least 1")
        if self.session_class not in ("B", "C"):
            raise CampaignError("session_class is 'B' or 'C'")
        if not 0 <= self.mc_group_id < 4 or not 0 <= self.frag_index < 4:
            raise CampaignError("mc_group_id and frag_index are 0..3")
        if self.redundancy < 0:
            raise CampaignError("redundancy must not be negative")

    def session_start_delay(self) -> float:
        if self.session_start_delay_s is not None:
            return self.session_start_delay_s
        return self.unicast_timeout_s * self.unicast_attempts + 60.0

    def fragment_size(self, region: Region = EU868) -> int:
        limit = region.data_rate(self.data_rate).max_frm_payload_size() - DATA_FRAGMENT_OVERHEAD
        if self.frag_size is None:
            return limit
        if not 1 <= self.frag_size <= limit:
            raise CampaignError(f"frag_size {self.frag_size} outside 1..{limit} for DR{self.data_rate}")
        return self.frag_size

    def coded_fragments(self, nb_frag: int) -> int:
        if not self.fec:
            return 0
        return min(math.ceil(nb_frag * self.redundancy), MAX_N - nb_frag)

    def timeout_exponent(self, fragments: int, region: Region = EU868) -> int:
        """Enough for every fragment at the gateway duty cycle of the session's sub-band, +25 %."""
        if self.session_timeout_exponent is not None:
            return self.session_timeout_exponent
        airtime = frame_time_on_air_s(self.fragment_size(region) + DATA_FRAGMENT_OVERHEAD + FRAME_OVERHEAD,
                                      region.data_rate(self.data_rate), uplink=False)
        spacing = airtime / region.sub_band(self.frequency).duty_cycle + 0.2
        return min(max(math.ceil(math.log2(fragments * spacing * 1.25 + 10)), 0), MAX_TIMEOUT_EXPONENT)

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["kind"] = self.kind.value
        return document

    def check(self) -> None:
        """The configuration as :data:`~.schemas.CONFIG_SCHEMA` wants it (types, ranges, finite
        numbers, enums): a configuration built in Python passes the same rules as one sent."""
        try:
            check_config(self.to_json())
        except JsonInputError as error:
            raise CampaignError(f"bad campaign configuration: {error}") from None

    @classmethod
    def from_json(cls, document: Any, where: str = "$") -> CampaignConfig:
        """A configuration from its JSON form, checked against :data:`~.schemas.CONFIG_SCHEMA`
        (``where``: its place in the request, for the error message)."""
        try:
            values = check_config(document, where)
        except JsonInputError as error:
            raise CampaignError(f"bad campaign configuration: {error}", error.path) from None
        values["devices"] = [CampaignDevice(**_device_fields(d)) for d in values["devices"]]
        values["kind"] = CampaignKind(values.get("kind", "firmware"))
        return cls(**values)


def _device_fields(document: dict[str, Any]) -> dict[str, Any]:
    """A device of a checked configuration: a hex DevEUI becomes its integer."""
    values = dict(document)
    if isinstance(values["dev_eui"], str):
        values["dev_eui"] = int(values["dev_eui"], 16)
    return values


@dataclass
class DeviceState:
    """What the server knows about one device of a campaign."""

    dev_eui: int
    profile: str
    status: DeviceStatus = DeviceStatus.ACTIVE
    reason: str = ""
    round: int = 1
    done: dict[str, float] = field(default_factory=dict)  # exchange step -> Unix time of its answer
    answers: dict[str, Any] = field(default_factory=dict)  # last answer per command name
    reboot_requested: bool = False  # a DevRebootTimeReq/DevRebootCountdownReq programming a reboot went out
    reboot_programmed: bool = False
    rebooted: bool = False  # a DevVersionAns came after the reboot time
    frag_session_set_up: bool = False

    def mark(self, step: str, at: float) -> None:
        """``step`` names an exchange, with its round where it repeats ("FragSessionSetup:2")."""
        self.done[step] = at

    def fail(self, reason: str) -> None:
        if self.status in (DeviceStatus.ACTIVE, DeviceStatus.READY):
            self.status, self.reason = DeviceStatus.FAILED, reason

    def to_json(self) -> dict[str, Any]:
        """The stored form, saved after every answer: the fields one level deep (asdict's recursive
        deep copy of ``answers`` was most of a save), the two dicts copied, the answers in them
        being JSON values already and never changed in place (on_answer replaces them)."""
        document = dict(self.__dict__)
        document["status"] = self.status.value
        document["done"] = dict(self.done)
        document["answers"] = dict(self.answers)
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> DeviceState:
        values = dict(document)
        values["status"] = DeviceStatus(values["status"])
        return cls(**values)

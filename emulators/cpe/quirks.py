"""Recorded misbehaviour of real CPEs and simulators (fact sheet §7, §8, §11), as switches.
All off = a CPE that follows TR-069 to the letter."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree


@dataclass(frozen=True)
class Quirks:
    # TransferComplete with StartTime/CompleteTime before FaultStruct (both simulators).
    times_before_fault: bool = False
    # Inform events for a finished transfer: "standard" (7 TRANSFER COMPLETE + M Download with
    # the CommandKey), "none" (genieacs-sim: neither), "empty-key" (cwmp-sim: M Download "").
    transfer_complete_events: str = "standard"
    # Cookies: "standard" (name=value), "echo-attributes" (genieacs-sim echoes Set-Cookie
    # verbatim, attributes included), "none" (cwmp-sim sends none).
    cookies: str = "standard"
    preemptive_basic: bool = False  # genieacs-sim: Basic on every request, never Digest
    fixed_nonce_count: bool = False  # cwmp-sim: Digest nc=00000001 every time
    # A Connection Request during a session starts a second, overlapping session (cwmp-sim).
    overlapping_sessions: bool = False
    # HTTPS without checking the server's certificate: any ACS or file server is believed (many
    # CPEs in the field; a risk, see docs/tr069-acs.md).
    skip_certificate_check: bool = False
    # Fault injection: report success but keep the old version (GenieACS issue #162).
    keep_version: bool = False
    # Fault injection: never send TransferComplete (the ACS must time out / check).
    no_transfer_complete: bool = False

    TRANSFER_EVENT_MODES = ("standard", "none", "empty-key")
    COOKIE_MODES = ("standard", "echo-attributes", "none")

    def __post_init__(self) -> None:
        if self.transfer_complete_events not in self.TRANSFER_EVENT_MODES:
            raise ValueError(f"transfer_complete_events must be one of {self.TRANSFER_EVENT_MODES}")
        if self.cookies not in self.COOKIE_MODES:
            raise ValueError(f"cookies must be one of {self.COOKIE_MODES}")


def move_fault_struct_last(envelope: bytes) -> bytes:
    """Reorder a built TransferComplete the way both simulators send it (XSD-invalid)."""
    root = etree.fromstring(envelope)
    for node in root.iter():
        if isinstance(node.tag, str) and etree.QName(node).localname == "TransferComplete":
            fault = next(c for c in node if c.tag == "FaultStruct")
            node.remove(fault)
            node.append(fault)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")

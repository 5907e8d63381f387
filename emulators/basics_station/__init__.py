"""Emulated LoRa Basics Station: CUPS firmware updates and the LNS connection."""

from otaharness.emulators.basics_station.home import CredentialSet, StationHome
from otaharness.emulators.basics_station.station import (
    BasicsStation,
    StationEvent,
    StationSettings,
)

__all__ = ["BasicsStation", "CredentialSet", "StationEvent", "StationHome", "StationSettings"]

"""Emulated LoRa Basics Station: CUPS firmware updates and the LNS connection."""

from emulators.basics_station.home import CredentialSet, StationHome
from emulators.basics_station.station import (
    BasicsStation,
    StationEvent,
    StationSettings,
)

__all__ = ["BasicsStation", "CredentialSet", "StationEvent", "StationHome", "StationSettings"]

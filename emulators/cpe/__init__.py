"""Emulated TR-069 CPEs (MikroTik RouterOS and a generic TR-098 gateway); see docs/tr069-acs.md."""

from .connection_request import ConnectionRequestServer
from .device import Cpe
from .profiles import PROFILES, Profile
from .quirks import Quirks

__all__ = ["ConnectionRequestServer", "Cpe", "PROFILES", "Profile", "Quirks"]

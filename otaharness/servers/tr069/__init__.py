"""TR-069 ACS: CWMP endpoint, file server, admin API, upgrade batches (seed 002)."""

from .acs import Acs, AcsConfig, AcsError, device_id_of
from .server import AcsServer

__all__ = ["Acs", "AcsConfig", "AcsError", "AcsServer", "device_id_of"]

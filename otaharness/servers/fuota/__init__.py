"""FUOTA campaign server (the seed's "RMC agent") on the LoRaWAN network server's application
interface: TS005 multicast setup, TS004 fragmentation with FEC, TS006 firmware management,
TS003 clock sync answers; campaigns persisted in SQLite, an HTTP API, a CLI and PNG reports.

::

    fuota = FuotaServer(network_server, runtime.artifacts / "fuota.sqlite", runtime.clock, runtime.rng("fuota"))
    await fuota.start()                      # resumes campaigns a previous server left running
    campaign = fuota.create_campaign(CampaignConfig(...), image)
    fuota.start_campaign(campaign); await fuota.stop_campaign(campaign); fuota.status(campaign)

See docs/fuota.md.
"""

from . import cli
from .campaign import (
    CampaignConfig,
    CampaignDevice,
    CampaignError,
    CampaignKind,
    CampaignState,
    DeviceState,
    DeviceStatus,
    Stage,
)
from .server import CampaignRun, FuotaServer, fragments_complete
from .store import CampaignStore, Event

__all__ = [
    "CampaignConfig", "CampaignDevice", "CampaignError", "CampaignKind", "CampaignRun", "CampaignState",
    "CampaignStore", "DeviceState", "DeviceStatus", "Event", "FuotaServer", "Stage", "cli", "fragments_complete",
]

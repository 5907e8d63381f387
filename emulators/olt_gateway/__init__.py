"""OLT gateway emulator: a gateway (MQTT + REST) with field devices behind it."""

from otaharness.emulators.olt_gateway.api_client import InstallationGone, OltApiClient, OltApiError
from otaharness.emulators.olt_gateway.device import Ack, Begin, Chunk, Commit, FieldDevice, Refusal
from otaharness.emulators.olt_gateway.gateway import InstallJob, OltGateway

__all__ = ["Ack", "Begin", "Chunk", "Commit", "FieldDevice", "InstallJob", "InstallationGone",
           "OltApiClient", "OltApiError", "OltGateway", "Refusal"]

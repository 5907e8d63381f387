"""Device profiles: which data model, how firmware is delivered, which packages are installed.

* ``mikrotik``: RouterOS CHR with the tr069-client package (fact sheet §5). Firmware comes as an
  upgrade XML whose links are ``.npk`` packages; SoftwareVersion is the ``routeros`` package's
  version; ``.alter`` configuration files run as scripts; ``X MIKROTIK Factory Configuration
  File`` replaces the default-configuration script.
* ``generic``: a TR-098 gateway taking one binary firmware image.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

MIKROTIK_OUI = "E48D8C"
MIKROTIK_FACTORY_CONFIGURATION = "X MIKROTIK Factory Configuration File"


@dataclass(frozen=True)
class Profile:
    name: str
    datamodel: str  # file under fixtures/tr069/datamodels/
    firmware: str  # "upgrade-xml" (MikroTik) or "image"
    packages: Mapping[str, str] = field(default_factory=dict)  # installed at the start
    main_package: str = ""  # whose version is DeviceInfo.SoftwareVersion
    # RouterOS script command -> data-model parameter it sets (for .alter files)
    script_parameters: Mapping[tuple[str, str], str] = field(default_factory=dict)


PROFILES: Mapping[str, Profile] = MappingProxyType({
    "mikrotik": Profile(
        name="mikrotik", datamodel="mikrotik-chr-tr181.json", firmware="upgrade-xml",
        packages=MappingProxyType({"routeros-x86": "6.48", "tr069-client": "6.48"}),
        main_package="routeros-x86",
        script_parameters=MappingProxyType({
            ("/system identity", "name"): "DeviceInfo.X_MIKROTIK_SystemIdentity",
            ("/tr069-client", "periodic-inform-interval"): "ManagementServer.PeriodicInformInterval",
        })),
    "generic": Profile(name="generic", datamodel="generic-gateway-tr098.json", firmware="image"),
})

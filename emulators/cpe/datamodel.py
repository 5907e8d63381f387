"""A CPE's parameters, loaded from a data-model file in fixtures/tr069/datamodels/.

File format (JSON): ``{"root": "Device.", "parameters": [[name, value, xsd type, writable,
forced_inform], ...]}``; forced-inform parameters go in every Inform (TR-181 forcedInform,
fact sheet §3). TR-181 (``Device.``) and TR-098 (``InternetGatewayDevice.``) both fit.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

from otaharness.fixtures import fixture_path

FIXTURES = fixture_path("tr069")


@dataclass
class Parameter:
    value: str
    type: str = "xsd:string"
    writable: bool = False
    forced_inform: bool = False


class DataModel:
    def __init__(self, root: str, parameters: dict[str, Parameter]) -> None:
        if not root.endswith("."):
            raise ValueError(f"data model root must end with '.', got {root!r}")
        self.root = root
        self.parameters = parameters

    @classmethod
    def load(cls, path: Path | str) -> DataModel:
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            path = FIXTURES / "datamodels" / path
        document = json.loads(path.read_text())
        parameters = {}
        for row in document["parameters"]:
            name, value, kind, writable, forced = row
            parameters[name] = Parameter(str(value), kind, bool(writable), bool(forced))
        return cls(document["root"], parameters)

    def copy(self) -> DataModel:
        return DataModel(self.root, copy.deepcopy(self.parameters))

    def path(self, relative: str) -> str:
        """``DeviceInfo.SoftwareVersion`` -> ``Device.DeviceInfo.SoftwareVersion``."""
        return self.root + relative

    def get(self, relative: str) -> str:
        return self.parameters[self.path(relative)].value

    def set(self, relative: str, value: str) -> bool:
        """Set (creating if needed); True if the value changed."""
        name = self.path(relative)
        parameter = self.parameters.setdefault(name, Parameter(""))
        changed = parameter.value != value
        parameter.value = value
        return changed

    def forced_inform(self) -> list[tuple[str, Parameter]]:
        return [(n, p) for n, p in self.parameters.items() if p.forced_inform]

    def matching(self, names: tuple[str, ...]) -> list[tuple[str, Parameter]] | None:
        """Parameters named, or under a partial path ending in '.'; None if a name is unknown."""
        found = []
        for name in names:
            if name == "" or name.endswith("."):
                found += [(n, p) for n, p in self.parameters.items() if n.startswith(name)]
            elif name in self.parameters:
                found.append((name, self.parameters[name]))
            else:
                return None
        return found

"""The MQTT broker as a runtime service: mosquitto per scenario, the fallback, or a user's."""

from __future__ import annotations

import logging
from pathlib import Path

from otaharness.runtime.broker import choose_broker

log = logging.getLogger(__name__)


class BrokerService:
    def __init__(self, runtime, broker) -> None:
        self.runtime = runtime
        self.broker = broker

    def endpoints(self) -> dict[str, str]:
        return {"mqtt": self.broker.url}

    def log_files(self) -> dict[str, Path]:
        path = getattr(self.broker, "log_path", None)
        return {"broker": path} if path is not None else {}

    async def stop(self) -> None:
        remove = getattr(self.runtime.clock, "remove_quiet_probe", None)
        if remove is not None:
            remove(self.broker.flush)
        await self.broker.stop()


async def start(runtime) -> BrokerService:
    broker = choose_broker(runtime.config.broker, ci=runtime.config.ci)
    await broker.start()
    log.info("MQTT broker: %s at %s", broker.name, broker.url)
    add_probe = getattr(runtime.clock, "add_quiet_probe", None)
    if add_probe is not None:
        add_probe(broker.flush)
    return BrokerService(runtime, broker)

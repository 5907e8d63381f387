"""moto's AWS control plane (S3, IoT, iot-data, cognito-idp) served over HTTP on loopback.

In-process `ThreadedMotoServer`, so the harness shares moto's backend objects (moto_gaps, the
jobs service and the shadow bridge act on them directly)."""

from __future__ import annotations

import logging
import threading
from typing import Any

import boto3
from botocore.config import Config
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iot.models import IoTBackend, iot_backends
from moto.iotdata.models import IoTDataPlaneBackend, iotdata_backends
from moto.moto_api._internal.models import moto_api_backend
from moto.server import ThreadedMotoServer

ACCOUNT_ID = DEFAULT_ACCOUNT_ID
REGION = "us-east-1"
# moto accepts any credentials; botocore only needs some to sign.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoServer:
    def __init__(self, host: str = "127.0.0.1", region: str = REGION) -> None:
        self.host = host
        self.region = region
        self._server: ThreadedMotoServer | None = None
        self._url: str | None = None
        self._session = boto3.session.Session()
        self._session_lock = threading.Lock()

    def start(self) -> str:
        # One line per request from werkzeug would drown the scenario logs; errors stay visible.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server = ThreadedMotoServer(ip_address=self.host, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self._url = f"http://{host}:{port}"
        return self._url

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._url = None

    @property
    def url(self) -> str:
        if self._url is None:
            raise RuntimeError("moto server is not running")
        return self._url

    @staticmethod
    def reset() -> None:
        """Wipe every moto backend (what POST /moto-api/reset does), so no state leaks between
        scenarios."""
        moto_api_backend.reset()

    def iot_backend(self) -> IoTBackend:
        return iot_backends[ACCOUNT_ID][self.region]

    def iotdata_backend(self) -> IoTDataPlaneBackend:
        return iotdata_backends[ACCOUNT_ID][self.region]

    def client(self, service_name: str, endpoint_url: str | None = None) -> Any:
        """A boto3 client for this server (or another loopback endpoint, e.g. iot-jobs-data).
        No retries: a loopback server that fails should fail the step at once."""
        with self._session_lock:  # boto3 sessions are not thread-safe
            return self._session.client(
                service_name,
                endpoint_url=endpoint_url or self.url,
                region_name=self.region,
                config=Config(retries={"total_max_attempts": 1}),
                **DUMMY_CREDENTIALS,
            )

"""FUOTA campaigns through the server's HTTP API: create, start, stop, show, report.

::

    otaharness fuota campaign --url https://127.0.0.1:8070 --ca server-ca.pem --token TOKEN \
        create campaign.json firmware.bin
    otaharness fuota campaign --url ... start 1 | stop 1 | delete 1 | show 1 [--watch 5] | report 1 out.png

``--url``, ``--ca`` and ``--token`` (or ``OTAHARNESS_TOKEN``) are what ``otaharness serve fuota
--json`` prints as ``fuota``, ``ca`` and ``tokens.fuota``.

``campaign.json`` holds the campaign configuration (see docs/fuota.md), devices as
``{"dev_eui": "70B3D57ED0050001", "gen_app_key": "<32 hex>", "profile": "loramac-node"}``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp

from otaharness.api_token_option import add_token_option, authorization_headers


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default="https://127.0.0.1:8070", help="FUOTA server API base URL")
    parser.add_argument("--ca", type=Path, default=None,
                        help="CA file the server's certificate must chain to (default: the "
                             "system's trust store)")
    add_token_option(parser)
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser("create", help="create a campaign from a JSON configuration and an image")
    create.add_argument("config", type=Path)
    create.add_argument("image", type=Path)
    for name, text in (("start", "start a created campaign"), ("stop", "stop a running campaign (with cleanup)"),
                       ("delete", "remove a campaign (a running one is stopped with cleanup first)")):
        actions.add_parser(name, help=text).add_argument("campaign", type=int)
    show = actions.add_parser("show", help="progress of a campaign (all campaigns without an id)")
    show.add_argument("campaign", type=int, nargs="?")
    show.add_argument("--watch", type=float, metavar="SECONDS", help="repeat until the campaign ends")
    report = actions.add_parser("report", help="write the timeline plot (PNG) and print the summary")
    report.add_argument("campaign", type=int)
    report.add_argument("png", type=Path)


def _line(status: dict[str, Any]) -> str:
    devices = ", ".join(f"{count} {name}" for name, count in status["devices"].items() if count)
    return (f"campaign {status['id']} {status['name']!r} ({status['kind']}): {status['state']}, stage "
            f"{status['stage']}, round {status['round']}, fragments {status['fragments_sent']}/"
            f"{status['fragments_total']}, devices: {devices}")


async def _call(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Any:
    async with session.request(method, url, **kwargs) as response:
        body = await response.read()
        if response.status >= 400:
            raise SystemExit(f"{method} {url}: {response.status} {body.decode(errors='replace')}")
        if response.content_type == "image/png":
            return body
        return json.loads(body) if body else None


async def run(args: argparse.Namespace) -> int:
    from otaharness.runtime.pki import client_context

    base = args.url.rstrip("/")
    trust = client_context(args.ca) if args.ca is not None else True
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust),
                                     headers=authorization_headers(args.token)) as session:
        if args.action == "create":
            document = {"config": json.loads(args.config.read_text()),
                        "image": base64.b64encode(args.image.read_bytes()).decode()}
            created = await _call(session, "POST", f"{base}/campaigns", json=document)
            print(created["id"])
        elif args.action == "delete":
            answer = await _call(session, "DELETE", f"{base}/campaigns/{args.campaign}")
            print(f"campaign {args.campaign}: " + ("removed" if answer is None else
                                                   "stopping; removed when the stop cleanup is over"))
        elif args.action in ("start", "stop"):
            await _call(session, "POST", f"{base}/campaigns/{args.campaign}/{args.action}")
            print(f"campaign {args.campaign}: {args.action} requested")
        elif args.action == "show":
            if args.campaign is None:
                for status in await _call(session, "GET", f"{base}/campaigns"):
                    print(_line(status))
                return 0
            while True:
                status = await _call(session, "GET", f"{base}/campaigns/{args.campaign}")
                print(_line(status))
                if not args.watch or status["state"] in ("finished", "stopped"):
                    break
                await asyncio.sleep(args.watch)
            for device in status["device_states"]:
                print(f"  {device['dev_eui']} {device['status']:7} {device['reason']}")
        elif args.action == "report":
            args.png.write_bytes(await _call(session, "GET", f"{base}/campaigns/{args.campaign}/report.png"))
            json.dump(await _call(session, "GET", f"{base}/campaigns/{args.campaign}/report"), sys.stdout, indent=1)
            print()
    return 0

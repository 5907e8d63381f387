"""The one way a CLI tool that calls a back-end API takes its bearer token: ``--token`` or the
``OTAHARNESS_TOKEN`` environment variable (what ``serve FLOW --json`` prints under ``"tokens"``)."""

from __future__ import annotations

import argparse
import os

TOKEN_ENVIRONMENT_VARIABLE = "OTAHARNESS_TOKEN"


def add_token_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--token", default=os.environ.get(TOKEN_ENVIRONMENT_VARIABLE),
        help=f"bearer token of the API (default: ${TOKEN_ENVIRONMENT_VARIABLE}; "
             "`serve FLOW --json` prints them under \"tokens\")")


def authorization_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}

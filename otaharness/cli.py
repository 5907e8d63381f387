"""The ``otaharness`` command: run features, serve back ends, emulate devices, list steps."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import json
import logging
import os
import signal
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from otaharness.runtime.runtime import FLOW_SERVICES, Runtime, raise_fd_limit
from otaharness.runtime.targets import load_config

# Emulator kinds for `otaharness emulate KIND`: a module with add_arguments(parser) and
# `async def run(args) -> int`, running on real time against any endpoint.
EMULATORS: dict[str, str] = {
    "aws-tracker": "emulators.aws_tracker.cli",
    "basics-station": "emulators.basics_station.cli",
    "cpe": "emulators.cpe.cli",
    "lorawan": "emulators.lorawan_cli",
    "olt-gateway": "emulators.olt_gateway.cli",
}

# Flow commands (provisioning tools and the like), `otaharness FLOW COMMAND`: same module shape.
COMMANDS: dict[str, dict[str, str]] = {
    "cups": {
        "prepare": "otaharness.provision.basics_station_prepare",
        "upgrade-firmware": "otaharness.provision.basics_station_upgrade_firmware",
    },
    "fuota": {
        "campaign": "otaharness.servers.fuota.cli",
    },
}

# Feature folders of the core flows: under CI none of their scenarios may pass by skipping.
CORE_FLOWS = ("harness", "aws_iot", "cups", "tr069", "olt", "lorawan", "fuota")

REPORTS = Path("reports")


def _available(registry: dict[str, str]) -> dict[str, str]:
    return {name: module for name, module in registry.items()
            if importlib.util.find_spec(module.rsplit(".", 1)[0]) is not None
            and importlib.util.find_spec(module) is not None}


def _userdata(pairs: list[str]) -> dict[str, str]:
    data = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"-D takes name=value, not {pair!r}")
        data[name] = value
    return data


# -- run -----------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, behave_args: list[str]) -> int:
    from behave.__main__ import main as behave_main

    junit_dir = REPORTS / "junit"
    junit_dir.mkdir(parents=True, exist_ok=True)
    for old in junit_dir.glob("*.xml"):
        old.unlink()
    argv = ["--junit", "--junit-directory", str(junit_dir), *behave_args]
    if args.capture:
        argv += ["-D", f"capture={args.capture}"]
    if args.broker:
        argv += ["-D", f"broker={args.broker}"]
    status = behave_main(argv)
    if args.fail_on_skip if args.fail_on_skip is not None else os.environ.get("CI") == "true":
        skipped = skipped_core_scenarios(junit_dir)
        if skipped:
            print("core-flow scenarios were skipped (not allowed under CI):", *skipped,
                  sep="\n  ", file=sys.stderr)
            return status or 1
    return status


def skipped_core_scenarios(junit_dir: Path) -> list[str]:
    """Scenarios of core-flow features that behave reported as skipped in its JUnit files."""
    skipped = []
    for report in sorted(junit_dir.glob("*.xml")):
        for case in ET.parse(report).getroot().iter("testcase"):
            if case.find("skipped") is None:
                continue
            # e.g. "features.harness.clock_and_broker.<feature name>"
            classname = case.get("classname", "")
            if classname.removeprefix("features.").split(".", 1)[0] in CORE_FLOWS:
                skipped.append(f"{classname}: {case.get('name')}")
    return skipped


# -- serve ---------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    unknown = [flow for flow in args.flows if flow not in FLOW_SERVICES]
    if unknown:
        raise SystemExit(f"unknown flow(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(FLOW_SERVICES))}")
    raise_fd_limit()
    settings = _userdata(args.define)
    if args.broker:
        settings["broker"] = args.broker
    config = load_config(settings)
    runtime = Runtime(config, name="serve", virtual=False)

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        for flow in ["broker", *args.flows]:
            await runtime.service(flow)
        endpoints = runtime.running_endpoints()
        for name in runtime.internal_endpoints():
            endpoints.pop(name, None)
        tokens = runtime.running_tokens()
        if args.json:
            print(json.dumps({**endpoints, **({"tokens": tokens} if tokens else {})}), flush=True)
        else:
            for name, url in endpoints.items():
                print(f"{name:20} {url}", flush=True)
            for name, token in tokens.items():
                print(f"{'token ' + name:20} {token}", flush=True)
        await stop.wait()

    try:
        runtime.loop.run_until_complete(serve())
    finally:
        leftovers = runtime.close()
        if leftovers:
            logging.warning("left running after shutdown: %s", "; ".join(leftovers))
    return 0


# -- emulate and flow commands ---------------------------------------------------------------


def _run_module(module_name: str, args: argparse.Namespace) -> int:
    raise_fd_limit()
    module = importlib.import_module(module_name)
    try:
        return asyncio.run(module.run(args)) or 0
    except KeyboardInterrupt:
        return 130


# -- steps ---------------------------------------------------------------------------------------


def cmd_steps(args: argparse.Namespace) -> int:
    from behave.step_registry import registry

    from otaharness.bdd import load_step_library

    load_step_library()
    for step_type in ("given", "when", "then", "step"):
        for matcher in registry.steps.get(step_type, []):
            doc = " ".join((matcher.func.__doc__ or "").split())
            print(f"{step_type.capitalize():5} {matcher.pattern}")
            if doc:
                print(f"      {doc}")
            where = matcher.func.__module__.rsplit(".", 1)[-1]
            print(f"      (steps/{where}.py:{matcher.func.__code__.co_firstlineno})")
    return 0


# -- parser --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otaharness", description="End-to-end test harness for remote firmware upgrades.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the features (behave) with otaharness's defaults; "
                         "JUnit XML goes to reports/junit; other arguments go to behave",
                         add_help=False)
    run.add_argument("--capture", metavar="DIR", help="write a pcap per scenario into DIR")
    run.add_argument("--broker", metavar="URL|mosquitto|amqtt",
                     help="the MQTT broker: an external mqtt://host:port, or which to spawn")
    run.add_argument("--fail-on-skip", action=argparse.BooleanOptionalAction, default=None,
                     help="fail when a core-flow scenario is skipped (default: on under CI=true)")

    serve = sub.add_parser("serve", help="start embedded back ends on loopback (real time) and "
                           "print their endpoints")
    serve.add_argument("flows", nargs="*", metavar="FLOW",
                       help=f"flows to serve: {', '.join(f for f in FLOW_SERVICES if f != 'broker')}"
                       " (the broker always runs)")
    serve.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    serve.add_argument("--broker", metavar="URL|mosquitto|amqtt",
                       help="the MQTT broker: an external mqtt://host:port, or which to spawn")
    serve.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                       help="harness setting, as with behave -D (e.g. broker=mqtt://host:1883)")

    emulate = sub.add_parser("emulate", help="run emulated devices against any endpoint "
                             "(real time)")
    kinds = emulate.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind, module in _available(EMULATORS).items():
        kind_parser = kinds.add_parser(kind, help=_summary(module))
        importlib.import_module(module).add_arguments(kind_parser)
        kind_parser.set_defaults(module=module)

    for flow, commands in COMMANDS.items():
        available = _available(commands)
        if not available:
            continue
        flow_parser = sub.add_parser(flow, help=f"{flow} tools: {', '.join(available)}")
        flow_commands = flow_parser.add_subparsers(dest="flow_command", required=True,
                                                   metavar="COMMAND")
        for name, module in available.items():
            command = flow_commands.add_parser(name, help=_summary(module))
            importlib.import_module(module).add_arguments(command)
            command.set_defaults(module=module)

    sub.add_parser("steps", help="list the step library: step text and what it does")
    return parser


def _summary(module_name: str) -> str:
    doc = importlib.import_module(module_name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        # behave captures the logs and shows them for failed scenarios (also in JUnit).
        return cmd_run(args, rest)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "steps":
        return cmd_steps(args)
    return _run_module(args.module, args)


if __name__ == "__main__":
    sys.exit(main())

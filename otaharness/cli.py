"""The ``otaharness`` command: run features, serve back ends, emulate devices, list steps."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.machinery
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from otaharness.runtime.collector import tune_for_fleets
from otaharness.runtime.gil import space_thread_switches
from otaharness.runtime.janitor import private_tempdir
from otaharness.runtime.runtime import FLOW_SERVICES, Runtime, raise_fd_limit
from otaharness.runtime.targets import ConfigError, load_config

# Emulator kinds for `otaharness emulate KIND`: a module with add_arguments(parser) and
# `async def run(args) -> int`, running on real time against any endpoint.
EMULATORS: dict[str, str] = {
    "aws-tracker": "otaharness.emulators.aws_tracker.cli",
    "basics-station": "otaharness.emulators.basics_station.cli",
    "cpe": "otaharness.emulators.cpe.cli",
    "lorawan": "otaharness.emulators.lorawan_cli",
    "olt-gateway": "otaharness.emulators.olt_gateway.cli",
}

# Flow commands (provisioning tools and the like), `otaharness FLOW COMMAND`: same module shape.
COMMANDS: dict[str, dict[str, str]] = {
    "cups": {
        "prepare": "otaharness.provision.basics_station_prepare",
        "upgrade-firmware": "otaharness.provision.basics_station_upgrade_firmware",
        "station-credentials": "otaharness.provision.basics_station_credentials",
    },
    "fuota": {
        "campaign": "otaharness.servers.fuota.cli",
    },
}

# Feature folders of the core flows: under CI none of their scenarios may pass by skipping.
CORE_FLOWS = ("harness", "aws_iot", "cups", "tr069", "olt", "lorawan", "fuota")

REPORTS = Path("reports")
# Marks an artifact folder `otaharness run` made: what is in it, the run may delete.
ARTIFACTS_MARK = ".otaharness-artifacts"


def _available(registry: dict[str, str]) -> dict[str, str]:
    """The entries whose module exists, found without importing its package (find_spec of the
    module itself would run the package's __init__, e.g. the FUOTA server's numpy and aiohttp)."""
    found = {}
    for name, module in registry.items():
        package = importlib.util.find_spec(module.rpartition(".")[0])
        locations = package.submodule_search_locations if package is not None else None
        if locations is not None and importlib.machinery.PathFinder.find_spec(
                module, locations) is not None:
            found[name] = module
    return found


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

    from otaharness.bdd import report
    from otaharness.runtime.targets import ConfigError

    capture = [arg for index, arg in enumerate(behave_args) if arg.startswith("--capture=") or (
        arg == "--capture" and index + 1 < len(behave_args)
        and not behave_args[index + 1].startswith("-"))]
    if capture:
        raise SystemExit("otaharness run: `--capture` is ambiguous: pcap files per scenario are "
                         "`--pcap DIR` (or -D capture=DIR); behave's --capture (stdout capture) is "
                         "on by default, --no-capture turns it off")
    settings = _behave_defines(behave_args)
    if args.pcap:
        settings["capture"] = args.pcap
    if args.broker:
        settings["broker"] = args.broker
    try:  # settings checked before behave starts: a misspelling is one clear line, not a hook error
        config = load_config(settings)
    except ConfigError as exc:
        raise SystemExit(f"otaharness run: {exc}") from None
    no_library = _without_step_library(behave_args)
    if no_library:
        raise SystemExit(no_library)
    _clear_artifacts(config.artifacts_dir)
    junit_dir = REPORTS / "junit"
    junit_dir.mkdir(parents=True, exist_ok=True)
    extra = [*(["-D", f"capture={args.pcap}"] if args.pcap else []),
             *(["-D", f"broker={args.broker}"] if args.broker else [])]
    # the HTML report: each behave process writes a part through our runner, merged below
    own_runner = any(arg in ("-r", "--runner") or arg.startswith("--runner=")
                     or (arg.startswith("-r") and not arg.startswith("--")) for arg in behave_args)
    if not own_runner:
        parts = report.clear_parts(REPORTS / "report-parts")
        os.environ[report.PARTS_ENV] = str(parts.resolve())  # behave processes inherit it
        extra += ["--runner", report.RUNNER]
    jobs: list = []
    try:
        if args.jobs > 1:
            from otaharness.bdd import parallel

            options, jobs = parallel.plan(behave_args, junit_dir)  # reads last run's times first
            _clear_reports(junit_dir)
            status = parallel.run([*options, *extra], jobs, args.jobs, junit_dir,
                                  REPORTS / "console")
        else:
            _clear_reports(junit_dir)
            status = behave_main(["--junit", "--junit-directory", str(junit_dir), *behave_args,
                                  *extra])
    finally:  # also when the run is interrupted: the report shows what ran
        if own_runner:
            print("no HTML report: behave's --runner is yours (the report needs "
                  f"{report.RUNNER})", file=sys.stderr)
        else:
            unreported = {job.feature: f"its process exited {job.returncode}; console output "
                          f"in {job.console}" for job in jobs}
            written = report.build_report(parts, REPORTS / report.REPORT_NAME,
                                          unreported=unreported,
                                          command=_run_command_line(args, behave_args))
            print(f"HTML report: {written.resolve()}", flush=True)
    if args.fail_on_skip if args.fail_on_skip is not None else os.environ.get("CI") == "true":
        skipped = skipped_core_scenarios(junit_dir)
        if skipped:
            print("core-flow scenarios were skipped (not allowed under CI):", *skipped,
                  sep="\n  ", file=sys.stderr)
            return status or 1
    return status


def _without_step_library(behave_args: list[str]) -> str | None:
    """What to do when behave would find no steps folder (nor environment.py) beside or above the
    first feature path, as in a new folder outside this checkout: behave's own words, `ConfigError:
    No steps directory in '…/features'`, do not say how the step library gets there."""
    from behave.configuration import Configuration

    from otaharness.bdd.parallel import split_paths

    options, paths = split_paths(behave_args)
    first = Path(paths[0] if paths else "features")
    if not first.exists():  # behave says so itself
        return None
    try:  # the folder names behave looks for (a behave.ini may rename them)
        config = Configuration(command_args=[*options, *paths], load_config=True)
        steps_dir, environment_file = config.steps_dir, config.environment_file
    except (Exception, SystemExit):  # noqa: BLE001 (behave reports its own option errors)
        return None
    base = first.resolve() if first.is_dir() else first.resolve().parent
    if any((folder / steps_dir).is_dir() or (folder / environment_file).is_file()
           for folder in (base, *base.parents)):
        return None
    return (f"otaharness run: no {steps_dir}/ folder or {environment_file} in {base} or above it, "
            "so behave would find no step. To use the step library outside this checkout add:\n"
            f"  {base / environment_file}:  from otaharness.bdd.environment import *\n"
            f"  {base / steps_dir / 'ota.py'}:  from otaharness.bdd import load_step_library; "
            "load_step_library()\n"
            "(README.md, \"Using the step library from another repository\")")


def _run_command_line(args: argparse.Namespace, behave_args: list[str]) -> str:
    ours = [*(["--jobs", str(args.jobs)] if args.jobs > 1 else []),
            *(["--pcap", args.pcap] if args.pcap else []),
            *(["--broker", args.broker] if args.broker else [])]
    return shlex.join(["otaharness", "run", *ours, *behave_args])


def _clear_artifacts(folder: Path) -> None:
    """Empty the run's artifact folder before behave starts, as pytest empties its --basetemp:
    scenario folders an earlier run left read as this run's (docs/diagnosing.md). Only what runs
    wrote is deleted: a folder marked by an earlier run, or (unmarked, as runs before the mark
    left it) one holding nothing but scenario folders. Anything else there (``-D
    artifacts_dir=features``, a folder holding the working directory) is refused, not emptied.
    The folder itself stays, so a symbolic link to it keeps pointing somewhere."""
    here, target = Path.cwd().resolve(), folder.resolve()
    if target == here or target in here.parents:
        raise SystemExit(f"otaharness run: artifacts_dir {str(folder)!r} holds the working "
                         "directory; it is emptied at every run: name a folder of its own "
                         "(default reports/artifacts)")
    if (folder.exists() or folder.is_symlink()) and not folder.is_dir():  # a link to nothing too
        raise SystemExit(f"otaharness run: artifacts_dir {str(folder)!r} is not a folder")
    entries = sorted(folder.iterdir()) if folder.is_dir() else []
    if not (folder / ARTIFACTS_MARK).is_file():
        foreign = [entry.name for entry in entries if not _is_scenario_folder(entry)]
        if foreign:
            raise SystemExit(f"otaharness run: artifacts_dir {str(folder)!r} holds {foreign[0]!r}, "
                             "which no run wrote; it is emptied at every run: name an empty "
                             "folder or one of its own (default reports/artifacts)")
    for entry in entries:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        elif entry.name != ARTIFACTS_MARK:
            entry.unlink()  # a link is removed, not what it points to
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ARTIFACTS_MARK).write_text("otaharness run empties this folder as it starts\n")


def _is_scenario_folder(entry: Path) -> bool:
    """A scenario's artifact folder: every scenario keeps its timeline.jsonl there."""
    return entry.is_dir() and not entry.is_symlink() and (entry / "timeline.jsonl").is_file()


def _clear_reports(junit_dir: Path) -> None:
    for old in junit_dir.glob("*.xml"):
        old.unlink()


def _behave_defines(behave_args: list[str]) -> dict[str, str]:
    """The -D / --define NAME=VALUE pairs among behave's arguments."""
    pairs, take_next = [], False
    for arg in behave_args:
        if take_next:
            pairs.append(arg)
            take_next = False
        elif arg in ("-D", "--define"):
            take_next = True
        elif arg.startswith("--define="):
            pairs.append(arg.removeprefix("--define="))
        elif arg.startswith("-D") and not arg.startswith("--"):
            pairs.append(arg[2:])
    return _userdata(pairs)


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
        import difflib

        closest = {flow: difflib.get_close_matches(flow, FLOW_SERVICES, n=1) for flow in unknown}
        guesses = [f"`{found[0]}` for `{flow}`" for flow, found in closest.items() if found]
        raise SystemExit(f"otaharness serve: unknown flow(s) {', '.join(unknown)}; known: "
                         f"{', '.join(sorted(FLOW_SERVICES))}"
                         + (f" (did you mean {', '.join(guesses)}?)" if guesses else ""))
    raise_fd_limit()
    # A back end serves whole fleets: its heap grows with them, and so would the cost of each
    # full collection (runtime/collector.py; serve aws-iot, 300 -> 1,500 trackers: 0.6 -> 2.1
    # CPU ms per tracker in full collections).
    tune_for_fleets()
    # A thread per HTTPS connection (moto's) beside the loop: their waits for the GIL wake every
    # switch interval (runtime/gil.py).
    space_thread_switches()
    settings = _userdata(args.define)
    if args.broker:
        settings["broker"] = args.broker
    config = load_config(settings)
    # Every temporary folder of this serve (PKI, mosquitto's) lives in one of its own, removed
    # when it stops, even by SIGKILL (runtime/janitor.py). Without --state-dir it keeps the state
    # too: two serves started in one working folder must not empty each other's databases.
    scratch, janitor = private_tempdir("otaharness-serve-")
    runtime = Runtime(config, name="serve", virtual=False, state_dir=args.state_dir,
                      tls_key_log=config.capture_dir is not None)
    if args.state_dir is None:
        runtime.artifacts = scratch

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
        janitor.close()
    return 0


# -- emulate and flow commands ---------------------------------------------------------------


def _run_module(module_name: str, args: argparse.Namespace) -> int:
    raise_fd_limit()
    module = importlib.import_module(module_name)
    try:
        return asyncio.run(module.run(args)) or 0
    except KeyboardInterrupt:
        return 130


def cmd_emulate(args: argparse.Namespace) -> int:
    """An emulator kind until its end, Ctrl-C or SIGTERM: either signal cancels it, so its fleet
    closes as at a normal end (links stopped, capture written, summary printed)."""
    raise_fd_limit()
    module = importlib.import_module(args.module)
    if not args.verbose:  # the fleet report tells what devices do (-v: each event)
        logging.getLogger("otaharness.emulators").setLevel(logging.WARNING)
    received: list[int] = []

    async def until_signalled() -> int:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        assert task is not None
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda signum=signum: (received.append(signum),
                                                                    task.cancel()))
        return await module.run(args) or 0

    try:
        return asyncio.run(until_signalled())
    except (KeyboardInterrupt, asyncio.CancelledError):
        return 128 + (received[0] if received else signal.SIGINT)


# -- steps ---------------------------------------------------------------------------------------


def cmd_steps(args: argparse.Namespace) -> int:
    from otaharness.bdd.catalogue import catalogue, format_markdown, format_text, search
    from otaharness.runtime.targets import closest

    entries = catalogue([Path(folder) for folder in args.features])
    if args.flow:
        flows = {entry.flow for entry in entries}
        wanted = args.flow.replace("-", "_")
        if wanted not in flows:
            raise SystemExit(f"no step flow {args.flow!r}{closest(wanted, flows)}; "
                             f"flows: {', '.join(sorted(flows))}")
        entries = [entry for entry in entries if entry.flow == wanted]
    if args.search:
        entries = search(entries, " ".join(args.search))
        if not entries:
            print(f"no step matches every word of {' '.join(args.search)!r}", file=sys.stderr)
            return 1
    if args.format == "json":
        print(json.dumps([entry.as_dict() for entry in entries], indent=2))
    elif args.format == "md":
        print(format_markdown(entries))
    else:
        print(format_text(entries))
    return 0


RUN_DESCRIPTION = """\
Run features with behave on otaharness's defaults: one runtime and virtual clock per scenario,
JUnit XML in reports/junit (behave's --junit and --junit-directory are set), a failed scenario's
logs in reports/artifacts/<scenario>/ with its seed for replay, and one HTML report of the run,
reports/report.html (through behave's --runner, set to otaharness.bdd.report:ReportingRunner).

Settings (otaharness.toml, overridden by -D; every name and value is checked before the run):
  -D seed=N                      replay a scenario's randomness
  -D capture=DIR                 a pcapng per scenario (also --pcap DIR)
  -D broker=URL|mosquitto|amqtt  which MQTT broker (also --broker)
  -D target.FLOW=external -D target.FLOW.KEY=VALUE   a flow's target and its settings
"""

RUN_EPILOG = """\
Every other argument goes to behave unchanged, for example:
  FEATURE/DIR ...                 feature files or folders (default: features/)
  -t/--tags EXPR, -n/--name RE    choose scenarios by tag expression or name
  -i/--include RE, -e/--exclude RE  choose feature files
  -f/--format FMT, -o/--outfile F  formatter (pretty, plain, progress, json, ...) and its output
  --dry-run, --stop, -w/--wip     list steps without running, stop at the first failure, @wip only
  --no-capture, --no-capture-log  show the output while it runs (behave captures it by default)
  -k/--no-skipped, --no-snippets  reporting
All of behave's options: python -m behave --help. behave's --capture takes no value; a folder
for pcaps is --pcap DIR.
"""


# -- parser --------------------------------------------------------------------------------------


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the command line, the emulator kinds and flow commands it does not
    name get no arguments, so their modules are not imported (about 1 s of CPU each run)."""
    words = None if argv is None else [arg for arg in argv if not arg.startswith("-")]

    def wanted(group: str, name: str, names) -> bool:
        if words is None:
            return True
        if not words or words[0] != group:
            return False
        # `group --help` or a misspelled name: every name's help is shown
        return len(words) < 2 or words[1] == name or words[1] not in names

    parser = argparse.ArgumentParser(
        prog="otaharness", description="End-to-end test harness for remote firmware upgrades.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", help="run the features (behave) with otaharness's defaults; JUnit XML goes to "
        "reports/junit; other arguments go to behave", description=RUN_DESCRIPTION,
        epilog=RUN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False)  # an abbreviation of a behave option must reach behave
    run.add_argument("--pcap", metavar="DIR", help="write a pcapng per scenario (TLS keys "
                     "embedded) into DIR; the same as -D capture=DIR")
    run.add_argument("--broker", metavar="URL|mosquitto|amqtt",
                     help="the MQTT broker: an external mqtt://host:port, or which to spawn; "
                     "the same as -D broker=...")
    run.add_argument("--fail-on-skip", action=argparse.BooleanOptionalAction, default=None,
                     help="fail when a core-flow scenario is skipped (default: on under CI=true)")
    run.add_argument("-j", "--jobs", type=_jobs_value, default=1, metavar="N|auto",
                     help="run N feature files at a time, a behave process each (auto: one per "
                     "CPU); each prints when it ends, then one merged summary. Default 1: one "
                     "behave run in this process")

    serve = sub.add_parser("serve", help="start embedded back ends on loopback (real time) and "
                           "print their endpoints")
    serve.add_argument("flows", nargs="*", metavar="FLOW",
                       help=f"flows to serve: {', '.join(f for f in FLOW_SERVICES if f != 'broker')}"
                       " (the broker always runs)")
    serve.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    serve.add_argument("--state-dir", metavar="DIR", type=Path,
                       help="keep each server's state (databases, files) in DIR/<service> and "
                       "the TLS CAs in DIR/pki across restarts, so credentials issued before "
                       "still verify (default: a temporary folder of this serve's own, removed when it "
                       "stops, and new CAs each start)")
    serve.add_argument("--broker", metavar="URL|mosquitto|amqtt",
                       help="the MQTT broker: an external mqtt://host:port, or which to spawn")
    serve.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                       help="harness setting, as with behave -D (e.g. broker=mqtt://host:1883)")

    emulate = sub.add_parser("emulate", help="run emulated devices against any endpoint "
                             "(real time)")
    kinds = emulate.add_subparsers(dest="kind", required=True, metavar="KIND")
    if words is None or words[:1] == ["emulate"]:
        for kind, module in _available(EMULATORS).items():
            if not wanted("emulate", kind, EMULATORS):
                kinds.add_parser(kind).set_defaults(module=module)
                continue
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
            if not wanted(flow, name, commands):
                flow_commands.add_parser(name).set_defaults(module=module)
                continue
            command = flow_commands.add_parser(name, help=_summary(module))
            importlib.import_module(module).add_arguments(command)
            command.set_defaults(module=module)

    # `otaharness load` runs Locust in a process of its own (gevent monkey-patches on import):
    # nothing here imports it; every argument after KIND is its own or Locust's.
    load = sub.add_parser("load", add_help=False, help="a fleet of emulated devices as a "
                          "distributed Locust load test (KIND --help for the options)")
    load.add_argument("load_args", nargs=argparse.REMAINDER, metavar="KIND ...")

    steps = sub.add_parser("steps", help="list the step library by flow: step text, what it does "
                           "and an example line from a feature that uses it")
    steps.add_argument("--flow", metavar="FLOW", help="only this flow's steps (e.g. aws_iot, common)")
    steps.add_argument("--search", nargs="+", metavar="WORD",
                       help="only steps where every word matches the step text or what it does "
                       "(uploads ~ upload), best matches first")
    steps.add_argument("--format", choices=("text", "md", "json"), default="text")
    steps.add_argument("--features", action="append", default=[], metavar="DIR",
                       help="also take example lines from the features in DIR")
    return parser


def _jobs_value(text: str) -> int:
    from otaharness.bdd.parallel import jobs_value

    return jobs_value(text)


def _summary(module_name: str) -> str:
    doc = importlib.import_module(module_name).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        # behave captures the logs and shows them for failed scenarios (also in JUnit).
        return cmd_run(args, rest)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if rest and args.command != "load":
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command == "serve":
        try:
            return cmd_serve(args)
        except ConfigError as exc:  # a misspelled setting: one line, not a traceback
            raise SystemExit(f"otaharness serve: {exc}") from None
    if args.command == "steps":
        return cmd_steps(args)
    if args.command == "emulate":
        return cmd_emulate(args)
    if args.command == "load":
        from otaharness.load.command import main as load_main

        return load_main([*args.load_args, *rest])
    return _run_module(args.module, args)


if __name__ == "__main__":
    sys.exit(main())

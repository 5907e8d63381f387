"""behave hooks: one Runtime per scenario, torn down after it and checked for leftovers.

Our repository's ``environment.py`` re-exports these; another repository's does the same::

    from otaharness.bdd.environment import *  # noqa: F401,F403
"""

from __future__ import annotations

import logging
import shutil
import sys
import time

from otaharness.runtime.runtime import Runtime, raise_fd_limit
from otaharness.runtime.targets import load_config

__all__ = ["before_all", "before_scenario", "after_scenario", "before_step", "after_all"]

log = logging.getLogger("otaharness")


def before_all(context) -> None:
    context.ota_config = load_config(dict(context.config.userdata))
    raise_fd_limit()
    _give_behave_a_real_stopwatch()


def _give_behave_a_real_stopwatch() -> None:
    """behave times steps with time.time(), which follows the scenario's virtual clock (so that
    in-process libraries stamp virtual times); its reports should show real durations."""
    import types

    import behave.model
    import behave.reporter.summary

    behave.model.time = types.SimpleNamespace(time=time.perf_counter)
    behave.reporter.summary.time_now = time.perf_counter


def before_scenario(context, scenario) -> None:
    from otaharness.runtime.docker_targets import scenario_config

    config, no_engine = scenario_config(context.ota_config, scenario.effective_tags)
    name = f"{scenario.feature.name} -- {scenario.name}"
    context.ota = Runtime(config, name=name)
    if no_engine:
        scenario.skip(no_engine)
    shutil.rmtree(context.ota.artifacts, ignore_errors=True)
    # `@embedded:<flow>` marks scenarios that need server-side control of that flow.
    for tag in scenario.effective_tags:
        flow = tag.removeprefix("embedded:")
        if flow != tag and not config.target(flow).embedded:
            scenario.skip(f"needs server-side control of {flow}, which runs against "
                          f"{'a docker' if config.target(flow).kind == 'docker' else 'an external'}"
                          " target")
    log.info("scenario %r: seed %d (replay with -D seed=%d), %s time", name, context.ota.seed,
             context.ota.seed, "virtual" if context.ota.virtual else "real")


def before_step(context, step) -> None:
    context.ota_step = step


def after_scenario(context, scenario) -> None:
    runtime: Runtime | None = getattr(context, "ota", None)
    if runtime is None:
        return
    failed = scenario.status.name in ("failed", "error")
    if failed:
        _keep_artifacts(runtime)
        print(f"\nseed {runtime.seed}: replay with -D seed={runtime.seed}; "
              f"artifacts in {runtime.artifacts}")
    leftovers = runtime.close()
    context.ota = None
    if leftovers:
        raise AssertionError("scenario left things running: " + "; ".join(leftovers))


def _keep_artifacts(runtime: Runtime) -> None:
    """Copy the logs of a failed scenario next to its report."""
    runtime.artifacts.mkdir(parents=True, exist_ok=True)
    for name, log_path in runtime.log_files().items():
        if log_path.exists():
            shutil.copy(log_path, runtime.artifacts / f"{name}.log")
            if name == "tls-keys":
                continue  # session secrets are for Wireshark, not for the report
            tail = log_path.read_text(errors="replace").splitlines()[-40:]
            print(f"--- last lines of the {name} log ---\n" + "\n".join(tail))


def after_all(context) -> None:
    """Name the library steps closest to each undefined step (behave's snippets follow)."""
    from otaharness.bdd.catalogue import did_you_mean

    runner = getattr(context, "_runner", None)
    undefined = getattr(runner, "undefined_steps", None)
    if undefined:
        # sys.__stderr__: behave may be capturing the hooks' output, and this is for the reader
        sys.__stderr__.write(did_you_mean(undefined, runner.step_registry))
        sys.__stderr__.flush()

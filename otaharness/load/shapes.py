"""``--stages "200 in 10s, 1000 in 60s"``: a fleet that ramps up in stages (a Locust shape).

Each stage reaches its device count by its end, at an even rate from the count before (so
``1000 in 60s`` after ``200 in 10s`` adds 800 devices over the next 60 seconds); after the last
stage the fleet holds its size until ``--run-time`` or ``--until-upgraded`` ends the run. Locust
uses a shape class whenever the Locust file defines one, so ``otaharness load`` imports this
module only when ``--stages`` is given (environment variable ``OTAHARNESS_LOAD_SHAPE``).
"""

from __future__ import annotations

from locust import LoadTestShape

from otaharness.load.options import parse_stages


def target_at(stages: list[tuple[int, float]], seconds: float) -> tuple[int, float]:
    """(devices, spawn rate) at ``seconds`` into the run."""
    before, start = 0, 0.0
    for users, end in stages:
        if seconds < end:
            rate = abs(users - before) / (end - start)
            return users, max(rate, 1.0)
        before, start = users, end
    return stages[-1][0], 1.0


class StagesShape(LoadTestShape):
    """The fleet size over time from ``--stages`` (read on the master's first tick)."""

    stages: list[tuple[int, float]] | None = None
    use_common_options = True  # --run-time still ends the run (Locust leaves it to shapes)

    def tick(self) -> tuple[int, float] | None:
        assert self.runner is not None
        options = self.runner.environment.parsed_options
        if self.stages is None:
            self.stages = parse_stages(options.stages)
        seconds = self.get_run_time()
        if options.run_time and seconds >= options.run_time:
            return None  # the run's end
        return target_at(self.stages, seconds)

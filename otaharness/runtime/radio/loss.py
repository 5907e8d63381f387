"""Per-link frame loss models, drawn from an injected :class:`random.Random` (the scenario seed).

A model answers ``lost(rng)`` once per frame and link. Models keep their own state (the
Gilbert-Elliott chain), so one instance set on a device makes a burst hit every link of that
device at once; set separate instances per link for independent bursts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal, Protocol

# Which frames of a device a loss model applies to (RadioMedium.set_loss).
Direction = Literal["both", "uplink", "downlink"]
DIRECTIONS: tuple[Direction, ...] = ("both", "uplink", "downlink")


class LossModel(Protocol):
    def lost(self, rng: random.Random) -> bool: ...


def _check_probability(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


@dataclass
class FixedLoss:
    """Each frame is lost independently with probability ``rate``."""

    rate: float

    def __post_init__(self) -> None:
        _check_probability("loss rate", self.rate)

    def lost(self, rng: random.Random) -> bool:
        return rng.random() < self.rate


@dataclass
class GilbertElliott:
    """Bursty loss: a two-state Markov chain (Gilbert 1960, Elliott 1963).

    Per frame the chain first moves (good → bad with ``p_good_to_bad``, bad → good with
    ``p_bad_to_good``), then the frame is lost with the loss probability of the state it is in.
    Stationary loss rate = (p_bg·loss_good + p_gb·loss_bad) / (p_gb + p_bg); the mean burst of
    bad-state frames is 1 / p_bad_to_good frames.
    """

    p_good_to_bad: float
    p_bad_to_good: float
    loss_in_good: float = 0.0
    loss_in_bad: float = 1.0
    bad: bool = field(default=False)

    def __post_init__(self) -> None:
        for name in ("p_good_to_bad", "p_bad_to_good", "loss_in_good", "loss_in_bad"):
            _check_probability(name, getattr(self, name))

    @property
    def stationary_loss_rate(self) -> float:
        total = self.p_good_to_bad + self.p_bad_to_good
        if total == 0:
            return self.loss_in_bad if self.bad else self.loss_in_good
        return (self.p_bad_to_good * self.loss_in_good + self.p_good_to_bad * self.loss_in_bad) / total

    def lost(self, rng: random.Random) -> bool:
        if self.bad:
            self.bad = rng.random() >= self.p_bad_to_good
        else:
            self.bad = rng.random() < self.p_good_to_bad
        return rng.random() < (self.loss_in_bad if self.bad else self.loss_in_good)

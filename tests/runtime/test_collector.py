"""The collector settings for fleets: full collections spaced out, young generations untouched."""

from __future__ import annotations

import gc

from otaharness.runtime.collector import FULL_COLLECTION_EVERY, tune_for_fleets


def test_full_collections_are_spaced_out_and_the_young_generations_kept() -> None:
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        assert tune_for_fleets() == (700, 10, 10)
        assert gc.get_threshold() == (700, 10, FULL_COLLECTION_EVERY)
        gc.set_threshold(500, 7, 5000)  # a process that spaced them out further keeps its choice
        tune_for_fleets()
        assert gc.get_threshold() == (500, 7, 5000)
    finally:
        gc.set_threshold(*before)

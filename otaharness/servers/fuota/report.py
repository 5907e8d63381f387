"""Per-campaign report: a summary dict and a timeline plot (PNG, matplotlib) of the stages,
the fragments sent and each device's answers and outcome."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.figure import Figure

from .campaign import Stage
from .store import CampaignStore

STAGE_COLOURS = {1: "#4c72b0", 2: "#8172b2", 3: "#55a868", 4: "#64b5cd", 5: "#c44e52", 6: "#dd8452", 7: "#937860"}


def summary(store: CampaignStore, campaign_id: int) -> dict[str, Any]:
    """Stage intervals (seconds from creation), fragments, per-device outcome."""
    record = store.get(campaign_id)
    origin = record.created_at
    stages: list[dict[str, Any]] = []
    open_stages: dict[tuple[int, int], float] = {}
    for event in store.events(campaign_id, "stage"):
        key = (event.detail["stage"], event.detail["round"])
        if event.detail["event"] == "start":
            open_stages[key] = event.at
        elif key in open_stages:
            stages.append({"stage": key[0], "name": Stage(key[0]).name, "round": key[1],
                           "start": open_stages.pop(key) - origin, "end": event.at - origin})
    end = max([e.at for e in store.events(campaign_id)], default=origin) - origin
    for (stage, round_), start in open_stages.items():  # interrupted
        stages.append({"stage": stage, "name": Stage(stage).name, "round": round_, "start": start - origin,
                       "end": end})
    fragments = [{"at": e.at - origin, **e.detail} for e in store.events(campaign_id, "fragment")]
    devices = [{"dev_eui": f"{d.dev_eui:016X}", "status": d.status.value, "reason": d.reason,
                "answers_at": sorted(at - origin for at in d.done.values())} for d in store.devices(campaign_id)]
    return {"id": campaign_id, "name": record.config.name, "state": record.state.value, "duration_s": end,
            "stages": sorted(stages, key=lambda s: s["start"]), "fragments": fragments, "devices": devices}


def timeline_png(data: dict[str, Any]) -> bytes:
    """The plot of a :func:`summary` (pure: may run in an executor thread)."""
    devices = data["devices"]
    figure = Figure(figsize=(11, 2.5 + 0.25 * min(len(devices), 40)))
    axes = figure.subplots()
    for stage in data["stages"]:
        axes.barh(0, stage["end"] - stage["start"], left=stage["start"], height=0.8,
                  color=STAGE_COLOURS[stage["stage"]], edgecolor="black", linewidth=0.3)
        axes.text((stage["start"] + stage["end"]) / 2, 0, f"{stage['stage']}", ha="center", va="center",
                  fontsize=7, color="white")
    fragment_times = [f["at"] for f in data["fragments"]]
    axes.vlines(fragment_times, 0.6, 1.4, color="#c44e52", linewidth=0.4)
    shown = devices[:40]  # a readable plot; the summary has all of them
    for row, device in enumerate(shown, start=2):
        colour = {"passed": "#55a868", "failed": "#c44e52"}.get(device["status"], "#999999")
        axes.plot(device["answers_at"], [row] * len(device["answers_at"]), "|", color="black", markersize=6)
        axes.plot([data["duration_s"]], [row], "o", color=colour, markersize=5)
    axes.set_yticks([0, 1] + list(range(2, len(shown) + 2)),
                    ["stages", "fragments"] + [d["dev_eui"][-6:] for d in shown], fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the campaign was created")
    axes.set_title(f"FUOTA campaign {data['id']} {data['name']!r}: {data['state']}, "
                   f"{sum(d['status'] == 'passed' for d in devices)}/{len(devices)} passed", fontsize=9,
                   parse_math=False)  # the name is the client's: "$...$" is text, not mathtext
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()

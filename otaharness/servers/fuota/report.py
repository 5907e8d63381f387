"""Campaign reports: what a campaign did, as data (:func:`campaign_report`) and as a timeline plot
(:func:`campaign_plot`, matplotlib): its stages by name, the fragments sent, each device's answers,
its fragment losses per round (what its FragSessionStatusAns counted against what went out) and
its outcome with the reason of a failure.

The HTTP API serves them (``/campaigns/{id}/report``, ``/report.png``); the run's HTML report
includes every campaign a FUOTA scenario left in its artifacts (:func:`stored_campaign_reports`),
its devices labelled by their names in the scenario.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from .campaign import CorruptCampaign, Stage
from .store import CampaignStore

STAGE_COLOURS = {1: "#4c72b0", 2: "#8172b2", 3: "#55a868", 4: "#64b5cd", 5: "#c44e52", 6: "#dd8452", 7: "#937860"}
OUTCOME_COLOURS = {"passed": "#55a868", "failed": "#c44e52"}
DEVICES_PLOTTED = 40  # a readable plot; the report's data has every device
DATABASE_NAME = "fuota.sqlite"  # in the service's data folder (service.py)


def campaign_report(store: CampaignStore, campaign_id: int,
                    device_names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Stage intervals (seconds from the campaign's creation), fragments sent, and per device
    (``label``: its name from ``device_names`` — DevEUI as 16 hex digits to name — else its DevEUI)
    its outcome, failure reason, answer times, refused input and fragment losses per round."""
    names = {dev_eui.upper(): name for dev_eui, name in (device_names or {}).items()}
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
    sent_per_round: dict[int, int] = {}
    for fragment in fragments:
        sent_per_round[fragment.get("round", 1)] = sent_per_round.get(fragment.get("round", 1), 0) + 1
    losses: dict[str, list[dict[str, Any]]] = {}
    rejected: dict[str, list[str]] = {}
    round_of: dict[str, int] = {}
    for event in store.events(campaign_id):
        if event.dev_eui is None:
            continue
        dev_eui = f"{event.dev_eui:016X}"
        if event.kind == "request":  # the round an answer belongs to: its request's
            round_of[dev_eui] = event.detail.get("round", 1)
        elif event.kind == "answer" and event.detail.get("command") == "FragSessionStatusAns":
            round_ = round_of.get(dev_eui, 1)
            received = event.detail.get("nb_frag_received")
            sent = sent_per_round.get(round_, 0)
            losses.setdefault(dev_eui, []).append({
                "round": round_, "sent": sent, "received": received,
                "lost": max(sent - received, 0) if isinstance(received, int) else None,
                "missing": event.detail.get("missing_frag")})
        elif event.kind == "rejected":
            rejected.setdefault(dev_eui, []).append(str(event.detail.get("reason", "")))
    devices = []
    for device in store.devices(campaign_id):
        dev_eui = f"{device.dev_eui:016X}"
        devices.append({"dev_eui": dev_eui, "label": names.get(dev_eui, dev_eui), "status": device.status.value,
                        "reason": device.reason, "answers_at": sorted(at - origin for at in device.done.values()),
                        "losses": losses.get(dev_eui, []), "rejected": rejected.get(dev_eui, [])})
    notes = [{"at": e.at - origin, "text": str(e.detail.get("text", ""))} for e in store.events(campaign_id, "note")]
    return {"id": campaign_id, "name": record.config.name, "state": record.state.value, "duration_s": end,
            "stages": sorted(stages, key=lambda s: s["start"]), "fragments": fragments, "devices": devices,
            "notes": notes}


def stored_campaign_reports(data_dir: Path, device_names: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The report of every campaign in a FUOTA service's data folder (a scenario's
    ``<artifacts>/fuota``), oldest first; none when it holds no database. A campaign whose rows
    cannot be read back is reported with its ``error``."""
    database = Path(data_dir) / DATABASE_NAME
    if not database.is_file():
        return []
    store = CampaignStore(database)
    try:
        reports = []
        for campaign_id in store.ids():
            try:
                reports.append(campaign_report(store, campaign_id, device_names))
            except (CorruptCampaign, KeyError, TypeError, ValueError) as error:
                reports.append({"id": campaign_id, "error": f"stored rows cannot be read: {error}"})
        return reports
    finally:
        store.close()


def campaign_plot(report: Mapping[str, Any], image_format: str = "png") -> bytes:
    """The timeline of a :func:`campaign_report` as PNG or SVG bytes: a row of stages (by name,
    per round), the fragments sent, then a row per device with its answers (ticks), its outcome at
    the end (green passed, red failed, grey unfinished), fragments lost and the failure reason.
    Pure: may run in an executor thread."""
    devices = list(report["devices"])
    shown = devices[:DEVICES_PLOTTED]
    height = 3.0 + 0.32 * len(shown)
    figure = Figure(figsize=(11, height))
    axes = figure.subplots()
    duration = max(float(report["duration_s"]), 1.0)
    for stage in report["stages"]:
        width = stage["end"] - stage["start"]
        axes.barh(0, width, left=stage["start"], height=0.8, color=STAGE_COLOURS.get(stage["stage"], "#999999"),
                  edgecolor="black", linewidth=0.3)
        label = stage["name"] + (f" {stage['round']}" if stage.get("round", 1) > 1 else "")
        if width >= duration * len(label) / 150:  # the name where it fits; the legend names them all
            axes.text(stage["start"] + width / 2, 0, label, ha="center", va="center", fontsize=6, color="white")
    legend = [Patch(color=STAGE_COLOURS[stage], label=f"{int(stage)} {stage.name}")
              for stage in Stage if any(s["stage"] == stage for s in report["stages"])]
    if legend:
        figure.legend(handles=legend, loc="lower left", ncol=4, fontsize=7, frameon=False,
                      bbox_to_anchor=(0.12, 0.0))
    axes.vlines([f["at"] for f in report["fragments"]], 0.6, 1.4, color="#c44e52", linewidth=0.5)
    for row, device in enumerate(shown, start=2):
        colour = OUTCOME_COLOURS.get(device["status"], "#999999")
        axes.plot(device["answers_at"], [row] * len(device["answers_at"]), "|", color="black", markersize=7)
        axes.plot([report["duration_s"]], [row], "o", color=colour, markersize=6)
        axes.annotate(_device_note(device), (report["duration_s"], row), xytext=(8, 0), textcoords="offset points",
                      va="center", ha="left", fontsize=7, annotation_clip=False, parse_math=False,
                      color=colour if device["status"] == "failed" else "black")
    labels = ["stages", "fragments sent"] + [device.get("label", device["dev_eui"]) for device in shown]
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_ylim(len(labels) - 0.4, -1.4)
    axes.set_xlim(-duration * 0.01, duration * 1.02)
    axes.set_xlabel("seconds since the campaign was created"
                    + (f"; {len(devices) - len(shown)} more devices in the report's data" if len(devices) > len(shown)
                       else ""))
    axes.set_title(f"FUOTA campaign {report['id']} {report['name']!r}: {report['state']}, "
                   f"{sum(d['status'] == 'passed' for d in devices)}/{len(devices)} passed", fontsize=9,
                   parse_math=False)  # the name is the client's: "$...$" is text, not mathtext
    # the right part holds the devices' notes, the bottom inch the axis label and the stage legend
    figure.subplots_adjust(left=0.12, right=0.62, top=1 - 0.4 / height, bottom=1.1 / height)
    buffer = io.BytesIO()
    # an SVG keeps its text as text: smaller, and searchable where the report shows it
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format=image_format, dpi=100, metadata=_no_date(image_format))
    return buffer.getvalue()


def _device_note(device: Mapping[str, Any]) -> str:
    """What the plot says at the end of a device's row: outcome, losses per round, reason."""
    parts = [device["status"]]
    for loss in device.get("losses", []):
        if loss.get("lost") is not None:
            parts.append(f"round {loss['round']}: lost {loss['lost']} of {loss['sent']} fragments")
    if device.get("reason"):
        parts.append(device["reason"])
    parts += [f"refused: {reason}" for reason in device.get("rejected", [])[:2]]
    text = "; ".join(parts)
    return text if len(text) <= 110 else text[:107] + "..."


def _no_date(image_format: str) -> dict[str, Any]:
    # the same report gives the same bytes (an SVG or PNG otherwise carries its creation date)
    return {"Date": None} if image_format == "svg" else {}

"""Draw docs/fleet-scaling.png: wall time, CPU time and peak RSS against fleet size, per flow.

Run from the repository root after the fleet benchmarks: python -m benchmarks.plot_fleet_scaling
[--out docs/fleet-scaling.png]

Reads benchmarks/results/*.json as the benchmarks write them (bench_tr069 -> tr069_fleet.json,
bench_aws_trackers -> aws_fleet.json, bench_cups -> cups_fleet.json, and the class C multicast
run's multicast_fleet.json when present; aws_fleet_closing_connections.json is the AWS flow before
moto's S3 kept connections alive, the baseline of that change, and
aws_fleet_before_host_cache.json the AWS flow before moto remembered each host's backend;
aws_fleet_served.json, bench_aws_trackers --backend served, is the trackers' process with
`serve aws-iot` in its own: its CPU is both processes', its RSS the trackers'): per fleet size
``devices``, ``wall_s``, ``peak_rss_mib`` and, where measured, ``cpu_s``. Logarithmic axes, with dotted lines of slope one through each
flow's smallest fleet: a flow whose cost is linear in devices runs parallel to its line, a
superlinear one bends above it; and CPU time per device, flat when the cost is linear.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

RESULTS = Path(__file__).resolve().parent / "results"
FLOWS = {  # results file -> label in the legend
    "tr069_fleet": "TR-069 batch upgrade (CPEs)",
    "aws_fleet": "AWS IoT FOTA job, mutual TLS (trackers)",
    "aws_fleet_closing_connections": "AWS IoT, before S3 kept connections alive",
    "aws_fleet_before_host_cache": "AWS IoT, before moto remembered each host's backend",
    "aws_fleet_served": "AWS IoT, back end in its own process (CPU: both)",
    "cups_fleet": "CUPS signed upgrade (Basics Stations)",
    "multicast_fleet": "LoRaWAN class C multicast (devices)",
}
PANELS = (("wall_s", "wall time of the whole run (s)"),
          ("cpu_s", "CPU time of the process (s)"),
          ("cpu_ms_per_device", "CPU time per device (ms; flat = linear)"),
          ("peak_rss_mib", "peak resident set (MiB)"))
PER_DEVICE = {"cpu_ms_per_device": "cpu_s"}  # panels of a figure divided by the fleet size


def value(run: dict[str, Any], key: str) -> float | None:
    if key in PER_DEVICE:
        total = run.get(PER_DEVICE[key])
        return None if total is None else 1000 * total / run["devices"]
    return run.get(key)


def entries(document: Any) -> list[dict[str, Any]]:
    """Per-size figures from a results file: {"results": [...]}, a list, or {size: figures}."""
    if isinstance(document, dict) and "results" in document:
        document = document["results"]
    if isinstance(document, dict):
        document = [{"devices": int(size), **figures} for size, figures in document.items()]
    return sorted((both_processes(entry) for entry in document if "devices" in entry),
                  key=lambda e: e["devices"])


def both_processes(entry: dict[str, Any]) -> dict[str, Any]:
    """A served run's figures as one flow's: CPU of the trackers' process and the back end's,
    the trackers' peak RSS (the back end's is its own row of the README)."""
    if entry.get("backend") != "served":
        return entry
    return {**entry, "cpu_s": entry["fleet_cpu_s"] + entry["serve_cpu_s"],
            "peak_rss_mib": entry["fleet_peak_rss_mib"]}


def load(results_dir: Path) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for name in FLOWS:
        path = results_dir / f"{name}.json"
        if path.exists():
            found[name] = entries(json.loads(path.read_text()))
    return found


def plot(flows: dict[str, list[dict[str, Any]]], out: Path) -> None:
    figure, axes = plt.subplots(1, len(PANELS), figsize=(20, 5))
    for axis, (key, label) in zip(axes, PANELS):
        for index, (name, runs) in enumerate(flows.items()):
            points = [(run["devices"], value(run, key)) for run in runs if value(run, key) is not None]
            if not points:
                continue
            colour = f"C{index}"
            sizes, values = zip(*points)
            axis.plot(sizes, values, "o-", color=colour, label=FLOWS[name])
            first_size, first_value = points[0]
            if len(points) > 1 and key not in PER_DEVICE:  # linear in devices from the smallest fleet
                axis.plot([first_size, sizes[-1]], [first_value, first_value * sizes[-1] / first_size],
                          ":", color=colour, linewidth=1)
        axis.set_xscale("log")
        axis.set_yscale("linear" if key in PER_DEVICE else "log")
        if key in PER_DEVICE:
            axis.set_ylim(bottom=0)
        axis.set_xlabel("devices in one process")
        axis.set_ylabel(label)
        axis.grid(True, which="both", linewidth=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    stamps = sorted({run.get("measured", "")[:10] for runs in flows.values() for run in runs} - {""})
    figure.suptitle("Fleet cost against fleet size (dotted: linear from the smallest fleet); "
                    f"measured {', '.join(stamps) or 'on unknown dates'} on a shared 2-core machine")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=Path("docs/fleet-scaling.png"))
    arguments = parser.parse_args()
    flows = load(arguments.results)
    if not flows:
        raise SystemExit(f"no fleet results in {arguments.results}: run the fleet benchmarks first")
    plot(flows, arguments.out)
    print(f"wrote {arguments.out} ({', '.join(f'{name}: {len(runs)} sizes' for name, runs in flows.items())})")


if __name__ == "__main__":
    main()

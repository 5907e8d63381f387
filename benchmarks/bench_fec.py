"""Throughput of the TS004 FEC: M = 1,200 fragments of 219 octets (about 256 KiB), 360 coded, 10 % loss.

Run from the repository root: python -m benchmarks.bench_fec [--runs N] [--redundancy R] [--loss P]
[--fragments M] [--frag-size F]
Each run encodes a random image, drops fragments independently with probability P, feeds the
rest in order to the online decoder and checks the rebuilt image byte for byte. The decoder starts
cold each run: the parity rows it shares across sessions (`fec.clear_caches`) are forgotten first,
so it makes every row it uses, as a device's decoder does.

Baseline, in the same run on the same image: a plain numpy XOR of the same data volume -- R
XOR-reductions, each over a random half of the M fragments (a TS004 parity line sets half of
them on average), which is the encoder's arithmetic without the parity-line generator. Reported:
encode and decode medians in ms and MB/s, and each as a multiple of the baseline (encode_per_xor,
decode_per_xor), which travel between machines.

Against LoRaMac-node's FragDecoder (C): see the README's Performance section for how that was
measured side by side (not part of this repository: nothing of FragDecoder is committed).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from benchmarks.measure import Figures, Stopwatch, report
from otaharness.protocols.fuota.fec import DecoderState, FragmentDecoder, clear_caches, encode_block


def plain_xor(rng: np.random.Generator, uncoded: np.ndarray, rows: int) -> np.ndarray:
    """``rows`` XOR-reductions of a random half of ``uncoded``'s fragments."""
    masks = rng.random((rows, uncoded.shape[0])) < 0.5
    return np.stack([np.bitwise_xor.reduce(uncoded[mask], axis=0) for mask in masks])


def run_once(rng: np.random.Generator, nb_frag: int, frag_size: int, redundancy: int, loss: float) -> dict[str, float]:
    image = rng.integers(0, 256, nb_frag * frag_size - 7, dtype=np.uint8).tobytes()
    with Stopwatch() as encoding:
        block = encode_block(image, frag_size, redundancy)
    uncoded = np.frombuffer(image + bytes(block.padding), dtype=np.uint8).reshape(nb_frag, frag_size)
    with Stopwatch() as baseline:
        plain_xor(rng, uncoded, redundancy)
    lost = rng.random(len(block.fragments)) < loss
    clear_caches()
    decoder = FragmentDecoder(block.nb_frag, frag_size, block.padding)
    peak_pivots = 0
    pushed = 0
    with Stopwatch() as decoding:
        for n, fragment in enumerate(block.fragments, start=1):
            if lost[n - 1]:
                continue
            pushed += 1
            state = decoder.push(n, fragment)
            peak_pivots = max(peak_pivots, decoder.pivots)
            if state is DecoderState.COMPLETE:
                break
    ok = decoder.state is DecoderState.COMPLETE and decoder.block() == image
    return {
        "encode_s": encoding.seconds,
        "decode_s": decoding.seconds,
        "xor_s": baseline.seconds,
        "encode_cpu_s": encoding.cpu_seconds,
        "decode_cpu_s": decoding.cpu_seconds,
        "xor_cpu_s": baseline.cpu_seconds,
        "uncoded_lost": float(lost[: block.nb_frag].sum()),
        "fragments_used": float(pushed),
        "peak_pivots": float(peak_pivots),
        "ok": float(ok),
    }


def summary(arguments: argparse.Namespace, results: list[dict[str, float]]) -> Figures:
    block_octets = arguments.fragments * arguments.frag_size
    encode = statistics.median(r["encode_s"] for r in results)
    decode = statistics.median(r["decode_s"] for r in results)
    xor = statistics.median(r["xor_s"] for r in results)
    # CPU seconds of the process too: on a machine shared with other work they are the steadier figure
    encode_cpu, decode_cpu, xor_cpu = (statistics.median(r[key] for r in results)
                                       for key in ("encode_cpu_s", "decode_cpu_s", "xor_cpu_s"))
    return {"fragments": arguments.fragments, "frag_size": arguments.frag_size,
            "redundancy": arguments.redundancy, "loss": arguments.loss, "runs": len(results),
            "encode_ms": encode * 1e3, "decode_ms": decode * 1e3, "xor_ms": xor * 1e3,
            "encode_mb_per_s": block_octets / encode / 1e6, "decode_mb_per_s": block_octets / decode / 1e6,
            "encode_per_xor": encode / xor, "decode_per_xor": decode / xor,
            "encode_cpu_ms": encode_cpu * 1e3, "decode_cpu_ms": decode_cpu * 1e3, "xor_cpu_ms": xor_cpu * 1e3,
            "encode_per_xor_cpu": encode_cpu / xor_cpu, "decode_per_xor_cpu": decode_cpu / xor_cpu,
            "all_rebuilt": all(r["ok"] for r in results)}


def describe(figures: Figures, results: list[dict[str, float]]) -> str:
    lines = [
        f"M={figures['fragments']} FragSize={figures['frag_size']} redundancy={figures['redundancy']} "
        f"loss={figures['loss']:.0%} runs={figures['runs']}",
        f"encode  median {figures['encode_ms']:7.1f} ms  ({figures['encode_mb_per_s']:6.2f} MB/s, "
        f"{figures['encode_per_xor']:.1f} x plain XOR)",
        f"decode  median {figures['decode_ms']:7.1f} ms  ({figures['decode_mb_per_s']:6.2f} MB/s, "
        f"{figures['decode_per_xor']:.1f} x plain XOR)",
        f"plain numpy XOR of the same volume: median {figures['xor_ms']:7.1f} ms",
        f"in CPU time: encode {figures['encode_cpu_ms']:.1f} ms ({figures['encode_per_xor_cpu']:.2f} x XOR), "
        f"decode {figures['decode_cpu_ms']:.1f} ms ({figures['decode_per_xor_cpu']:.2f} x XOR), "
        f"XOR {figures['xor_cpu_ms']:.1f} ms",
    ]
    lines += [f"  run {index}: uncoded lost {r['uncoded_lost']:.0f}, fragments used {r['fragments_used']:.0f}, "
              f"peak pivots {r['peak_pivots']:.0f}, image {'OK' if r['ok'] else 'NOT REBUILT'}"
              for index, r in enumerate(results, start=1)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragments", type=int, default=1200)
    parser.add_argument("--frag-size", type=int, default=219)
    parser.add_argument("--redundancy", type=int, default=360)
    parser.add_argument("--loss", type=float, default=0.10)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    rng = np.random.default_rng(20240501)
    results = [
        run_once(rng, arguments.fragments, arguments.frag_size, arguments.redundancy, arguments.loss)
        for _ in range(arguments.runs)
    ]
    figures = summary(arguments, results)
    report("bench_fec", figures, describe(figures, results))
    if not figures["all_rebuilt"]:
        raise SystemExit("some runs did not rebuild the image")


if __name__ == "__main__":
    main()

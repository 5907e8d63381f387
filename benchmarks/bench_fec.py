"""Throughput of the TS004 FEC: M = 1,000 fragments of 50 octets, 10 % random loss.

Run from the repository root: python -m benchmarks.bench_fec [--runs N] [--redundancy R] [--loss P]
Each run encodes a random image, drops fragments independently with probability P, feeds the
rest in order to the online decoder and checks the rebuilt image byte for byte.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from otaharness.protocols.fuota.fec import DecoderState, FragmentDecoder, encode_block


def run_once(rng: np.random.Generator, nb_frag: int, frag_size: int, redundancy: int, loss: float) -> dict[str, float]:
    image = rng.integers(0, 256, nb_frag * frag_size - 7, dtype=np.uint8).tobytes()
    started = time.perf_counter()
    block = encode_block(image, frag_size, redundancy)
    encoded = time.perf_counter()
    lost = rng.random(len(block.fragments)) < loss
    decoder = FragmentDecoder(block.nb_frag, frag_size, block.padding)
    peak_pivots = 0
    pushed = 0
    for n, fragment in enumerate(block.fragments, start=1):
        if lost[n - 1]:
            continue
        pushed += 1
        state = decoder.push(n, fragment)
        peak_pivots = max(peak_pivots, decoder.pivots)
        if state is DecoderState.COMPLETE:
            break
    decoded = time.perf_counter()
    ok = decoder.state is DecoderState.COMPLETE and decoder.block() == image
    return {
        "encode_s": encoded - started,
        "decode_s": decoded - encoded,
        "uncoded_lost": float(lost[: block.nb_frag].sum()),
        "fragments_used": float(pushed),
        "peak_pivots": float(peak_pivots),
        "ok": float(ok),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fragments", type=int, default=1000)
    parser.add_argument("--frag-size", type=int, default=50)
    parser.add_argument("--redundancy", type=int, default=200)
    parser.add_argument("--loss", type=float, default=0.10)
    parser.add_argument("--runs", type=int, default=5)
    arguments = parser.parse_args()
    rng = np.random.default_rng(20240501)
    results = [
        run_once(rng, arguments.fragments, arguments.frag_size, arguments.redundancy, arguments.loss)
        for _ in range(arguments.runs)
    ]
    block_octets = arguments.fragments * arguments.frag_size
    encode = statistics.median(r["encode_s"] for r in results)
    decode = statistics.median(r["decode_s"] for r in results)
    print(
        f"M={arguments.fragments} FragSize={arguments.frag_size} redundancy={arguments.redundancy} "
        f"loss={arguments.loss:.0%} runs={arguments.runs}"
    )
    print(f"encode  median {encode * 1e3:7.1f} ms  ({block_octets / encode / 1e6:6.2f} MB/s)")
    print(f"decode  median {decode * 1e3:7.1f} ms  ({block_octets / decode / 1e6:6.2f} MB/s)")
    for index, r in enumerate(results, start=1):
        print(
            f"  run {index}: uncoded lost {r['uncoded_lost']:.0f}, fragments used {r['fragments_used']:.0f}, "
            f"peak pivots {r['peak_pivots']:.0f}, image {'OK' if r['ok'] else 'NOT REBUILT'}"
        )
    if not all(r["ok"] for r in results):
        raise SystemExit("some runs did not rebuild the image")


if __name__ == "__main__":
    main()

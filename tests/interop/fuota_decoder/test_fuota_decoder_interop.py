"""TS004 decoder interop: the DataFragment stream our FUOTA server sends in a campaign with FEC,
as a device that lost some fragments heard it, must rebuild the image with a decoder written by
others (e.g. LoRaMac-node's FragDecoder.c, in C).

The test runs the campaign and writes the stream to ``$FUOTA_FRAGMENT_STREAM`` (else a temporary
file), in the text format docs/fuota.md describes, for any reference decoder to be fed with. No
third-party decoder, nor a recipe to build one, is part of this repository.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuota"))  # the FUOTA test world

from fuota_world import FuotaWorld, image, run_world  # noqa: E402

from otaharness.protocols.fuota import fragmentation as ts004  # noqa: E402
from otaharness.servers.fuota import DeviceStatus  # noqa: E402

IMAGE_BODY_SIZE = 3000


def export_stream(tmp_path: Path, target: Path) -> tuple[int, int, list[int]]:
    """Run a campaign with FEC in which device "a" loses 25 % of the fragments; write what it
    heard. Returns (NbFrag, fragments sent, the N heard)."""
    async def main(world: FuotaWorld) -> tuple[int, int, list[int]]:
        world.add_device("a")
        sent_image = image(IMAGE_BODY_SIZE)
        campaign = world.fuota.create_campaign(world.config(redundancy=1.0, max_rounds=1), sent_image)
        world.fuota.start_campaign(campaign)
        world.lossy_during_fragments(campaign, "a", 0.25)
        await world.finish(campaign)
        block = world.fuota.runs[campaign].block()
        assert world.device_state(campaign, "a").status is DeviceStatus.PASSED  # our own decoder managed
        heard = [c for _, c, multicast in world.agents["a"].received
                 if multicast and isinstance(c, ts004.DataFragment)]
        lines = [f"nb_frag {block.nb_frag}", f"frag_size {block.frag_size}", f"image_size {len(sent_image)}",
                 f"image {sent_image.hex()}"]
        lines += [f"fragment {c.n} {c.payload.hex()}" for c in heard]
        target.write_text("\n".join(lines) + "\n")
        return block.nb_frag, len(block.fragments), [c.n for c in heard]
    return run_world(tmp_path, main)


def stream_path(tmp_path: Path) -> Path:
    return Path(os.environ.get("FUOTA_FRAGMENT_STREAM", tmp_path / "fragment-stream.txt"))


def test_export_of_a_lossy_fragment_stream_with_fec(tmp_path: Path) -> None:
    target = stream_path(tmp_path)
    nb_frag, total, heard = export_stream(tmp_path, target)
    uncoded_heard = [n for n in heard if n <= nb_frag]
    assert len(uncoded_heard) < nb_frag, "no uncoded fragment lost: nothing for the decoder to rebuild"
    assert len(heard) >= nb_frag and heard == sorted(heard) and max(heard) <= total
    text = target.read_text().splitlines()
    assert text[0] == f"nb_frag {nb_frag}" and sum(line.startswith("fragment ") for line in text) == len(heard)

"""TS004 decoder interop: the DataFragment stream our FUOTA server sends in a campaign with FEC,
as a device that lost some fragments heard it, must rebuild the image with a decoder written by
others (LoRaMac-node's FragDecoder.c, C).

``test_export_…`` runs the campaign and writes the stream (``fragment-stream.txt`` in the test's
directory, or ``$FUOTA_FRAGMENT_STREAM``). ``test_reference_…`` builds LoRaMac-node's decoder with
our harness (``fragdecoder_harness.c``) and feeds it the stream — only when ``LORAMAC_NODE_DIR``
points at a local checkout and a C compiler is found: nothing is downloaded, and LoRaMac-node's
code is not in this repository. ``run_reference_decoder.sh`` does the same by hand.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "fuota"))  # the FUOTA test world

from fuota_world import FuotaWorld, image, run_world  # noqa: E402

from otaharness.protocols.fuota import fragmentation as ts004  # noqa: E402
from otaharness.servers.fuota import DeviceStatus  # noqa: E402

HERE = Path(__file__).resolve().parent
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


@pytest.mark.interop
def test_reference_decoder_rebuilds_the_image(tmp_path: Path) -> None:
    checkout = os.environ.get("LORAMAC_NODE_DIR")
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if not checkout or compiler is None:
        pytest.skip("set LORAMAC_NODE_DIR to a LoRaMac-node checkout (and have a C compiler) to run it")
    stream = tmp_path / "fragment-stream.txt"
    export_stream(tmp_path, stream)
    image_size = int(stream.read_text().splitlines()[2].split()[1])
    result = subprocess.run(["sh", str(HERE / "run_reference_decoder.sh"), checkout, str(stream)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"REBUILT: {image_size} octets equal to the image" in result.stdout, result.stdout

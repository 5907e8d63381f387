"""TS004 FEC: parity matrix, encoder and online decoder.

Vectors from the fact sheet §2 (M = 4 worked example, rows for M = 8/10/26, brocaar
encode_test.go, LoRaMac-node observations); properties checked against a GF(2) rank oracle
written independently below with Python integers as bit sets.
"""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otaharness.protocols.fuota import FRAGMENTATION, FuotaCodecError
from otaharness.protocols.fuota.fec import (
    LORAMAC_NODE_PROFILE,
    MAX_N,
    DecoderProfile,
    SPECIFICATION_PROFILE,
    DecoderState,
    FecError,
    FragmentDecoder,
    encode_block,
    matrix_line,
    padding_for,
    prbs23,
)
from otaharness.protocols.fuota.fragmentation import FragSessionSetupReq, FragSessionStatusAns, data_fragments

M4_UNCODED = bytes.fromhex("01020304" "10203040" "0a0b0c0d" "a0b0c0d0")


def literal_matrix_line(n: int, nb_frag: int) -> set[int]:
    """The annex pseudo-code step by step: the oracle for the vectorised generator."""
    modulus = nb_frag + (1 if nb_frag & (nb_frag - 1) == 0 else 0)
    x = 1 + 1001 * n
    ones: set[int] = set()
    for _ in range(nb_frag // 2):
        r = nb_frag
        while r >= nb_frag:
            x = prbs23(x)
            r = x % modulus
        ones.add(r)
    return ones


def ones(n: int, nb_frag: int) -> set[int]:
    return set(np.flatnonzero(matrix_line(n, nb_frag)).tolist())


def gf2_rank(rows: list[int]) -> int:
    """Rank over GF(2) of bit-set rows (independent of the decoder's code)."""
    basis: dict[int, int] = {}
    for row in rows:
        while row:
            top = row.bit_length() - 1
            if top not in basis:
                basis[top] = row
                break
            row ^= basis[top]
    return len(basis)


def equation(n: int, nb_frag: int) -> int:
    if n <= nb_frag:
        return 1 << (n - 1)
    return sum(1 << i for i in literal_matrix_line(n - nb_frag, nb_frag))


# --------------------------------------------------------------------------- parity matrix


def test_prbs23_first_steps_of_the_worked_example() -> None:
    assert prbs23(1002) == 4194805
    assert prbs23(4194805) == 2097402


@pytest.mark.parametrize(
    ("nb_frag", "rows"),
    [
        (4, [{0, 2}, {0, 2}, {1, 3}, {1, 2}, {0, 3}, {1, 3}]),
        (10, [{2, 5}, {0, 2, 4, 5, 9}, {1, 3, 5, 6, 7}, {0, 1, 2, 4}]),
        (8, [{0, 1, 4, 6}, {0, 4, 7}]),
        (26, [{0, 1, 3, 6, 7, 8, 12, 13, 16, 17, 21, 23, 24}]),
    ],
)
def test_matrix_rows_from_the_sheet(nb_frag: int, rows: list[set[int]]) -> None:
    assert [ones(n, nb_frag) for n in range(1, len(rows) + 1)] == rows


@settings(max_examples=400, deadline=None)
@given(
    nb_frag=st.one_of(
        st.integers(1, 64), st.sampled_from([2**k for k in range(14)]), st.integers(1, 16000)
    ),
    data=st.data(),
)
def test_vectorised_rows_equal_the_literal_algorithm(nb_frag: int, data: st.DataObject) -> None:
    # large n makes 24-bit seeds (1 + 1001·n >= 2^23), where prbs23's addition carries
    n = data.draw(st.one_of(st.integers(1, 40), st.integers(1, MAX_N - nb_frag)))
    assert ones(n, nb_frag) == literal_matrix_line(n, nb_frag)


def test_a_single_fragment_has_empty_parity_rows() -> None:
    assert not matrix_line(1, 1).any()


@pytest.mark.parametrize(("n", "nb_frag"), [(0, 4), (MAX_N - 3, 4), (1, 0), (1, MAX_N + 1)])
def test_matrix_line_refuses_rows_outside_the_14_bit_range(n: int, nb_frag: int) -> None:
    with pytest.raises(FecError):
        matrix_line(n, nb_frag)


# --------------------------------------------------------------------------- encoder


def test_encoder_reproduces_the_m4_table() -> None:
    block = encode_block(M4_UNCODED, frag_size=4, redundancy=6)
    assert (block.nb_frag, block.padding, block.redundancy) == (4, 0, 6)
    assert [f.hex() for f in block.fragments[4:]] == [
        "0b090f09",
        "0b090f09",
        "b090f090",
        "1a2b3c4d",
        "a1b2c3d4",
        "b090f090",
    ]


def test_encoder_reproduces_brocaar_encode_test_vector() -> None:
    block = encode_block(bytes(range(100)), frag_size=10, redundancy=10)
    assert block.fragments[10].hex() == "26262222" "2e2e2222" "2626"
    assert block.fragments[11].hex() == "54555657" "5859" "6a6b7c7d"
    assert block.fragments[12].hex() == "5c5d6e6f" "1011" "02030405"


@settings(max_examples=40, deadline=None)
@given(nb_frag=st.integers(1, 700), frag_size=st.integers(1, 40), redundancy=st.integers(0, 12), seed=st.integers(0, 9))
def test_coded_fragments_are_the_xor_of_the_literal_rows(nb_frag: int, frag_size: int, redundancy: int, seed: int) -> None:
    """The table-lookup encoder against fragment-by-fragment XOR over the annex rows (M past
    the 256 fragments one table pass covers, sizes not a multiple of 8)."""
    uncoded = [Random(seed * 7919 + i).randbytes(frag_size) for i in range(nb_frag)]
    block = encode_block(b"".join(uncoded), frag_size, redundancy)
    for n in range(1, redundancy + 1):
        expected = bytearray(frag_size)
        for column in literal_matrix_line(n, nb_frag):
            for offset, octet in enumerate(uncoded[column]):
                expected[offset] ^= octet
        assert block.fragments[nb_frag + n - 1] == bytes(expected)


def test_padding_fills_the_last_fragment_with_zeros_and_sets_up_the_session() -> None:
    image = bytes((7 * i + 3) % 256 for i in range(947))
    block = encode_block(image, frag_size=48, redundancy=5)
    assert (block.nb_frag, block.padding) == (20, 13)
    assert block.fragments[19].endswith(bytes(13)) and block.fragments[19][:35] == image[-35:]
    setup = FragSessionSetupReq.for_block(
        block, frag_index=0, mc_group_bit_mask=1, block_ack_delay=3, descriptor=bytes.fromhex("01020304")
    )
    assert setup.to_bytes() == bytes.fromhex("02 01 1400 30 03 0d 01020304")  # sheet §2 example
    assert padding_for(960, 48) == 0 and padding_for(961, 48) == 47


@pytest.mark.parametrize(
    ("block", "frag_size", "redundancy"),
    [(b"", 4, 1), (b"abc", 0, 1), (b"abc", 256, 1), (b"abc", 1, MAX_N), (b"abc", 1, -1)],
)
def test_encoder_refuses_bad_parameters(block: bytes, frag_size: int, redundancy: int) -> None:
    with pytest.raises(FecError):
        encode_block(block, frag_size, redundancy)


# --------------------------------------------------------------------------- decoder vectors


def feed(decoder: FragmentDecoder, fragments: tuple[bytes, ...], order: list[int]) -> list[DecoderState]:
    return [decoder.push(n, fragments[n - 1]) for n in order]


def test_m4_example_completes_at_n8_with_the_original_data() -> None:
    fragments = encode_block(M4_UNCODED, 4, 6).fragments
    decoder = FragmentDecoder(4, 4, profile=LORAMAC_NODE_PROFILE)
    states = feed(decoder, fragments, [2, 4, 5, 6, 7, 8, 9])
    # the real FragDecoder returns 2 (two recovered) at N = 8 [observed]
    assert states.index(DecoderState.COMPLETE) == 5
    assert decoder.block() == M4_UNCODED
    assert decoder.status().missing_frag == 2  # LoRaMac-node keeps counting the recovered losses


def test_m4_example_cannot_rebuild_from_5_6_7_10() -> None:
    fragments = encode_block(M4_UNCODED, 4, 6).fragments
    decoder = FragmentDecoder(4, 4)
    assert set(feed(decoder, fragments, [5, 6, 7, 10])) == {DecoderState.RECEIVING}
    assert decoder.end_session() is DecoderState.UNSOLVABLE
    with pytest.raises(FecError, match="unsolvable"):
        decoder.block()


def test_m20_three_losses_complete_at_n23_like_fragdecoder() -> None:
    image = bytes(range(200)) * 5
    fragments = encode_block(image, 50, 5).fragments
    decoder = FragmentDecoder(20, 50, profile=LORAMAC_NODE_PROFILE)
    order = [n for n in range(1, 26) if n not in (3, 7, 11)]
    states = feed(decoder, fragments, order)
    assert order[states.index(DecoderState.COMPLETE)] == 23  # returns 3 at N=23 [observed]
    assert decoder.block() == image


def test_status_answer_per_profile_matches_the_loramac_node_transcript() -> None:
    # Transcript: M=20, FragSize 48, Padding 13, 22 of 25 fragments, FragSessionStatusAns
    # 01 1900 03 00 (last N = 25, MissingFrag 3); the rebuilt 947-octet file matched.
    image = bytes((7 * i + 3) % 256 for i in range(947))
    block = encode_block(image, 48, 5)
    order = [n for n in range(1, 26) if n not in (1, 2, 8)]
    loramac = FragmentDecoder(20, 48, block.padding, profile=LORAMAC_NODE_PROFILE)
    specification = FragmentDecoder(20, 48, block.padding, profile=SPECIFICATION_PROFILE)
    feed(loramac, block.fragments, order)
    feed(specification, block.fragments, order)
    assert loramac.block() == image == specification.block()
    assert FragSessionStatusAns.from_decoder(loramac, 0).to_bytes() == bytes.fromhex("01 1900 03 00")
    # TS004 / chirpstack reading: 22 received, nothing missing any more
    assert FragSessionStatusAns.from_decoder(specification, 0).to_bytes() == bytes.fromhex("01 1600 00 00")


def test_loramac_node_profile_drops_out_of_order_fragments() -> None:
    image = bytes(range(40))
    fragments = encode_block(image, 4, 3).fragments
    loramac = FragmentDecoder(10, 4, profile=LORAMAC_NODE_PROFILE)
    specification = FragmentDecoder(10, 4)
    order = [1, 2, 4, 3, 5, 6, 7, 8, 9, 10]
    assert feed(loramac, fragments, order)[-1] is DecoderState.RECEIVING  # N=3 was dropped
    assert feed(specification, fragments, order)[-1] is DecoderState.COMPLETE
    assert loramac.status().missing_frag == 1
    feed(loramac, fragments, [11, 12, 13])
    assert loramac.state is DecoderState.COMPLETE and loramac.block() == image


def test_too_many_losses_for_the_matrix_memory() -> None:
    fragments = encode_block(bytes(range(80)), 4, 5).fragments
    decoder = FragmentDecoder(20, 4, profile=LORAMAC_NODE_PROFILE, max_missing=2)
    feed(decoder, fragments, [n for n in range(1, 26) if n not in (3, 7, 11)])
    assert decoder.state is DecoderState.MATRIX_MEMORY_EXCEEDED
    assert FragSessionStatusAns.from_decoder(decoder, 1).not_enough_matrix_memory
    with pytest.raises(FecError):
        decoder.block()


def test_contradicting_fragments_are_reported_not_decoded() -> None:
    fragments = list(encode_block(M4_UNCODED, 4, 6).fragments)
    fragments[5] = bytes.fromhex("0b090f08")  # N = 6 repeats row {0,2} with a flipped bit
    decoder = FragmentDecoder(4, 4)
    assert feed(decoder, tuple(fragments), [2, 4, 5, 6])[-1] is DecoderState.INCONSISTENT
    with pytest.raises(FecError, match="inconsistent"):
        decoder.block()
    repeated = FragmentDecoder(4, 4)
    repeated.push(1, M4_UNCODED[:4])
    assert repeated.push(1, bytes(4)) is DecoderState.INCONSISTENT


@pytest.mark.parametrize(("n", "payload"), [(0, bytes(4)), (MAX_N + 1, bytes(4)), (1, bytes(3)), (5, bytes(5))])
def test_bad_fragments_raise_the_package_error(n: int, payload: bytes) -> None:
    with pytest.raises(FuotaCodecError):
        FragmentDecoder(4, 4).push(n, payload)


@pytest.mark.parametrize(("nb_frag", "frag_size", "padding"), [(0, 4, 0), (4, 0, 0), (4, 4, 4), (MAX_N + 1, 4, 0)])
def test_bad_session_parameters_raise(nb_frag: int, frag_size: int, padding: int) -> None:
    with pytest.raises(FecError):
        FragmentDecoder(nb_frag, frag_size, padding)


def test_data_fragment_frames_from_encoder_to_decoder() -> None:
    block = encode_block(M4_UNCODED, 4, 6)
    frames = [command.to_bytes() for command in data_fragments(block, frag_index=2)]
    assert frames[4] == bytes.fromhex("08 0580 0b090f09")  # N = 5, FragIndex 2 in bits 15:14
    request = FragSessionSetupReq.for_block(
        block, frag_index=2, mc_group_bit_mask=1, block_ack_delay=0, descriptor=bytes(4)
    )
    (setup,) = FRAGMENTATION.parse_downlink(request.to_bytes())
    decoder = setup.decoder(profile=LORAMAC_NODE_PROFILE)
    for n in (2, 4, 5, 6):  # one DataFragment per frame: its payload runs to the frame's end
        (fragment,) = FRAGMENTATION.parse_downlink(frames[n - 1])
        decoder.push(fragment.n, fragment.payload)
    assert decoder.state is DecoderState.RECEIVING and decoder.fragments_needed == 1
    (fragment,) = FRAGMENTATION.parse_downlink(frames[7])
    assert decoder.push(fragment.n, fragment.payload) is DecoderState.COMPLETE
    assert decoder.block() == M4_UNCODED


def test_loramac_node_notices_trailing_losses_only_at_the_first_coded_fragment() -> None:
    block = encode_block(bytes(range(80)), 4, 3)
    loramac = FragmentDecoder(20, 4, profile=LORAMAC_NODE_PROFILE)
    specification = FragmentDecoder(20, 4)
    feed(loramac, block.fragments, list(range(1, 19)))  # N = 19 and 20 lost
    feed(specification, block.fragments, list(range(1, 19)))
    assert (loramac.status().missing_frag, loramac.status().nb_frag_received) == (0, 18)
    assert (specification.status().missing_frag, specification.status().nb_frag_received) == (2, 18)
    loramac.push(21, block.fragments[20])
    assert (loramac.status().missing_frag, loramac.status().nb_frag_received) == (2, 21)


# --------------------------------------------------------------------------- decoder properties


@st.composite
def sessions(draw: st.DrawFn) -> tuple[bytes, int, int, list[int]]:
    frag_size = draw(st.integers(1, 6))
    nb_frag = draw(st.integers(1, 40))
    size = draw(st.integers((nb_frag - 1) * frag_size + 1, nb_frag * frag_size))
    image = draw(st.binary(min_size=size, max_size=size))
    redundancy = draw(st.integers(0, 2 * nb_frag + 2))
    kept = draw(st.lists(st.booleans(), min_size=nb_frag + redundancy, max_size=nb_frag + redundancy))
    arrivals = [n for n, keep in zip(range(1, nb_frag + redundancy + 1), kept) if keep]
    return image, frag_size, redundancy, arrivals


def check_decoding(
    image: bytes, frag_size: int, redundancy: int, arrivals: list[int], profile: DecoderProfile
) -> None:
    block = encode_block(image, frag_size, redundancy)
    decoder = FragmentDecoder(block.nb_frag, frag_size, block.padding, profile=profile)
    equations: list[int] = []
    for n in arrivals:
        state = decoder.push(n, block.fragments[n - 1])
        equations.append(equation(n, block.nb_frag))
        solvable = gf2_rank(equations) == block.nb_frag
        # complete exactly when the received equations first determine every fragment
        assert (state is DecoderState.COMPLETE) == solvable
        assert decoder.pivots <= decoder.missing  # documented memory bound
        if solvable:
            break
    if decoder.state is DecoderState.COMPLETE:
        assert decoder.block() == image
        assert decoder.status().missing_frag == 0 or profile is LORAMAC_NODE_PROFILE
    else:
        assert decoder.end_session() is DecoderState.UNSOLVABLE
        with pytest.raises(FecError):
            decoder.block()


@settings(max_examples=250, deadline=None)
@given(session=sessions())
def test_in_order_losses_decode_exactly_when_solvable(session: tuple[bytes, int, int, list[int]]) -> None:
    for profile in (SPECIFICATION_PROFILE, LORAMAC_NODE_PROFILE):
        check_decoding(*session, profile=profile)


@settings(max_examples=250, deadline=None)
@given(session=sessions(), random=st.randoms(use_true_random=False))
def test_any_arrival_order_decodes_exactly_when_solvable(
    session: tuple[bytes, int, int, list[int]], random: Random
) -> None:
    image, frag_size, redundancy, arrivals = session
    shuffled = list(arrivals)
    random.shuffle(shuffled)
    # repeats change nothing but the counters
    check_decoding(image, frag_size, redundancy, shuffled + shuffled[:3], SPECIFICATION_PROFILE)

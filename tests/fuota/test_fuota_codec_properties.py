"""Property tests of every FUOTA codec in otaharness/protocols/fuota/ (hypothesis):

* the four packages (TS003 clock sync, TS004 fragmentation, TS005 multicast setup, TS006
  firmware management), both directions: any command built from in-range field values encodes
  and decodes back to itself, alone and concatenated; decoding arbitrary bytes (and anything
  that is not bytes) either yields commands that re-encode to the same commands or raises
  ``FuotaCodecError`` — never another exception; building a command from arbitrary values
  raises only ``FuotaCodecError``;
* the TS004 FEC (``fec``): the encoder, the decoder's parameters and arbitrary fragments raise
  only ``FecError`` (a ``FuotaCodecError``); a block goes encoder → DataFragment frames →
  parser → decoder and comes back exactly, in any order, and the session setup request carries
  the decoder's parameters;
* TS003 time correction: applying the correction for any two 32-bit times gives the server's.

The strategies are derived from each command's wire layout (field widths, enums, fields present
only with some status bits), so a command added to a package is covered without a change here.
"""

from __future__ import annotations

import dataclasses
from random import Random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otaharness.protocols.fuota import PACKAGES_BY_FPORT, Command, FecError, FuotaCodecError, Package
from otaharness.protocols.fuota import clock_sync as ts003
from otaharness.protocols.fuota import fragmentation as ts004
from otaharness.protocols.fuota import multicast_setup as ts005
from otaharness.protocols.fuota.fec import MAX_FRAG_SIZE, MAX_N, DecoderState, FragmentDecoder, encode_block, matrix_line

PACKAGES = list(PACKAGES_BY_FPORT.values())
DIRECTIONS = [(package, direction) for package in PACKAGES for direction in ("downlink", "uplink")]
COMMANDS = [(package, direction, command) for package, direction in DIRECTIONS
            for command in getattr(package, f"{direction}_commands")]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)


def _id(value: Any) -> str:
    if isinstance(value, Package):
        return f"FPort{value.fport}"
    return value.__name__ if isinstance(value, type) else str(value)


def parse(package: Package, direction: str, data: Any) -> list[Command]:
    return package.parse_downlink(data) if direction == "downlink" else package.parse_uplink(data)


def _wire(cls: type[Command]) -> list[tuple[str, Any]]:
    return [(f.name, f.metadata["wire"]) for f in dataclasses.fields(cls) if "wire" in f.metadata]


def _field_values(spec: Any) -> st.SearchStrategy[Any]:
    if spec.kind == "flag":
        return st.booleans()
    if spec.kind == "octets":
        return st.binary(max_size=60) if spec.size is None else st.binary(min_size=spec.size, max_size=spec.size)
    if spec.kind == "sint":
        return st.integers(-(1 << (spec.bits - 1)), (1 << (spec.bits - 1)) - 1)
    if spec.enum is not None:
        return st.sampled_from(list(spec.enum))
    return st.integers(0, (1 << spec.bits) - 1)


@st.composite
def commands(draw: st.DrawFn, cls: type[Command]) -> Command:
    """A command of ``cls`` with in-range values (RFU bits 0)."""
    values: dict[str, Any] = {}
    for name, spec in _wire(cls):
        if spec.present_if is None:
            values[name] = draw(_field_values(spec))
    for name, spec in _wire(cls):
        if spec.present_if is not None:
            values[name] = draw(_field_values(spec)) if spec.present_if(values) else None
    if cls is ts005.McGroupStatusAns:
        values["nb_total_groups"] = draw(st.integers(0, ts005.MAX_GROUPS))
        values["groups"] = tuple(ts005.McGroupStatusEntry(mc_group_id=draw(st.integers(0, 3)),
                                                          mc_addr=draw(st.integers(0, (1 << 32) - 1)))
                                 for _ in range(values["ans_group_mask"].bit_count()))
    return cls(**values)


def _takes_the_rest(cls: type[Command]) -> bool:
    return any(spec.kind == "octets" and spec.size is None for _, spec in _wire(cls))


@pytest.mark.parametrize(("package", "direction", "cls"), COMMANDS, ids=_id)
@SETTINGS
@given(data=st.data())
def test_every_command_round_trips(package: Package, direction: str, cls: type[Command], data: st.DataObject) -> None:
    command = data.draw(commands(cls))
    wire = command.to_bytes()
    assert wire[0] == cls.CID
    assert parse(package, direction, wire) == [command]
    assert cls.decode(wire, 1) == (command, len(wire))
    assert parse(package, direction, Package.encode(parse(package, direction, wire))) == [command]


@pytest.mark.parametrize(("package", "direction"), DIRECTIONS, ids=_id)
@SETTINGS
@given(data=st.data())
def test_concatenated_commands_round_trip(package: Package, direction: str, data: st.DataObject) -> None:
    table = getattr(package, f"{direction}_commands")
    fixed = [cls for cls in table if not _takes_the_rest(cls)]
    sequence = data.draw(st.lists(st.sampled_from(fixed).flatmap(commands), min_size=1, max_size=6))
    rest = [cls for cls in table if _takes_the_rest(cls)]
    if rest and data.draw(st.booleans()):  # a DataFragment takes the rest of the frame: last only
        sequence.append(data.draw(st.sampled_from(rest).flatmap(commands)))
    assert parse(package, direction, Package.encode(sequence)) == sequence


def frames(package: Package, direction: str) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, and bytes that start with a CID of the table (to get past the first octet)."""
    cids = sorted({cls.CID for cls in getattr(package, f"{direction}_commands")})
    return st.one_of(st.binary(max_size=300),
                     st.tuples(st.sampled_from(cids), st.binary(max_size=40)).map(lambda t: bytes([t[0]]) + t[1]))


@pytest.mark.parametrize(("package", "direction"), DIRECTIONS, ids=_id)
@settings(max_examples=400, deadline=None, database=None)
@given(data=st.data())
def test_decoding_arbitrary_bytes_raises_only_the_codec_error(package: Package, direction: str,
                                                              data: st.DataObject) -> None:
    frame = data.draw(frames(package, direction))
    try:
        decoded = parse(package, direction, frame)
    except FuotaCodecError as error:
        assert str(error)
        return
    assert decoded and all(isinstance(command, Command) for command in decoded)
    assert parse(package, direction, Package.encode(decoded)) == decoded


@pytest.mark.parametrize(("package", "direction", "cls"), COMMANDS, ids=_id)
@settings(max_examples=60, deadline=None, database=None)
@given(data=st.binary(max_size=40), start=st.integers(0, 45))
def test_one_command_decoded_from_anywhere_raises_only_the_codec_error(
        package: Package, direction: str, cls: type[Command], data: bytes, start: int) -> None:
    try:
        command, end = cls.decode(data, start)
    except FuotaCodecError:
        return
    assert isinstance(command, cls) and start <= end <= max(len(data), start)


@pytest.mark.parametrize(("package", "direction"), DIRECTIONS, ids=_id)
@settings(max_examples=30, deadline=None, database=None)
@given(value=st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers(0, 255)), st.floats()))
def test_what_is_not_bytes_is_refused_with_the_codec_error(package: Package, direction: str, value: Any) -> None:
    with pytest.raises(FuotaCodecError, match="must be bytes"):
        parse(package, direction, value)


wire_values = st.one_of(st.none(), st.booleans(), st.integers(), st.binary(max_size=40), st.text(max_size=4),
                        st.floats(allow_nan=True))


@pytest.mark.parametrize(("package", "direction", "cls"), COMMANDS, ids=_id)
@settings(max_examples=60, deadline=None, database=None)
@given(data=st.data())
def test_a_command_built_from_arbitrary_values_raises_only_the_codec_error(
        package: Package, direction: str, cls: type[Command], data: st.DataObject) -> None:
    values = {name: data.draw(wire_values) for name, _ in _wire(cls) if data.draw(st.booleans())}
    try:
        command = cls(**values)
    except FuotaCodecError:
        return
    except TypeError as error:  # a required field left out: Python's own call check, not a value
        assert "missing" in str(error) and "required" in str(error), error
        return
    assert parse(package, direction, command.to_bytes()) == [command]


# ---------------------------------------------------------------------------------------------- FEC


@settings(max_examples=150, deadline=None, database=None)
@given(block=st.binary(max_size=300), frag_size=st.integers(-2, MAX_FRAG_SIZE + 2),
       redundancy=st.one_of(st.integers(-3, 30), st.integers(MAX_N, MAX_N + 3)))
def test_the_encoder_raises_only_the_fec_error(block: bytes, frag_size: int, redundancy: int) -> None:
    try:
        encoded = encode_block(block, frag_size, redundancy)
    except FecError:
        return
    assert len(encoded.fragments) == encoded.nb_frag + redundancy
    assert b"".join(encoded.fragments[:encoded.nb_frag]) == block + bytes(encoded.padding)


@settings(max_examples=150, deadline=None, database=None)
@given(nb_frag=st.integers(-2, MAX_N + 2), frag_size=st.integers(-2, MAX_FRAG_SIZE + 2), padding=st.integers(-2, 300),
       n=st.integers(-2, MAX_N + 2), payload=st.binary(max_size=8))
def test_decoder_parameters_and_arbitrary_fragments_raise_only_the_fec_error(
        nb_frag: int, frag_size: int, padding: int, n: int, payload: bytes) -> None:
    try:
        decoder = FragmentDecoder(nb_frag, frag_size, padding)
    except FecError:
        return
    try:
        state = decoder.push(n, payload)
    except FecError:
        return
    assert isinstance(state, DecoderState)


@settings(max_examples=100, deadline=None, database=None)
@given(nb_frag=st.integers(1, 40), n=st.integers(-2, MAX_N + 2))
def test_matrix_rows_raise_only_the_fec_error(nb_frag: int, n: int) -> None:
    try:
        line = matrix_line(n, nb_frag)
    except FecError:
        return
    assert line.shape == (nb_frag,) and int(line.sum()) <= nb_frag // 2


@settings(max_examples=100, deadline=None, database=None)
@given(image=st.binary(min_size=1, max_size=400), frag_size=st.integers(1, 40), redundancy=st.integers(0, 20),
       fragments=st.lists(st.tuples(st.integers(1, 60), st.binary(min_size=1, max_size=40)), max_size=30))
def test_arbitrary_fragments_in_a_real_session_raise_only_the_fec_error(
        image: bytes, frag_size: int, redundancy: int, fragments: list[tuple[int, bytes]]) -> None:
    block = encode_block(image, frag_size, redundancy)
    decoder = ts004.FragSessionSetupReq.for_block(block, frag_index=0, mc_group_bit_mask=1, block_ack_delay=0,
                                                  descriptor=bytes(4)).decoder()
    for n, payload in fragments:
        try:
            state = decoder.push(n, (payload * frag_size)[:frag_size] if n % 2 else payload)
        except FecError:
            continue
        if state is DecoderState.COMPLETE:
            assert len(decoder.block()) == len(image)  # some block: arbitrary fragments need not be the image


@settings(max_examples=100, deadline=None, database=None)
@given(image=st.binary(min_size=1, max_size=600), frag_size=st.integers(1, 60), redundancy=st.integers(0, 12),
       frag_index=st.integers(0, 3), order=st.randoms(use_true_random=False))
def test_a_block_goes_through_frames_and_comes_back_exactly(
        image: bytes, frag_size: int, redundancy: int, frag_index: int, order: Random) -> None:
    block = encode_block(image, frag_size, redundancy)
    setup = ts004.FragSessionSetupReq.for_block(block, frag_index=frag_index, mc_group_bit_mask=0b1010,
                                                block_ack_delay=3, descriptor=b"\x01\x02\x03\x04")
    [received_setup] = ts004.FRAGMENTATION.parse_downlink(setup.to_bytes())
    assert (received_setup.nb_frag, received_setup.frag_size, received_setup.padding) == (
        block.nb_frag, block.frag_size, block.padding)
    assert received_setup.data_block_size == len(image)
    decoder = received_setup.decoder()
    wire = [fragment.to_bytes() for fragment in ts004.data_fragments(block, frag_index)]
    order.shuffle(wire)
    for frame in wire:
        [fragment] = ts004.FRAGMENTATION.parse_downlink(frame)
        assert isinstance(fragment, ts004.DataFragment) and fragment.frag_index == frag_index
        decoder.push(fragment.n, fragment.payload)
    assert decoder.state is DecoderState.COMPLETE  # every uncoded fragment arrived
    assert decoder.block() == image


# ---------------------------------------------------------------------------------------- TS003


@settings(max_examples=300, deadline=None, database=None)
@given(server=st.integers(0, (1 << 32) - 1), device=st.integers(0, (1 << 32) - 1), token=st.integers(0, 15))
def test_the_time_correction_brings_any_device_time_to_the_server_time(server: int, device: int, token: int) -> None:
    request = ts003.AppTimeReq(device_time=device, token_req=token, ans_required=True)
    [received] = ts003.CLOCK_SYNC.parse_uplink(request.to_bytes())
    answer = ts003.answer_app_time(received, server)
    [delivered] = ts003.CLOCK_SYNC.parse_downlink(answer.to_bytes())
    assert delivered == answer and delivered.token_ans == token
    assert ts003.corrected_device_time(device, delivered.time_correction) == server
    assert abs(delivered.time_correction) <= 1 << 31

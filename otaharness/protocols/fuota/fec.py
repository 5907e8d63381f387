"""TS004 forward error correction (FragAlgo 0): parity matrix, encoder and online decoder.

The parity matrix is the one in TS004's informative annex (TS004-2.0.0 p.24; brocaar
`encode.go` and LoRaMac-node `FragDecoder.c` agree with it bit for bit):

* ``prbs23(x) = (x >> 1) + ((bit0(x) XOR bit5(x)) << 22)``
* coded row n (n >= 1, sent as DataFragment N = M + n) has ones at ⌊M/2⌋ draws
  ``r = x mod (M + pow2)`` with ``x = prbs23(x)`` starting from ``x = 1 + 1001·n``, draws with
  ``r >= M`` being skipped (pow2 = 1 iff M is a power of two; repeated draws may coincide).

Rows are made by XOR of precomputed sequences (prbs23 is linear over GF(2) below 2^23). The
encoder XORs fragments in 64-bit words, 8 fragments per table lookup (`_xor_rows`); the decoder
keeps its GF(2) equations as Python integers (bit-packed rows whose XOR, lowest-bit and popcount
run in C) and their data as numpy rows. Why not a compiled kernel: with these the decoder beats
LoRaMac-node's FragDecoder in C on the same machine (README, Performance) and nothing needs a
compiler on the user's machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache, reduce
from operator import itemgetter, xor

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._codec import FuotaCodecError

MAX_N = (1 << 14) - 1  # DataFragment N is 14 bits (TS004 §3.6), so M + redundancy <= 16383
MAX_FRAG_SIZE = 255  # FragSize is one octet (TS004 §3.3)

_STATE_BITS = 23
_TAP_DISTANCE = 18  # prbs23 feeds bit0 ^ bit5 into bit 22: s[j] = s[j-23] ^ s[j-18]
_STATE_WEIGHTS = 1 << np.arange(_STATE_BITS, dtype=np.int64)


class FecError(FuotaCodecError):
    """Invalid FEC parameters or fragments, or a block asked for before it is complete."""


def prbs23(x: int) -> int:
    """TS004 annex pseudo-random generator, literally."""
    return (x >> 1) + (((x & 1) ^ ((x >> 5) & 1)) << 22)


def _prbs23_sequence(seed: int, count: int) -> np.ndarray:
    """The `count` values x_1..x_count that repeated prbs23 produces from `seed`.

    Seeds reach 24 bits (1 + 1001·16383), and while x >= 2^23 the `+` in prbs23 can carry, so
    those first steps run literally. Below 2^23 the state is a 23-bit window over the bit
    stream s with s[j+23] = s[j] ^ s[j+5]; squaring the characteristic polynomial over GF(2)
    gives s[j] = s[j - 23·2^k] ^ s[j - 18·2^k], so the stream grows in doubling numpy slices.
    """
    values = np.empty(count, dtype=np.int64)
    done = 0
    x = seed
    while x >= 1 << _STATE_BITS and done < count:
        x = prbs23(x)
        values[done] = x
        done += 1
    remaining = count - done
    if remaining == 0:
        return values
    length = remaining + _STATE_BITS
    stream = np.empty(length, dtype=np.uint8)
    stream[:_STATE_BITS] = (x >> np.arange(_STATE_BITS)) & 1
    filled = _STATE_BITS
    while filled < length:
        scale = 1
        while _STATE_BITS * scale * 2 <= filled:
            scale *= 2
        far, near = _STATE_BITS * scale, _TAP_DISTANCE * scale
        end = min(filled + near, length)
        stream[filled:end] = stream[filled - far : end - far] ^ stream[filled - near : end - near]
        filled = end
    windows = sliding_window_view(stream[1:], _STATE_BITS)[:remaining]
    values[done:] = windows @ _STATE_WEIGHTS
    return values


def _check_nb_frag(nb_frag: int) -> None:
    if not 1 <= nb_frag <= MAX_N:
        raise FecError(f"NbFrag must be 1..{MAX_N}, got {nb_frag}")


class _BasisSequences:
    """prbs23 below 2^23 is linear over GF(2) (a shift, and bit0 ^ bit5 into the free bit 22),
    so the k-th value from any such seed is the XOR of the k-th values from the seed's set bits.
    ``values[j, k]`` is x_{k+1} from seed 2^j; grown by doubling, shared by every row and session
    (a pure function of k)."""

    def __init__(self) -> None:
        self.values = np.zeros((_STATE_BITS, 0), dtype=np.int32)

    def first(self, count: int) -> np.ndarray:
        if self.values.shape[1] < count:
            length = max(count, 2 * self.values.shape[1], 1024)
            self.values = np.stack([_prbs23_sequence(1 << bit, length) for bit in range(_STATE_BITS)]).astype(np.int32)
        return self.values[:, :count]


_BASIS = _BasisSequences()


def _draws(seed: int, count: int) -> np.ndarray:
    """x_1..x_count from `seed`, as `_prbs23_sequence` gives them, by XOR of basis sequences."""
    literal: list[int] = []
    x = seed
    while x >= 1 << _STATE_BITS and len(literal) < count:  # the `+` may carry: step literally
        x = prbs23(x)
        literal.append(x)
    remaining = count - len(literal)
    bits = [bit for bit in range(_STATE_BITS) if x >> bit & 1]
    values = np.bitwise_xor.reduce(_BASIS.first(remaining)[bits], axis=0) if bits else np.zeros(remaining, np.int32)
    return np.concatenate((np.array(literal, dtype=np.int32), values)) if literal else values


def _line_columns(n: int, nb_frag: int) -> np.ndarray:
    """The draws r of coded row n in order (repeats kept): row n's ones are their set."""
    draws = nb_frag // 2
    if draws == 0:
        return np.zeros(0, dtype=np.int32)
    if nb_frag & (nb_frag - 1):  # modulus M: every draw is accepted
        return _draws(1 + 1001 * n, draws) % nb_frag
    # power-of-two M: modulus M + 1 and r == M skipped; a small margin almost always suffices
    count = draws + 8 + draws // 32
    while True:
        residues = _draws(1 + 1001 * n, count) % (nb_frag + 1)
        accepted = residues[residues < nb_frag]
        if accepted.size >= draws:
            return accepted[:draws]
        count *= 2


def _check_row(n: int, nb_frag: int) -> None:
    _check_nb_frag(nb_frag)
    if not 1 <= n <= MAX_N - nb_frag:
        raise FecError(f"coded row n must be 1..{MAX_N - nb_frag} for M={nb_frag}, got {n}")


def matrix_line(n: int, nb_frag: int) -> np.ndarray:
    """Coefficients (bool, length M) of coded row n >= 1, i.e. of DataFragment N = M + n."""
    _check_row(n, nb_frag)
    line = np.zeros(nb_frag, dtype=bool)
    line[_line_columns(n, nb_frag)] = True
    return line


@lru_cache(maxsize=4096)
def _line_bits(n: int, nb_frag: int) -> int:
    """Coded row n as a Python integer, bit i for fragment i (0-based). Cached: a pure function
    of (n, M), so every decoder of a campaign's sessions shares the rows it has already made."""
    packed = np.packbits(matrix_line(n, nb_frag), bitorder="little")
    return int.from_bytes(packed.tobytes(), "little")


def clear_caches() -> None:
    """Forget the parity rows made so far (to time a decoder from a cold start)."""
    _line_bits.cache_clear()


def padding_for(block_size: int, frag_size: int) -> int:
    """Filler octets after the block so that it fills whole fragments (chirpstack's rule)."""
    return (frag_size - block_size % frag_size) % frag_size


@dataclass(frozen=True)
class EncodedBlock:
    """A data block cut into M uncoded fragments plus coded ones, ready for DataFragment."""

    nb_frag: int
    frag_size: int
    padding: int
    fragments: tuple[bytes, ...]  # fragments[N - 1] is DataFragment N

    @property
    def redundancy(self) -> int:
        return len(self.fragments) - self.nb_frag


def _check_frag_size(frag_size: int) -> None:
    if not 1 <= frag_size <= MAX_FRAG_SIZE:
        raise FecError(f"FragSize must be 1..{MAX_FRAG_SIZE}, got {frag_size}")


_GROUP_BITS = 8  # "four Russians": all XOR combinations of each 8 fragments, one table lookup per 8
_GROUPS_PER_PASS = 32  # bounds the tables and lookups of one pass to a few MB


def _xor_rows(uncoded: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """For each bool row of `lines` (R×M), the XOR of the uncoded fragments (M×F) it selects.

    Fragments are taken 8 at a time: a 256-entry table holds every XOR combination of the 8
    (built in 8 doubling steps), and each row picks one entry per group by its packed bits. In
    64-bit words (F padded to a multiple of 8) that is about a third of the XOR volume of
    adding half the fragments to every row one by one. Returns R×F' uint8, F' >= F."""
    nb_frag, frag_size = uncoded.shape
    words = -(-frag_size // 8)
    groups = -(-nb_frag // _GROUP_BITS)
    padded = np.zeros((groups * _GROUP_BITS, words * 8), dtype=np.uint8)
    padded[:nb_frag, :frag_size] = uncoded
    data = padded.view(np.uint64).reshape(groups, _GROUP_BITS, words)
    selectors = np.packbits(lines, axis=1, bitorder="little")  # R × groups, bit b: fragment 8g+b
    result = np.zeros((lines.shape[0], words), dtype=np.uint64)
    for first in range(0, groups, _GROUPS_PER_PASS):
        last = min(first + _GROUPS_PER_PASS, groups)
        table = np.empty((last - first, 1 << _GROUP_BITS, words), dtype=np.uint64)
        table[:, 0] = 0
        for bit in range(_GROUP_BITS):
            np.bitwise_xor(table[:, : 1 << bit], data[first:last, bit, None, :], out=table[:, 1 << bit : 2 << bit])
        picked = table[np.arange(last - first), selectors[:, first:last]]  # R × groups × words
        result ^= np.bitwise_xor.reduce(picked, axis=1)
    return result.view(np.uint8)


def encode_block(block: bytes, frag_size: int, redundancy: int) -> EncodedBlock:
    """Zero-pad `block`, split it into M fragments and append `redundancy` coded fragments."""
    _check_frag_size(frag_size)
    if not block:
        raise FecError("the data block is empty")
    padding = padding_for(len(block), frag_size)
    uncoded = np.frombuffer(bytes(block) + bytes(padding), dtype=np.uint8).reshape(-1, frag_size)
    nb_frag = uncoded.shape[0]
    _check_nb_frag(nb_frag)
    if not 0 <= redundancy <= MAX_N - nb_frag:
        raise FecError(f"redundancy must be 0..{MAX_N - nb_frag} for M={nb_frag}, got {redundancy}")
    lines = np.zeros((redundancy, nb_frag), dtype=bool)
    for n in range(1, redundancy + 1):
        lines[n - 1, _line_columns(n, nb_frag)] = True
    coded = _xor_rows(uncoded, lines)
    fragments = tuple(row.tobytes() for row in uncoded) + tuple(row.tobytes() for row in coded[:, :frag_size])
    return EncodedBlock(nb_frag=nb_frag, frag_size=frag_size, padding=padding, fragments=fragments)


class DecoderState(Enum):
    """Explicit outcome, unlike FragDecoder's ambiguous return 0 (fact sheet, consequence 3)."""

    RECEIVING = "receiving"
    COMPLETE = "complete"
    MATRIX_MEMORY_EXCEEDED = "matrix-memory-exceeded"  # more losses than max_missing
    INCONSISTENT = "inconsistent"  # fragments contradict each other: never trust the block
    UNSOLVABLE = "unsolvable"  # the session ended before the block could be rebuilt


class StatusSemantics(Enum):
    """What FragSessionStatusAns counts (fact sheet §2.3 and design consequence 1)."""

    # TS004-2.0.0 §3.2: NbFragReceived = every fragment received (coded, uncoded, repeated);
    # MissingFrag = uncoded fragments still neither received nor rebuilt (0 once complete).
    # chirpstack-fuota-server counts a device done only when MissingFrag == 0.
    SPECIFICATION = "specification"
    # LoRaMac-node: NbFragReceived = the last N received; MissingFrag = cumulative number of
    # uncoded fragments seen lost (gaps in N), still > 0 after FEC recovered them.
    LORAMAC_NODE = "loramac-node"


@dataclass(frozen=True)
class DecoderProfile:
    """Behaviour choices where implementations differ."""

    status_semantics: StatusSemantics
    # LoRaMac-node drops a fragment whose N is below the last uncoded N seen (fact sheet §2.3).
    drop_out_of_order: bool


SPECIFICATION_PROFILE = DecoderProfile(StatusSemantics.SPECIFICATION, drop_out_of_order=False)
LORAMAC_NODE_PROFILE = DecoderProfile(StatusSemantics.LORAMAC_NODE, drop_out_of_order=True)


@dataclass(frozen=True)
class SessionStatus:
    """The counters a FragSessionStatusAns carries, per the decoder's profile."""

    nb_frag_received: int  # 14 bits on the wire, saturated
    missing_frag: int  # one octet on the wire
    not_enough_matrix_memory: bool


class FragmentDecoder:
    """Online GF(2) decoder for one fragmentation session.

    Like LoRaMac-node's FragDecoder it processes each fragment as it arrives and keeps only
    what is needed: uncoded fragments are kept as received; a coded fragment is reduced by the
    fragments already known and by the stored pivot equations, and kept only if it adds
    information. Unlike FragDecoder the pivots are kept in reduced row-echelon form, so a pivot
    whose equation shrinks to a single unknown *is* that fragment: it is marked known and its
    pivot freed at once, and no back-substitution pass is needed.

    Memory (M = nb_frag, F = frag_size, P = pivots held, P <= fragments still missing):
    * one reference per fragment: a received fragment is the payload object handed to `push`,
      held as is, not copied (bytes are immutable, so devices that received the same frame may
      share one object); a rebuilt fragment is F new octets. Nothing M×F is allocated before
      `block()` joins them;
    * pivot equations as Python integers, bit i for fragment i (about M/8 octets each), their
      partly reduced data in an array of F-octet rows grown in doubling steps (at most P rows
      used, min(2·P, M) allocated);
    * `max_missing` caps the lost uncoded fragments it will work on, like LoRaMac-node's
      FRAG_MAX_REDUNDANCY: if more are missing when a coded fragment arrives the state becomes
      MATRIX_MEMORY_EXCEEDED (with out-of-order delivery, fragments not arrived yet count);
    * temporaries per coded fragment: the known fragments its row names, joined (≤ M×F/2
      octets, freed at once).

    The parity rows come from `_line_bits`, shared by all decoders of a process.

    The block is only handed out once every fragment is known, and every answer it gives
    follows from the received equations exactly; a redundant fragment that contradicts them
    turns the state to INCONSISTENT, so a wrong image is never returned.
    """

    def __init__(
        self,
        nb_frag: int,
        frag_size: int,
        padding: int = 0,
        *,
        profile: DecoderProfile = SPECIFICATION_PROFILE,
        max_missing: int | None = None,
    ) -> None:
        _check_nb_frag(nb_frag)
        _check_frag_size(frag_size)
        if not 0 <= padding < frag_size:
            raise FecError(f"Padding must be 0..{frag_size - 1}, got {padding}")
        self.nb_frag = nb_frag
        self.frag_size = frag_size
        self.padding = padding
        self.profile = profile
        self.max_missing = nb_frag if max_missing is None else max_missing
        self.state = DecoderState.RECEIVING
        self.fragments_received = 0  # every DataFragment handed in, repeats included
        self.last_n = 0
        self.lost_by_gap = 0  # LoRaMac-node FragNbLost
        self._last_rx = 0  # LoRaMac-node FragNbLastRx
        self._fragments: list[bytes | None] = [None] * nb_frag
        self._known_bits = 0  # bit i: fragment i received or rebuilt
        self._missing = nb_frag
        # pivot k: equation `_pivot_rows[k]` (bits over unknown fragments, lowest = leading
        # column `_pivot_columns[k]`) = `_pivot_data[k]`; `_pivot_of` maps leading column -> k
        self._pivot_rows: list[int] = []
        self._pivot_columns: list[int] = []
        self._pivot_leading_bits: list[int] = []  # 1 << leading column, to test rows without shifting them
        self._pivot_data = np.zeros((0, frag_size), dtype=np.uint8)
        self._pivot_of: dict[int, int] = {}

    # ----------------------------------------------------------------- public

    @property
    def missing(self) -> int:
        """Uncoded fragments neither received nor rebuilt yet."""
        return self._missing

    @property
    def fragments_needed(self) -> int:
        """Independent coded fragments still required at the very least."""
        return self._missing - len(self._pivot_rows)

    @property
    def pivots(self) -> int:
        return len(self._pivot_rows)

    def push(self, n: int, payload: bytes) -> DecoderState:
        """Process DataFragment N with its FragSize payload octets (held, not copied)."""
        if not 1 <= n <= MAX_N:
            raise FecError(f"DataFragment N must be 1..{MAX_N}, got {n}")
        if len(payload) != self.frag_size:
            raise FecError(f"DataFragment N={n} has {len(payload)} octets, FragSize is {self.frag_size}")
        self.fragments_received += 1
        if self.state is not DecoderState.RECEIVING:
            return self.state  # LoRaMac-node stops feeding its decoder here too
        self.last_n = n
        in_order = self._track_order(n)
        if not in_order and self.profile.drop_out_of_order:
            return self.state
        if n <= self.nb_frag:
            self._take_uncoded(n - 1, bytes(payload))
        else:
            self._take_coded(n - self.nb_frag, payload)
        if self.state is DecoderState.RECEIVING and self._missing == 0:
            self.state = DecoderState.COMPLETE
        return self.state

    def end_session(self) -> DecoderState:
        """No more fragments will come: an unfinished block is declared unsolvable."""
        if self.state is DecoderState.RECEIVING:
            self.state = DecoderState.UNSOLVABLE
        return self.state

    def block(self) -> bytes:
        """The rebuilt data block (M×FragSize − Padding octets), only once COMPLETE."""
        if self.state is not DecoderState.COMPLETE:
            raise FecError(
                f"data block not available: decoder is {self.state.value}, "
                f"{self.missing} fragments missing, at least {self.fragments_needed} more needed"
            )
        return b"".join(self._fragments)[: self.nb_frag * self.frag_size - self.padding]  # type: ignore[arg-type]

    def status(self) -> SessionStatus:
        """Counters for FragSessionStatusAns under this decoder's profile."""
        if self.profile.status_semantics is StatusSemantics.LORAMAC_NODE:
            received, missing = self.last_n, self.lost_by_gap & 0xFF  # uint8_t assignment
        else:
            received, missing = self.fragments_received, min(self.missing, 0xFF)
        return SessionStatus(
            nb_frag_received=min(received, MAX_N),
            missing_frag=missing,
            not_enough_matrix_memory=self.state is DecoderState.MATRIX_MEMORY_EXCEEDED,
        )

    # ----------------------------------------------------------------- fragments

    def _track_order(self, n: int) -> bool:
        """LoRaMac-node FragFindMissingFrags: uncoded N skipped over count as lost, once.

        Returns False for a fragment below the last uncoded N seen (out of order)."""
        last_rx, nb_frag = self._last_rx, self.nb_frag
        if n < last_rx:
            return False
        gap_end = n - 1 if n - 1 < nb_frag else nb_frag  # plain comparisons: once per fragment
        if gap_end > last_rx:
            self.lost_by_gap += gap_end - last_rx
        self._last_rx = n if (last_rx if last_rx > n - 1 else n - 1) < nb_frag else nb_frag + 1
        return True

    def _take_uncoded(self, index: int, payload: bytes) -> None:
        known = self._fragments[index]
        if known is not None:
            if known != payload:
                self.state = DecoderState.INCONSISTENT
            return
        pivot = self._pivot_of.get(index)
        if pivot is not None:
            # The pivot led by this fragment becomes an equation over the other unknowns.
            residual_row = self._pivot_rows[pivot] & ~(1 << index)
            residual_data = self._pivot_data[pivot] ^ np.frombuffer(payload, dtype=np.uint8)
            self._drop_pivot(pivot)
            self._learn(index, payload)
            self._insert(residual_row, residual_data)
            return
        self._learn(index, payload)
        if self._pivot_rows:
            bit = 1 << index
            holders = [k for k, row in enumerate(self._pivot_rows) if row & bit]
            if holders:
                for k in holders:
                    self._pivot_rows[k] ^= bit
                self._pivot_data[holders] ^= np.frombuffer(payload, dtype=np.uint8)
                self._resolve_singletons(holders)

    def _take_coded(self, row_number: int, payload: bytes) -> None:
        if row_number > MAX_N - self.nb_frag:
            raise FecError(f"coded DataFragment N={row_number + self.nb_frag} exceeds {MAX_N}")
        if self._missing > self.max_missing:
            self.state = DecoderState.MATRIX_MEMORY_EXCEEDED
            return
        line = _line_bits(row_number, self.nb_frag)
        received = np.frombuffer(payload, dtype=np.uint8)
        known_terms = line & self._known_bits
        data = received ^ self._xor_of_fragments(known_terms) if known_terms else received.copy()
        self._insert(line & ~self._known_bits, data)

    def _xor_of_fragments(self, bits: int) -> np.ndarray:
        """XOR of the known fragments whose bits are set, in one numpy reduction."""
        selected = np.unpackbits(
            np.frombuffer(bits.to_bytes(self._row_octets(), "little"), dtype=np.uint8), bitorder="little"
        )
        indices = np.flatnonzero(selected).tolist()
        if len(indices) == 1:
            return np.frombuffer(self._fragments[indices[0]], dtype=np.uint8)  # type: ignore[arg-type]
        joined = b"".join(itemgetter(*indices)(self._fragments))
        return np.bitwise_xor.reduce(np.frombuffer(joined, dtype=np.uint8).reshape(-1, self.frag_size), axis=0)

    def _row_octets(self) -> int:
        return (self.nb_frag + 7) // 8

    # ----------------------------------------------------------------- elimination

    def _insert(self, row: int, data: np.ndarray) -> None:
        """Add the equation row·fragments = data over unknown fragments (bit i: fragment i)."""
        # Reduced row-echelon pivots never share leading columns: one XOR pass clears them.
        leading_pivots = [k for k, leading_bit in enumerate(self._pivot_leading_bits) if row & leading_bit]
        if leading_pivots:
            row ^= reduce(xor, [self._pivot_rows[k] for k in leading_pivots])
            data ^= np.bitwise_xor.reduce(self._pivot_data[leading_pivots], axis=0)
        if not row:
            if data.any():
                self.state = DecoderState.INCONSISTENT
            return
        leading = (row & -row).bit_length() - 1
        bit = 1 << leading
        holders = [k for k, pivot_row in enumerate(self._pivot_rows) if pivot_row & bit]
        if holders:
            for k in holders:
                self._pivot_rows[k] ^= row
            self._pivot_data[holders] ^= data
        holders.append(self._add_pivot(row, leading, data))
        self._resolve_singletons(holders)

    def _add_pivot(self, row: int, leading: int, data: np.ndarray) -> int:
        index = len(self._pivot_rows)
        if index == self._pivot_data.shape[0]:
            grown = np.zeros((min(max(8, 2 * index), self.nb_frag), self.frag_size), dtype=np.uint8)
            grown[:index] = self._pivot_data
            self._pivot_data = grown
        self._pivot_rows.append(row)
        self._pivot_columns.append(leading)
        self._pivot_leading_bits.append(1 << leading)
        self._pivot_data[index] = data
        self._pivot_of[leading] = index
        return index

    def _resolve_singletons(self, candidates: list[int]) -> None:
        """Pivots left with one unknown hold that fragment: mark it known, free the pivot."""
        solved = [self._pivot_columns[k] for k in candidates if self._pivot_rows[k].bit_count() == 1]
        for column in solved:
            index = self._pivot_of[column]
            data = self._pivot_data[index].tobytes()
            self._drop_pivot(index)
            self._learn(column, data)

    def _drop_pivot(self, index: int) -> None:
        last = len(self._pivot_rows) - 1
        del self._pivot_of[self._pivot_columns[index]]
        if index != last:
            self._pivot_rows[index] = self._pivot_rows[last]
            self._pivot_columns[index] = self._pivot_columns[last]
            self._pivot_leading_bits[index] = self._pivot_leading_bits[last]
            self._pivot_data[index] = self._pivot_data[last]
            self._pivot_of[self._pivot_columns[index]] = index
        self._pivot_rows.pop()
        self._pivot_columns.pop()
        self._pivot_leading_bits.pop()

    def _learn(self, index: int, data: bytes) -> None:
        self._fragments[index] = data
        self._known_bits |= 1 << index
        self._missing -= 1

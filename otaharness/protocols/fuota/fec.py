"""TS004 forward error correction (FragAlgo 0): parity matrix, encoder and online decoder.

The parity matrix is the one in TS004's informative annex (TS004-2.0.0 p.24; brocaar
`encode.go` and LoRaMac-node `FragDecoder.c` agree with it bit for bit):

* ``prbs23(x) = (x >> 1) + ((bit0(x) XOR bit5(x)) << 22)``
* coded row n (n >= 1, sent as DataFragment N = M + n) has ones at ⌊M/2⌋ draws
  ``r = x mod (M + pow2)`` with ``x = prbs23(x)`` starting from ``x = 1 + 1001·n``, draws with
  ``r >= M`` being skipped (pow2 = 1 iff M is a power of two; repeated draws may coincide).

All data work is vectorised with numpy: fragments are rows of an (M, FragSize) uint8 array,
parity rows are bool vectors (encoder) or bit-packed uint8 rows (decoder pivots).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._codec import FuotaCodecError

MAX_N = (1 << 14) - 1  # DataFragment N is 14 bits (TS004 §3.6), so M + redundancy <= 16383
MAX_FRAG_SIZE = 255  # FragSize is one octet (TS004 §3.3)

_STATE_BITS = 23
_TAP_DISTANCE = 18  # prbs23 feeds bit0 ^ bit5 into bit 22: s[j] = s[j-23] ^ s[j-18]
_STATE_WEIGHTS = 1 << np.arange(_STATE_BITS, dtype=np.int64)
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


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


def matrix_line(n: int, nb_frag: int) -> np.ndarray:
    """Coefficients (bool, length M) of coded row n >= 1, i.e. of DataFragment N = M + n."""
    _check_nb_frag(nb_frag)
    if not 1 <= n <= MAX_N - nb_frag:
        raise FecError(f"coded row n must be 1..{MAX_N - nb_frag} for M={nb_frag}, got {n}")
    draws = nb_frag // 2
    power_of_two = nb_frag & (nb_frag - 1) == 0
    modulus = nb_frag + int(power_of_two)
    line = np.zeros(nb_frag, dtype=bool)
    if draws == 0:
        return line
    # Only r == M is ever rejected (power-of-two M), so a small margin almost always suffices.
    count = draws + (8 + draws // 32 if power_of_two else 0)
    while True:
        residues = _prbs23_sequence(1 + 1001 * n, count) % modulus
        accepted = residues[residues < nb_frag]
        if accepted.size >= draws:
            line[accepted[:draws]] = True
            return line
        count *= 2


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
    coded = [
        np.bitwise_xor.reduce(uncoded[matrix_line(n, nb_frag)], axis=0, initial=0).astype(np.uint8)
        for n in range(1, redundancy + 1)
    ]
    fragments = tuple(row.tobytes() for row in uncoded) + tuple(row.tobytes() for row in coded)
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
    what is needed: uncoded fragments go straight into the block store; a coded fragment is
    reduced by the fragments already known and by the stored pivot equations, and kept only if
    it adds information. Unlike FragDecoder the pivots are kept in reduced row-echelon form,
    so a pivot whose equation shrinks to a single unknown *is* that fragment: it is marked
    known and its pivot freed at once, and no back-substitution pass is needed.

    Memory (M = nb_frag, F = frag_size, P = pivots held, P <= fragments still missing):
    * block store M×F octets — also holds each pivot's partly reduced data in the slot of its
      leading unknown fragment, as FragDecoder does with its file;
    * per fragment: a known flag (1 octet) and a pivot index (4 octets);
    * pivot equations bit-packed, ⌈M/8⌉ octets each (+4 for the leading column), allocated
      in doubling steps: at most min(2·P, M) rows;
    * `max_missing` caps the lost uncoded fragments it will work on, like LoRaMac-node's
      FRAG_MAX_REDUNDANCY: if more are missing when a coded fragment arrives the state becomes
      MATRIX_MEMORY_EXCEEDED (with out-of-order delivery, fragments not arrived yet count);
    * temporaries per fragment: one row of M bools, ⌈M/8⌉ and F octets.

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
        self._store = np.zeros((nb_frag, frag_size), dtype=np.uint8)
        self._known = np.zeros(nb_frag, dtype=bool)
        self._pivot_of = np.full(nb_frag, -1, dtype=np.int32)
        self._row_octets = (nb_frag + 7) // 8
        self._pivot_rows = np.zeros((0, self._row_octets), dtype=np.uint8)
        self._pivot_column = np.zeros(0, dtype=np.int32)
        self._pivots = 0

    # ----------------------------------------------------------------- public

    @property
    def missing(self) -> int:
        """Uncoded fragments neither received nor rebuilt yet."""
        return self.nb_frag - int(np.count_nonzero(self._known))

    @property
    def fragments_needed(self) -> int:
        """Independent coded fragments still required at the very least."""
        return self.missing - self._pivots

    @property
    def pivots(self) -> int:
        return self._pivots

    def push(self, n: int, payload: bytes) -> DecoderState:
        """Process DataFragment N with its FragSize payload octets."""
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
        data = np.frombuffer(payload, dtype=np.uint8).copy()
        if n <= self.nb_frag:
            self._take_uncoded(n - 1, data)
        else:
            self._take_coded(n - self.nb_frag, data)
        if self.state is DecoderState.RECEIVING and self._known.all():
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
        return self._store.tobytes()[: self.nb_frag * self.frag_size - self.padding]

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
        if n < self._last_rx:
            return False
        self.lost_by_gap += max(0, min(n - 1, self.nb_frag) - self._last_rx)
        self._last_rx = n if max(self._last_rx, n - 1) < self.nb_frag else self.nb_frag + 1
        return True

    def _take_uncoded(self, index: int, data: np.ndarray) -> None:
        if self._known[index]:
            if not np.array_equal(self._store[index], data):
                self.state = DecoderState.INCONSISTENT
            return
        pivot = self._pivot_of[index]
        if pivot >= 0:
            # The pivot led by this fragment becomes an equation over the other unknowns.
            residual_row = self._pivot_rows[pivot].copy()
            residual_row[index >> 3] &= ~np.uint8(0x80 >> (index & 7))
            residual_data = self._store[index] ^ data
            self._drop_pivot(pivot)
            self._learn(index, data)
            self._insert(residual_row, residual_data)
            return
        holders = self._pivots_with_column(index)
        self._pivot_rows[holders, index >> 3] &= ~np.uint8(0x80 >> (index & 7))
        self._store[self._pivot_column[holders]] ^= data
        self._learn(index, data)
        self._resolve_singletons(holders)

    def _take_coded(self, row_number: int, data: np.ndarray) -> None:
        if row_number > MAX_N - self.nb_frag:
            raise FecError(f"coded DataFragment N={row_number + self.nb_frag} exceeds {MAX_N}")
        if self.missing > self.max_missing:
            self.state = DecoderState.MATRIX_MEMORY_EXCEEDED
            return
        line = matrix_line(row_number, self.nb_frag)
        known_terms = line & self._known
        if known_terms.any():
            data ^= np.bitwise_xor.reduce(self._store[known_terms], axis=0)
        self._insert(np.packbits(line & ~self._known), data)

    # ----------------------------------------------------------------- elimination

    def _insert(self, row: np.ndarray, data: np.ndarray) -> None:
        """Add the equation row·fragments = data over unknown fragments (packed bits)."""
        columns = np.flatnonzero(np.unpackbits(row, count=self.nb_frag))
        leading_pivots = self._pivot_of[columns]
        leading_pivots = leading_pivots[leading_pivots >= 0]
        if leading_pivots.size:
            # Reduced row-echelon pivots never share leading columns: one XOR pass clears them.
            row ^= np.bitwise_xor.reduce(self._pivot_rows[leading_pivots], axis=0)
            data ^= np.bitwise_xor.reduce(self._store[self._pivot_column[leading_pivots]], axis=0)
        if not row.any():
            if data.any():
                self.state = DecoderState.INCONSISTENT
            return
        leading = int(np.flatnonzero(np.unpackbits(row, count=self.nb_frag))[0])
        holders = self._pivots_with_column(leading)
        self._pivot_rows[holders] ^= row
        self._store[self._pivot_column[holders]] ^= data
        new_pivot = self._add_pivot(row, leading)
        self._store[leading] = data
        self._resolve_singletons(np.append(holders, new_pivot))

    def _pivots_with_column(self, column: int) -> np.ndarray:
        bits = self._pivot_rows[: self._pivots, column >> 3] & (0x80 >> (column & 7))
        return np.flatnonzero(bits)

    def _add_pivot(self, row: np.ndarray, leading: int) -> int:
        if self._pivots == self._pivot_rows.shape[0]:
            capacity = min(max(8, 2 * self._pivots), self.nb_frag)
            grown = np.zeros((capacity, self._row_octets), dtype=np.uint8)
            grown[: self._pivots] = self._pivot_rows[: self._pivots]
            self._pivot_rows = grown
            self._pivot_column = np.resize(self._pivot_column, capacity)
        index = self._pivots
        self._pivot_rows[index] = row
        self._pivot_column[index] = leading
        self._pivot_of[leading] = index
        self._pivots += 1
        return index

    def _resolve_singletons(self, candidates: np.ndarray) -> None:
        """Pivots left with one unknown hold that fragment: mark it known, free the pivot."""
        if candidates.size == 0:
            return
        weights = _POPCOUNT[self._pivot_rows[candidates]].sum(axis=1)
        solved_columns = self._pivot_column[candidates[weights == 1]].copy()
        for column in solved_columns:
            self._drop_pivot(int(self._pivot_of[column]))
            self._known[column] = True

    def _drop_pivot(self, index: int) -> None:
        last = self._pivots - 1
        self._pivot_of[self._pivot_column[index]] = -1
        if index != last:
            self._pivot_rows[index] = self._pivot_rows[last]
            self._pivot_column[index] = self._pivot_column[last]
            self._pivot_of[self._pivot_column[index]] = index
        self._pivots = last

    def _learn(self, index: int, data: np.ndarray) -> None:
        self._store[index] = data
        self._known[index] = True

"""Reversible, seeded meter ids.

A meter id is a random-looking UUID (version 4 layout) from which the meter's index can
be recovered without any lookup table: the first 48 bits are the index passed through a
small keyed Feistel permutation, the remaining bits a keyed hash of those 48 bits. This
lets the fake serve `GET /v2/meters/{id}` for a million generated meters without keeping
a million ids in memory, while ids from another seed (or made up) decode to nothing.
"""

from __future__ import annotations

import hashlib
import uuid

_HALF_BITS = 24
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4
MAX_INDEX = (1 << (2 * _HALF_BITS)) - 1


class IdCodec:
    """Maps indexes 0..MAX_INDEX to UUID strings and back, keyed by (seed, kind)."""

    def __init__(self, seed: int, kind: str) -> None:
        base = f"leap-sim:{kind}:{seed}".encode()
        self._round_keys = [
            hashlib.blake2b(base + b":round:" + bytes([r]), digest_size=16).digest()
            for r in range(_ROUNDS)
        ]
        self._tail_key = hashlib.blake2b(base + b":tail", digest_size=16).digest()

    def _f(self, round_no: int, half: int) -> int:
        digest = hashlib.blake2b(
            half.to_bytes(3, "big"), key=self._round_keys[round_no], digest_size=3
        ).digest()
        return int.from_bytes(digest, "big")

    def encode(self, index: int) -> str:
        if not 0 <= index <= MAX_INDEX:
            raise ValueError(f"index out of range: {index}")
        left, right = index >> _HALF_BITS, index & _HALF_MASK
        for r in range(_ROUNDS):
            left, right = right, left ^ self._f(r, right)
        head = ((left << _HALF_BITS) | right).to_bytes(6, "big")
        tail = bytearray(hashlib.blake2b(head, key=self._tail_key, digest_size=10).digest())
        tail[0] = (tail[0] & 0x0F) | 0x40  # version nibble (byte 6 of the UUID)
        tail[2] = (tail[2] & 0x3F) | 0x80  # RFC 4122 variant (byte 8 of the UUID)
        return str(uuid.UUID(bytes=head + bytes(tail)))

    def decode(self, value: str) -> int | None:
        """Index encoded in `value`, or None when it is not an id this codec made."""
        try:
            raw = uuid.UUID(value).bytes
        except (ValueError, AttributeError, TypeError):
            return None
        head = int.from_bytes(raw[:6], "big")
        left, right = head >> _HALF_BITS, head & _HALF_MASK
        for r in reversed(range(_ROUNDS)):
            left, right = right ^ self._f(r, left), left
        index = (left << _HALF_BITS) | right
        if self.encode(index) != str(uuid.UUID(bytes=raw)):
            return None
        return index

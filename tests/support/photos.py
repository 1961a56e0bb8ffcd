"""Photos a hostile bureau can make: bytes that are no valid photo yet have the size and
CRC-32 of a valid one."""

from __future__ import annotations

import zlib

from issuance.photos import photo_is_valid


def with_crc(data: bytes, at: int, crc: int) -> bytes:
    """``data`` with its four bytes at ``at`` chosen so that its CRC-32 is ``crc``. A CRC is
    affine in the bits of the data: each bit flipped flips a fixed set of the CRC's bits,
    so the 32 bits at ``at`` are found by elimination over those sets."""
    zeroed = data[:at] + bytes(4) + data[at + 4 :]
    base = zlib.crc32(zeroed)
    basis: list[tuple[int, int]] = []  # (CRC bits flipped, data bits flipped), by top bit
    for bit in range(32):
        flipped = bytearray(zeroed)
        flipped[at + bit // 8] ^= 1 << (bit % 8)
        change, bits = zlib.crc32(flipped) ^ base, 1 << bit
        for known, known_bits in basis:
            if change ^ known < change:
                change, bits = change ^ known, bits ^ known_bits
        if change:
            basis.append((change, bits))
            basis.sort(reverse=True)
    wanted, chosen = base ^ crc, 0
    for known, known_bits in basis:
        if wanted ^ known < wanted:
            wanted, chosen = wanted ^ known, chosen ^ known_bits
    assert wanted == 0
    return data[:at] + chosen.to_bytes(4, "little") + data[at + 4 :]


def forged_copy(photo: bytes) -> bytes:
    """A photo of 100 × 100 pixels (its frame header says so) with the size and CRC-32 of
    ``photo``: four bytes of its image data, just before the end-of-image marker, restore
    the CRC."""
    frame = photo.index(b"\xff\xc0")
    resized = photo[: frame + 5] + (100).to_bytes(2, "big") * 2 + photo[frame + 9 :]
    forged = with_crc(resized, len(photo) - 6, zlib.crc32(photo))
    assert len(forged) == len(photo) and zlib.crc32(forged) == zlib.crc32(photo)
    assert photo_is_valid(photo) and not photo_is_valid(forged)
    return forged

"""Bank card numbers of the hub's own accounts (DOMAIN §1): a configured prefix (BIN and
branch digits), an account serial, and a Luhn check digit; 19 digits by default."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from stdnum import luhn


@dataclass(frozen=True)
class PanRange:
    """Where the hub's PANs come from: ``prefix`` + serial (zero-padded) + check digit."""

    prefix: str
    length: int = 19

    def __post_init__(self) -> None:
        if (
            not self.prefix.isdigit()
            or not 16 <= self.length <= 19
            or len(self.prefix) >= self.length - 1
        ):
            raise ValueError("a PAN range needs a digit prefix shorter than the PAN (16-19 digits)")

    @property
    def serial_digits(self) -> int:
        return self.length - len(self.prefix) - 1

    @property
    def capacity(self) -> int:
        return int(10**self.serial_digits - 1)


def luhn_digits(bodies: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The Luhn check digit of many PAN bodies at once (rows of digits, most significant
    first). Equal to ``stdnum.luhn.calc_check_digit`` (property-tested)."""
    n = bodies.shape[1]
    # from the right, the first body digit (next to the check digit) is doubled
    doubled = (np.arange(n)[::-1] % 2) == 0
    d = bodies.copy()
    d[:, doubled] *= 2
    d[d > 9] -= 9
    return np.asarray((10 - d.sum(axis=1) % 10) % 10, dtype=np.int64)


def make_pans(pan_range: PanRange, first_serial: int, count: int) -> list[str]:
    """``count`` consecutive PANs starting at ``first_serial`` (never reused: the serial
    counter only moves forward)."""
    if count == 0:
        return []
    if first_serial < 1 or first_serial + count - 1 > pan_range.capacity:
        raise ValueError(f"PAN range {pan_range.prefix} is exhausted")
    width = pan_range.serial_digits
    serials = np.arange(first_serial, first_serial + count, dtype=np.int64)
    bodies_text = [f"{pan_range.prefix}{s:0{width}d}" for s in serials.tolist()]
    digits = np.frombuffer("".join(bodies_text).encode("ascii"), dtype=np.uint8).reshape(count, -1)
    checks = luhn_digits(digits.astype(np.int64) - 48)
    return [body + str(c) for body, c in zip(bodies_text, checks.tolist(), strict=True)]


def is_valid_pan(pan: str) -> bool:
    return 16 <= len(pan) <= 19 and luhn.is_valid(pan)

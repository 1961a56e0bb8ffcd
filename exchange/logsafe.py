"""Remote names are untrusted (ICD §2): they reach a log line only escaped, so a name
holding a newline or a terminal escape cannot forge or hide a line. Text the hub did not
write itself (an exception's message) reaches one with its PANs and ID numbers masked."""

from __future__ import annotations

import re

#: characters of an escaped name shown at most
SHOWN = 120


def shown(name: str) -> str:
    """``name`` with every character outside printable ASCII escaped (``\\n``,
    ``\\x1b``, ``\\u4e2d``, undecodable bytes as ``\\udc..``), cut to ``SHOWN``."""
    text = name.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"


#: digits in groups of 3 or more, one space or hyphen between two groups (a PAN printed
#: in groups), perhaps ending in X (an ID number's check character)
_NUMBER = re.compile(r"(?<![0-9])[0-9]{3,}(?:[ -][0-9]{3,})*(?:[ -]?[Xx])?")


def _masked(found: re.Match[str]) -> str:
    number = re.sub(r"[ -]", "", found.group())
    check = number[-1] if number[-1] in "Xx" else ""
    digits = number[:-1] if check else number
    if len(digits) == 17 and check:  # an ID number: its region and its last two
        return digits[:6] + "*" * 10 + digits[-1] + check
    if len(digits) < 12:
        return found.group()
    shown = (
        digits[:6] + "*" * 10 + digits[-2:]  # an ID number's length
        if len(digits) == 18
        else digits[:6] + "****" + digits[-4:]  # a PAN's length
        if len(digits) >= 16
        else digits[:3] + "****" + digits[-3:]
    )
    return shown + check


def masked_numbers(text: str) -> str:
    """``text`` with every number that may be a PAN or an ID number masked (12 digits or
    more, whole or in groups), so no more than half its digits show: an ID number (18
    characters, the last perhaps X) keeps its first 6 and last 2, a PAN-like run of 16
    digits or more its first 6 and last 4 (as ``masked_pan``), a shorter one of at least
    12 its first 3 and last 3."""
    return _NUMBER.sub(_masked, text)


class MaskedError(Exception):
    """An error whose text quoted a PAN or an ID number, raised again in its place with
    them masked: its text names the original's type and that of each error it was
    raised from; its traceback keeps the original's frames."""


def masked_error(exc: BaseException) -> MaskedError | None:
    """``exc`` as a ``MaskedError`` when its text, or that of an error in its chain
    (``raise … from``, or raised while handling), quotes a number ``masked_numbers``
    masks; ``None`` when nothing in the chain would change."""
    parts, changed, seen = [], False, set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        said = str(current)
        masked = masked_numbers(said)
        changed = changed or masked != said
        parts.append(f"{type(current).__name__}: {masked}")
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    if not changed:
        return None
    return MaskedError("\n  raised from ".join(parts)).with_traceback(exc.__traceback__)

"""Remote names are untrusted (ICD §2): they reach a log line only escaped, so a name
holding a newline or a terminal escape cannot forge or hide a line."""

from __future__ import annotations

#: characters of an escaped name shown at most
SHOWN = 120


def shown(name: str) -> str:
    """``name`` with every character outside printable ASCII escaped (``\\n``,
    ``\\x1b``, ``\\u4e2d``, undecodable bytes as ``\\udc..``), cut to ``SHOWN``."""
    text = name.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return text if len(text) <= SHOWN else text[: SHOWN - 1] + "…"

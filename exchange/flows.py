"""Which flow takes which TYPE from which kind of counterparty (ICD §1, §5): declared
once, read by every flow's listing and by the README's table.

A counterparty's pickup directory may hold files for several flows (a partner bank
sends ACCTOPENRSP, STATUSRSP, DISBRSP and BANKEVT into one directory). Each flow takes
only its own TYPE and leaves the others for their flows; a file of a TYPE that kind of
counterparty never sends is answered F04 by the kind's *first* flow, so exactly one
flow answers it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Party(StrEnum):
    """Kinds of counterparty (ICD §1)."""

    BUREAU = "bureau"
    PARTNER = "partner"
    FACTORY = "factory"
    CHANNEL = "channel"
    PAYMENT = "payment"


@dataclass(frozen=True)
class Flow:
    """A flow taking one TYPE from one kind of counterparty.

    ``companions`` are the files that travel with a data file of this TYPE besides its
    control file (an APPLY's photo ``.zip`` and its ``.zip.ok``, ICD §5.1). ``dag`` is
    the DAG that runs the flow, ``None`` while the flow is not built yet (its files are
    left in the pickup, untouched)."""

    type: str
    sender: Party
    dag: str | None
    companions: tuple[str, ...] = ()


FLOWS: tuple[Flow, ...] = (
    Flow("APPLY", Party.BUREAU, "apply_intake", companions=("zip",)),
    Flow("STATUS", Party.BUREAU, "status_sync"),
    Flow("DISB", Party.BUREAU, "disbursement_intake"),
    Flow("ACCTOPENRSP", Party.PARTNER, "partner_account_returns"),
    Flow("STATUSRSP", Party.PARTNER, "status_sync"),
    Flow("DISBRSP", Party.PARTNER, "partner_disbursements"),
    Flow("BANKEVT", Party.PARTNER, "status_sync"),
    Flow("PERSORSP", Party.FACTORY, "factory_returns"),
    Flow("CHANNEL", Party.CHANNEL, "channel_requests"),
    Flow("STMT", Party.PAYMENT, "statement_intake"),
)


def flow(type_: str, sender: Party) -> Flow:
    """The flow of ``type_`` from ``sender``; ``KeyError`` for a pair no flow takes."""
    for f in FLOWS:
        if f.type == type_ and f.sender == sender:
            return f
    raise KeyError(f"no flow takes {type_} from a {sender}")


def sent_by(sender: Party) -> frozenset[str]:
    """Every TYPE a counterparty of this kind sends the hub."""
    return frozenset(f.type for f in FLOWS if f.sender == sender)


def answers_strangers(f: Flow) -> bool:
    """Whether ``f`` answers F04 the files of a TYPE its kind of counterparty never
    sends: the kind's first flow does."""
    return next(x for x in FLOWS if x.sender == f.sender) == f


def companions_of(f: Flow, name: str) -> list[str]:
    """The names that travel with data file ``name`` of flow ``f``: its control file and
    its companions with theirs (``X.txt`` → ``X.txt.ok``, ``X.zip``, ``X.zip.ok``)."""
    names = [f"{name}.ok"]
    if name.endswith(".txt"):
        for ext in f.companions:
            other = f"{name[:-4]}.{ext}"
            names += [other, f"{other}.ok"]
    return names

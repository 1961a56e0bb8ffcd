"""What every step that takes files from a counterparty's pickup directory knows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


class Inbox(Protocol):
    """One counterparty connection on one business date."""

    @property
    def conn_id(self) -> str: ...
    @property
    def pickup(self) -> str: ...
    @property
    def drop(self) -> str: ...
    @property
    def business_date(self) -> str: ...
    @property
    def now(self) -> datetime: ...
    @property
    def var_dir(self) -> Path: ...


@dataclass(frozen=True)
class PartyInbox:
    """An :class:`Inbox` for a partner bank or a card factory."""

    conn_id: str
    party: str
    hub: str
    pickup: str
    drop: str
    encoding: str
    business_date: str
    now: datetime
    var_dir: Path
    max_back_days: int = 10

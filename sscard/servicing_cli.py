"""Operator commands for card servicing and the ledger (registered by :mod:`sscard.cli`)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any) -> None:  # argparse's private _SubParsersAction
    """Add the servicing commands to ``sscard``'s sub-commands."""
    del sub


__all__ = ["add_commands", "argparse"]

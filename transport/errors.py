"""Typed transport failures (ICD §2).

Callers decide on the type alone: a host-key failure stops the run, a transient failure
is retried, a bad remote name is answered F07 by the reader. The library exception that
caused each failure stays attached as ``__cause__``.
"""

from __future__ import annotations


class TransportError(Exception):
    """A transfer failed; the base of every error raised by ``transport``."""


class HostKeyError(TransportError):
    """The server's host key is unknown, changed or not configured (ICD §2).

    A hard failure: never auto-accepted, never retried.
    """


class AuthenticationError(TransportError):
    """The server refused our key, or no key is configured. Not retried."""


class TransientTransportError(TransportError):
    """Connection refused or reset, a timeout, an unexpected EOF: worth retrying."""


class RemoteNameError(TransportError):
    """A remote name or path that is unsafe to use (ICD §2: remote names are untrusted)."""


class PublishConflictError(TransportError):
    """``NAME.ok`` already exists with other content: a complete file is never overwritten."""

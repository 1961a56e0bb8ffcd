"""The private OpenSSH sshd of the integration tests (:mod:`sandbox.openssh`)."""

from sandbox.openssh import SSHD, OpenSshServer, free_port, generate_key

__all__ = ["SSHD", "OpenSshServer", "free_port", "generate_key"]

"""Registrar backends, one per way of putting the add-on on a host, behind one protocol.

    base   ``Target``, ``Installed`` and ``RegistrarBackend``: what the install worker
           (``registrar.HostRegistrar``, written once) asks of a backend
    upm    UPM REST: install a descriptor URL (Jira/Confluence DC, dev sites, the emulated host)
    forge  the Forge CLI: deploy a manifest and install the app (Connect on Forge)

``forge`` is imported only for a host with ``registrar = "forge"``.
"""

from __future__ import annotations

from .base import Commit, Installed, RegistrarBackend, Target
from .upm import UpmBackend

__all__ = ["Commit", "Installed", "RegistrarBackend", "Target", "UpmBackend"]

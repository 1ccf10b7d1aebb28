"""What the install worker asks of a registrar backend, whatever puts the add-on on the host.

One ``HostRegistrar`` (``registrar.py``) per host coalesces requests and decides *when* to
install; a backend knows *how*. UPM installs a descriptor URL with one POST (``upm.py``); Forge
deploys a manifest and installs the app with the Forge CLI (``forge.py``). The worker drives a
backend through one attempt like this::

    prepared = await backend.prepare(target)          # checks; may fail; nothing reached the host
    if the host already has prepared.revision: done   # (only when revision is not "")
    await backend.install(prepared, commit)           # awaits commit() right before the point
                                                      # of no return, then installs
    ... later: await backend.uninstall(entry)         # entry: what the ledger recorded

``commit()`` is the worker's: it waits for the worker's own preflight (the tunnel serves this
proxy), writes ``backend.ledger_entry(prepared)`` to the ledger durably, and marks the attempt
as past its point of no return. Before that, closing cancels the attempt at once (nothing of it
can be on the host); after it, an ``interruptible`` backend's attempt may still be cancelled
when the close bound runs out (the ledger has the entry), and any other backend's attempt is
waited for, however long it takes (its own step timeouts bound it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ..descriptor import Revision
from ..ledger import LedgerEntry

__all__ = ["DESCRIPTOR_PATH", "Commit", "Installed", "RegistrarBackend", "Target"]

DESCRIPTOR_PATH = "/atlassian-connect.json"

Commit = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """What a host should have installed: a descriptor revision served at a public URL.

    ``revision`` is the backend's own identity of what it puts on the host for this target,
    filled in by ``RegistrarBackend.prepare`` (Forge: a digest of the rendered manifest); it is
    ``""`` in what the supervisor asks for, and stays ``""`` when key, digest and URL say it
    all (UPM). The worker only compares it with what the host last confirmed. ``descriptor``
    is the revision the target was made from, for backends that build their own document from
    it; it takes no part in comparisons.
    """

    key: str
    digest: str
    public_url: str
    revision: str = ""
    descriptor: Revision | None = field(default=None, compare=False, repr=False)

    @property
    def plugin_uri(self) -> str:
        return self.public_url.rstrip("/") + DESCRIPTOR_PATH


@dataclass(frozen=True)
class Installed:
    """What the host reports after an install."""

    key: str
    enabled: bool = True


@runtime_checkable
class RegistrarBackend(Protocol):
    """One kind of registrar for one host. Failures are ``DevloopError`` subclasses with a
    message and a hint; ``HostUnreachableError(retry=True)`` makes the worker try again later.
    """

    @property
    def kind(self) -> str:
        """``"upm"`` or ``"forge"``: the ``registrar`` of events and ledger entries."""
        ...

    @property
    def keep_on_exit(self) -> bool:
        """True: closing leaves what is installed on the host (reported as ``kept``) instead of
        uninstalling it (Forge with ``on_exit = "keep"``: deploys are slow)."""
        ...

    @property
    def interruptible(self) -> bool:
        """True: an install past its point of no return may be cancelled when the close bound
        runs out (UPM: the host finishes or fails it by itself). False: it is waited for (a
        running ``forge deploy`` is never killed), and once closing no new one starts."""
        ...

    @property
    def last_reply_at(self) -> float | None:
        """``time.monotonic()`` of the last sign of life from the host (a reply; for a CLI,
        output or a process still running), or None. The worker reports a host silent for
        ``silence`` seconds of one attempt as not answering."""
        ...

    async def prepare(self, target: Target) -> Target:
        """Everything that can fail before the host is changed (UPM: development mode on;
        Forge: the manifest renders and validates). Returns ``target`` with ``revision`` set
        when the backend has one (``dataclasses.replace``, which keeps ``descriptor``).
        Cancelled at once when the worker closes."""
        ...

    def ledger_entry(self, target: Target) -> LedgerEntry:
        """The ledger entry for installing ``target`` (a prepared one) on this host; its
        ``url`` must be the host's ``base_url``, its ``registrar`` this backend's ``kind``."""
        ...

    async def install(self, target: Target, commit: Commit) -> Installed:
        """Install ``target`` (a prepared one). Await ``commit()`` right before the point of no
        return (UPM: before each install POST; Forge: before ``forge deploy``); if it raises,
        stop: nothing reached the host."""
        ...

    async def uninstall(self, entry: LedgerEntry) -> bool:
        """Remove what ``entry`` records (``entry.key``; for Forge also its site, product and
        environment). True when it was removed, False when the host did not have it."""
        ...

    def kept_revision(self, entry: LedgerEntry) -> str | None:
        """What is installed, for the recovery at start: None when ``entry`` is a leftover to
        uninstall (always, for UPM); else the run keeps the install, and the string is the
        revision the host is known to have (``""``: not known, install again)."""
        ...

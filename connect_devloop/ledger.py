"""The ledger: which hosts the add-on may be installed on, kept so that nothing is left behind.

An entry is written *before* the install POST and removed only *after* the host confirmed the
uninstall (or said the add-on was not there). So after any crash — ``kill -9``, a power cut, a
second Ctrl-C — the ledger lists a superset of what is really installed, and ``connect-dev up``
(on start) or ``connect-dev down`` can remove it. The file holds no secret: credentials are looked
up again from the config when cleaning up.

Every write replaces the file atomically (temp file, fsync, rename) with mode 0600.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from .errors import LedgerError

__all__ = ["Ledger", "LedgerEntry", "ProjectLock"]

logger = logging.getLogger(__name__)

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LedgerEntry:
    host: str  # the host's name in the config, for messages
    url: str  # the host's base URL: the identity used to find credentials again
    username: str
    key: str  # the add-on key that may be installed there
    since: float  # wall-clock time of the first install attempt
    pid: int  # the `connect-dev up` that wrote it


class Ledger:
    """The ledger file. Reads are cheap and always from disk so ``down`` sees what ``up`` wrote."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def entries(self) -> list[LedgerEntry]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LedgerError(f"{self.path}: cannot read the ledger: {exc.strerror}") from exc
        try:
            data = json.loads(text)
            return [LedgerEntry(**entry) for entry in data["entries"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise LedgerError(
                f"{self.path}: the ledger is damaged (not the JSON connect-dev writes)",
                hint="Check the hosts it names by hand (Manage apps), then delete the file.",
            ) from exc

    def entries_for(self, url: str) -> list[LedgerEntry]:
        return [entry for entry in self.entries() if entry.url == url]

    def record(self, entry: LedgerEntry) -> None:
        """Add ``entry`` (one per host URL and key; an existing one keeps its ``since``)."""
        entries = self.entries()
        for existing in entries:
            if existing.url == entry.url and existing.key == entry.key:
                if existing.pid == entry.pid:
                    return
                entries.remove(existing)
                entry = LedgerEntry(**{**asdict(entry), "since": existing.since})
                break
        entries.append(entry)
        self._write(entries)

    def remove(self, url: str, key: str) -> None:
        entries = self.entries()
        remaining = [e for e in entries if not (e.url == url and e.key == key)]
        if len(remaining) != len(entries):
            self._write(remaining)

    def _write(self, entries: list[LedgerEntry]) -> None:
        data: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "comment": "Written by connect-dev: add-ons that may still be installed. "
            "`connect-dev down` removes them.",
            "entries": [asdict(entry) for entry in entries],
        }
        try:
            _atomic_write(self.path, json.dumps(data, indent=2) + "\n")
        except OSError as exc:
            raise LedgerError(
                f"{self.path}: cannot write the ledger: {exc.strerror}",
                hint="The project directory must be writable by connect-dev.",
            ) from exc


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


class ProjectLock:
    """One `connect-dev up` (or `down`) per project at a time.

    Without it a second `up` in the same directory would treat the first one's installs as
    left over from a crash and uninstall them under its feet. The lock is an ``flock`` held
    for the life of the process, so the kernel releases it even after ``kill -9``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO | None = None

    def acquire(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        # 0600 like every other file in .connect-dev/, whatever the umask.
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        handle = os.fdopen(descriptor, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip()
            handle.close()
            who = f" (pid {holder})" if holder else ""
            raise LedgerError(
                f"another connect-dev is already running in this project{who}",
                hint="Stop it first (Ctrl-C in its terminal), or run this one from another "
                "project directory.",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def new_entry(host: str, url: str, username: str, key: str) -> LedgerEntry:
    return LedgerEntry(
        host=host, url=url, username=username, key=key, since=time.time(), pid=os.getpid()
    )

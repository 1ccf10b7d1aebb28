"""The ledger: which hosts the add-on may be installed on, kept so that nothing is left behind.

An entry is written *before* the install POST and removed only *after* the host confirmed the
uninstall (or said the add-on was not there). So after any crash — ``kill -9``, a power cut, a
second Ctrl-C — the ledger lists a superset of what is really installed, and ``connect-dev up``
(on start) or ``connect-dev down`` can remove it. The file holds no secret: credentials are looked
up again from the config when cleaning up.

Every write replaces the file atomically (temp file, fsync, rename) with mode 0600, in a
``.connect-dev/`` directory of mode 0700. A ledger that cannot be read as connect-dev wrote it is
an error, never an empty ledger: writing over it would lose the record of what is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TextIO, TypeVar

from .errors import DevloopError, LedgerError
from .files import InputFileError, read_input_file

__all__ = [
    "Ledger",
    "LedgerEntry",
    "ProjectLock",
    "StateFileError",
    "UnchangedFile",
    "ensure_state_dir",
    "json_type",
    "read_state_json",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_FORMAT_VERSION = 1


@dataclass(frozen=True)
class LedgerEntry:
    host: str  # the host's name in the config, for messages
    url: str  # the host's base URL: the identity used to find credentials again
    username: str
    key: str  # the add-on key that may be installed there
    since: float  # wall-clock time of the first install attempt
    pid: int  # the `connect-dev up` that wrote it
    # Added with the Forge registrar; ledgers written before have none of these (the defaults).
    registrar: str = "upm"  # the backend that installed it: "upm" or "forge"
    site: str = ""  # forge: the site, product and environment `forge install` was given
    product: str = ""
    environment: str = ""
    # The backend's revision of what is (being) installed (forge: the rendered manifest's
    # digest), and whether the host confirmed it: with both, a later run that keeps the
    # install knows what is there and deploys nothing when nothing changed.
    revision: str = ""
    confirmed: bool = False


class Ledger:
    """The ledger file. Every read checks the disk, so ``down`` sees what ``up`` wrote; the
    entries are parsed again only when the file changed (``UnchangedFile``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._parsed: UnchangedFile[list[LedgerEntry]] = UnchangedFile(path)
        self._pending: list[tuple[_Change, asyncio.Future[None]]] = []
        self._committing: asyncio.Task[None] | None = None

    def entries(self) -> list[LedgerEntry]:
        cached = self._parsed.get()
        if cached is not None:
            return list(cached)
        entries = self._read()
        self._parsed.put(entries)
        return list(entries)

    def _read(self) -> list[LedgerEntry]:
        try:
            data = read_state_json(self.path)
        except StateFileError as exc:
            if exc.damaged:
                raise LedgerError(f"{self.path}: the ledger is damaged: {exc}", _DAMAGED) from exc
            raise LedgerError(f"{self.path}: cannot read the ledger: {exc}", exc.hint) from exc
        if data is None:
            return []
        try:
            return _parse_entries(data)
        except StateFileError as exc:
            raise LedgerError(f"{self.path}: the ledger is damaged: {exc}", _DAMAGED) from exc

    def entries_for(self, url: str) -> list[LedgerEntry]:
        return [entry for entry in self.entries() if entry.url == url]

    def record(self, entry: LedgerEntry) -> None:
        """Add ``entry`` (one per host URL and key; an existing one keeps its ``since``)."""
        entries = self.entries()
        changed = _with(entries, entry)
        if changed != entries:
            self._write(changed)

    def remove(self, url: str, key: str) -> None:
        entries = self.entries()
        remaining = _without(entries, url, key)
        if len(remaining) != len(entries):
            self._write(remaining)

    # Group commit, for the daemon: many hosts install (and uninstall) at once, and each write
    # is a whole-file replace with an fsync (2-3 ms on a dev machine's disk; most of the CPU
    # and time of 100 hosts starting). Changes that come while a write is on the disk are
    # written together by the next one. Each call returns only once its change is durable,
    # so an install POST still never goes before its entry is on disk.

    async def write_record(self, entry: LedgerEntry) -> None:
        """``record``, durable when it returns, written together with concurrent changes."""
        await self._commit(lambda entries: _with(entries, entry))

    async def write_removal(self, url: str, key: str) -> None:
        """``remove``, durable when it returns, written together with concurrent changes."""
        await self._commit(lambda entries: _without(entries, url, key))

    async def _commit(self, change: _Change) -> None:
        done = asyncio.get_running_loop().create_future()
        self._pending.append((change, done))
        if self._committing is None:
            self._committing = asyncio.create_task(self._write_pending(), name="ledger writes")
        await done

    async def _write_pending(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    before = self.entries()
                    after = before
                    for change, _ in batch:
                        after = change(after)
                    if after != before:
                        # In a thread: the loop goes on, and what arrives meanwhile is the
                        # next batch.
                        await asyncio.to_thread(self._write, after)
                except Exception as exc:
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(exc)
                else:
                    for _, done in batch:
                        if not done.done():
                            done.set_result(None)
        finally:
            self._committing = None

    def _write(self, entries: list[LedgerEntry]) -> None:
        data: dict[str, Any] = {
            "version": _FORMAT_VERSION,
            "comment": "Written by connect-dev: add-ons that may still be installed. "
            "`connect-dev down` removes them.",
            "entries": [_entry_json(entry) for entry in entries],
        }
        ensure_state_dir(self.path.parent)
        try:
            _atomic_write(self.path, json.dumps(data, indent=2) + "\n")
            self._parsed.put(list(entries))
        except OSError as exc:
            raise LedgerError(
                f"{self.path}: cannot write the ledger: {exc.strerror}",
                hint=f"Make {self.path.parent} writable by you (connect-dev creates it with "
                "mode 0700), and check the disk is not full.",
            ) from exc


_Change = Callable[[list[LedgerEntry]], list[LedgerEntry]]

# Written only when they differ from these: an entry of the UPM registrar is written as it
# was before the Forge registrar (and a ledger without them reads as UPM's).
_OPTIONAL_DEFAULTS: dict[str, object] = {
    "registrar": "upm",
    "site": "",
    "product": "",
    "environment": "",
    "revision": "",
    "confirmed": False,
}


def _entry_json(entry: LedgerEntry) -> dict[str, Any]:
    # vars(), not asdict(): the fields are plain values, and asdict deep-copies each.
    return {
        name: value
        for name, value in vars(entry).items()
        if name not in _OPTIONAL_DEFAULTS or value != _OPTIONAL_DEFAULTS[name]
    }


def _with(entries: list[LedgerEntry], entry: LedgerEntry) -> list[LedgerEntry]:
    """``entries`` with ``entry`` (one per host URL and key; an existing one keeps its
    ``since``, and one this process wrote changes only in the revision it records)."""
    for existing in entries:
        if existing.url == entry.url and existing.key == entry.key:
            if existing.pid == entry.pid:
                if (existing.revision, existing.confirmed) == (entry.revision, entry.confirmed):
                    return entries
                kept = replace(existing, revision=entry.revision, confirmed=entry.confirmed)
            else:
                kept = replace(entry, since=existing.since)
            return [*(e for e in entries if e is not existing), kept]
    return [*entries, entry]


def _without(entries: list[LedgerEntry], url: str, key: str) -> list[LedgerEntry]:
    return [e for e in entries if not (e.url == url and e.key == key)]


_DAMAGED = (
    "connect-dev will not write over it: it records where the add-on may still be installed. "
    "Fix it, or uninstall the add-on by hand (Manage apps) on the hosts it names and delete it."
)

# What one ledger entry must hold, checked before ``LedgerEntry(**entry)``: a hand-edited
# ``"key": null`` must be reported here, not crash an uninstall later.
_ENTRY_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "host": ((str,), "a string"),
    "url": ((str,), "a string"),
    "username": ((str,), "a string"),
    "key": ((str,), "a string"),
    "since": ((int, float), "a number"),
    "pid": ((int,), "an integer"),
}
# Fields a ledger of an older version does not have: checked only when present.
_OPTIONAL_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "registrar": ((str,), "a string"),
    "site": ((str,), "a string"),
    "product": ((str,), "a string"),
    "environment": ((str,), "a string"),
    "revision": ((str,), "a string"),
    "confirmed": ((bool,), "true or false"),
}
_REGISTRARS = ("upm", "forge")


def _parse_entries(data: object) -> list[LedgerEntry]:
    if not isinstance(data, dict):
        raise StateFileError(f"expected a JSON object, found {json_type(data)}", damaged=True)
    entries = data.get("entries")
    if not isinstance(entries, list):
        found = "nothing" if "entries" not in data else json_type(entries)
        raise StateFileError(f'"entries" must be a list, found {found}', damaged=True)
    parsed = []
    for index, entry in enumerate(entries):
        where = f"entries[{index}]"
        if not isinstance(entry, dict):
            raise StateFileError(
                f"{where} must be an object, found {json_type(entry)}", damaged=True
            )
        for name, (types, wanted) in _ENTRY_FIELDS.items():
            value = entry.get(name)
            if not isinstance(value, types) or isinstance(value, bool):
                found = "nothing" if name not in entry else json_type(value)
                raise StateFileError(
                    f'{where}: "{name}" must be {wanted}, found {found}', damaged=True
                )
        for name, (types, wanted) in _OPTIONAL_FIELDS.items():
            value = entry.get(name)
            if name in entry and not isinstance(value, types):
                raise StateFileError(
                    f'{where}: "{name}" must be {wanted}, found {json_type(value)}', damaged=True
                )
        if entry.get("registrar", "upm") not in _REGISTRARS:
            raise StateFileError(
                f'{where}: "registrar" must be one of {", ".join(_REGISTRARS)}', damaged=True
            )
        unknown = sorted(entry.keys() - _ENTRY_FIELDS.keys() - _OPTIONAL_FIELDS.keys())
        if unknown:
            raise StateFileError(f'{where}: unknown field "{unknown[0]}"', damaged=True)
        parsed.append(LedgerEntry(**entry))
    return parsed


def json_type(value: object) -> str:
    """What a JSON value is, for a message: never the value (state files may hold secrets)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- the state directory and its files, shared with tenants.py ----------------------------------


class UnchangedFile(Generic[T]):
    """What was parsed from a file, reused while the file on disk is the same one: same
    device, inode, size and modification time. connect-dev replaces its files atomically
    (a new inode each write), and an editor's save changes the time or the size, so a file
    changed by another process is always read again; an unchanged one costs one ``stat``."""

    def __init__(self, path: Path) -> None:
        self._path = path
        # One attribute, replaced whole: a writer thread's put is never seen half done.
        self._known: tuple[tuple[int, int, int, int], T] | None = None

    def get(self) -> T | None:
        stamp, known = _stamp(self._path), self._known
        return known[1] if known is not None and stamp is not None and stamp == known[0] else None

    def put(self, value: T) -> None:
        """Remember ``value`` for the file as it is now (just read or just written)."""
        stamp = _stamp(self._path)
        self._known = (stamp, value) if stamp is not None else None


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:  # missing or unreadable: read it, and let the read say what is wrong
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


# connect-dev's own files are small (a ledger of a few hosts, a tenant per site): one this large
# was not written by it, and reading it whole could exhaust memory.
MAX_STATE_BYTES = 10 * 1000 * 1000


class StateFileError(Exception):
    """A file in ``.connect-dev`` cannot be used. ``damaged``: it exists and was read, but its
    content is not what connect-dev writes (callers must not write over it); otherwise it could
    not be read at all, and ``hint`` says what to do."""

    def __init__(self, reason: str, hint: str | None = None, *, damaged: bool = False) -> None:
        super().__init__(reason)
        self.hint = hint
        self.damaged = damaged


def read_state_json(path: Path, *, limit: int = MAX_STATE_BYTES) -> object | None:
    """The JSON value in ``path``, or None when there is no such file.

    Raises ``StateFileError`` for a file that cannot be read (permissions, a directory, too
    large, ``.connect-dev`` not a directory) or is not UTF-8 JSON; whether the value has the
    right shape is the caller's to check.
    """
    if path.parent.exists() and not path.parent.is_dir():
        raise StateFileError(
            f"{path.parent} is a file, not a directory", _NOT_A_DIRECTORY.format(path.parent)
        )
    try:
        raw = read_input_file(path, limit=limit)
    except InputFileError as exc:
        if exc.missing:
            return None
        if exc.kind == "too_large":
            hint = "connect-dev never writes a file this large; look at what is in it."
            raise StateFileError(exc.reason, hint, damaged=True) from exc
        raise StateFileError(
            exc.reason,
            "Make it a readable file of yours (connect-dev writes it with mode 0600), or move "
            f"{path.parent} away to start afresh.",
        ) from exc
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise StateFileError(f"not UTF-8 text (byte {exc.start + 1})", damaged=True) from exc
    try:
        value: object = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StateFileError(
            f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})", damaged=True
        ) from exc
    except RecursionError as exc:  # hand-made nesting such as 10^5 ``[``
        raise StateFileError("nested too deeply to be connect-dev's JSON", damaged=True) from exc
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise StateFileError(f"not JSON connect-dev can read ({exc})", damaged=True) from exc
    if value is None:  # `null` must not read as "no file": every state file is an object
        raise StateFileError("expected a JSON object, found null", damaged=True)
    return value


_NOT_A_DIRECTORY = (
    "connect-dev keeps its state in a directory of that name; move the file away "
    "(`mv {0} {0}.bak`) and run the command again."
)


def ensure_state_dir(
    directory: Path, *, error: type[DevloopError] = LedgerError, probe: bool = False
) -> None:
    """Create the project's ``.connect-dev`` with mode 0700 if it is missing.

    0700 whatever the umask: it may hold tenant secrets, and its lock and ledger are nobody
    else's business. Raises ``error`` (a ``DevloopError``) naming the directory when it cannot
    be created, is not a directory, or (with ``probe``) cannot be written, so a command stops
    with one line before it starts anything rather than failing on its first write.
    """
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        if not directory.is_dir():
            raise error(
                f"{directory}: is a file, not the directory connect-dev keeps its state in",
                hint=_NOT_A_DIRECTORY.format(directory),
            ) from None
    except FileNotFoundError:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            directory.mkdir(mode=0o700, exist_ok=True)
        except OSError as exc:
            raise _cannot_create(directory, exc, error) from exc
        os.chmod(directory, 0o700)
    except OSError as exc:
        raise _cannot_create(directory, exc, error) from exc
    else:
        # mkdir's mode is masked by the umask; an unusual umask must not loosen it either.
        os.chmod(directory, 0o700)
    if probe:
        try:
            descriptor, name = tempfile.mkstemp(prefix=".probe.", dir=directory)
        except OSError as exc:
            raise error(
                f"{directory}: cannot write here: {exc.strerror}",
                hint="connect-dev keeps its ledger and lock in this directory; make it "
                "writable by you (chmod u+rwx), or remove it so connect-dev creates it again.",
            ) from exc
        os.close(descriptor)
        with contextlib.suppress(OSError):
            os.unlink(name)


def _cannot_create(directory: Path, exc: OSError, error: type[DevloopError]) -> DevloopError:
    return error(
        f"{directory}: cannot create connect-dev's state directory: {exc.strerror}",
        hint=f"Make {directory.parent} writable by you, or run connect-dev from a project "
        "directory you own.",
    )


def _atomic_write(path: Path, text: str) -> None:
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

        ensure_state_dir(self.path.parent, probe=True)
        try:
            # 0600 like every other file in .connect-dev/, whatever the umask.
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise self._unusable(exc) from exc
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
        except OSError as exc:  # e.g. a file system without locks
            handle.close()
            raise self._unusable(exc) from exc
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError as exc:
            handle.close()
            raise self._unusable(exc) from exc
        self._handle = handle

    def _unusable(self, exc: OSError) -> LedgerError:
        return LedgerError(
            f"{self.path}: cannot use the project lock: {exc.strerror}",
            hint=f"It must be a file you can write (mode 0600) in {self.path.parent}; remove "
            "it if it is anything else: connect-dev creates it again.",
        )

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


def new_entry(
    host: str,
    url: str,
    username: str,
    key: str,
    *,
    registrar: str = "upm",
    site: str = "",
    product: str = "",
    environment: str = "",
    revision: str = "",
) -> LedgerEntry:
    """An entry written by this process now (not yet confirmed by the host)."""
    return LedgerEntry(
        host=host,
        url=url,
        username=username,
        key=key,
        since=time.time(),
        pid=os.getpid(),
        registrar=registrar,
        site=site,
        product=product,
        environment=environment,
        revision=revision,
    )

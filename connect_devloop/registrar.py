"""Per-host installs: single-flight, latest wins, leading edge first.

Each host gets one ``HostRegistrar`` with one worker task, so at most one install is in flight per
host. ``request()`` never blocks: it records the newest wanted ``Target`` and wakes the worker.
How an install is done is the host's backend's (``registrars/``: UPM or Forge); when and how
often is decided here, the same for every backend.

Timing, chosen so a lone save installs at once and a burst of saves costs two installs:

- *Leading edge*: a request that arrives while the worker is idle and more than ``settle``
  seconds after the previous request is installed immediately — no debounce wait.
- *Burst*: a request that arrives while an install is running, or within ``settle`` of the
  previous request, only marks the host dirty. When the running install ends, the worker waits
  until no request has come for ``settle`` seconds, then installs the newest target once.

A formatter that writes twice on save, or an editor's save-all, therefore installs the first
version immediately and the final one ``settle`` seconds after the last write.

One host never holds up another: each worker first removes what a crashed run left on its own
host (reason ``recovery``), or takes over what an earlier run kept there on purpose (Forge's
``on_exit = "keep"``), then installs. A host that does not answer at all is reported as such
once its attempt has been silent for ``silence`` seconds (``host_answering``), and an install
that failed because the host could not be reached is tried again in the background with a
growing pause, until it answers. On close, an install that has not reached its point of no
return (UPM: its POST; Forge: ``forge deploy``) is cancelled at once: nothing of it can be on
the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace

from .config import HostConfig
from .errors import DevloopError, HostUnreachableError, LedgerError
from .events import (
    Deregistered,
    DeregistrationFailed,
    Event,
    HostAnswering,
    Kept,
    Registered,
    Registering,
    RegistrationFailed,
)
from .ledger import Ledger, LedgerEntry
from .registrars.base import DESCRIPTOR_PATH, Installed, RegistrarBackend, Target
from .registrars.upm import UpmBackend, UpmConversation
from .tasks import keep_running

__all__ = [
    "DEFAULT_SETTLE_SECONDS",
    "DEFAULT_SILENCE_SECONDS",
    "DESCRIPTOR_PATH",
    "RETRY_FIRST_SECONDS",
    "RETRY_MAX_SECONDS",
    "HostRegistrar",
    "Target",
]

logger = logging.getLogger(__name__)

DEFAULT_SETTLE_SECONDS = 0.2
# A host silent this long in one attempt is reported as not answering, and `ready` stops
# waiting for it (docs/troubleshooting.md, "not answering").
DEFAULT_SILENCE_SECONDS = 5.0
# Pauses before trying an unreachable host again: 2, 4, 8, 16, 30, 30… seconds.
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 30.0


class HostRegistrar:
    def __init__(
        self,
        host: HostConfig,
        backend: RegistrarBackend | UpmConversation | None,
        ledger: Ledger,
        emit: Callable[[Event], None],
        *,
        settle: float = DEFAULT_SETTLE_SECONDS,
        unavailable: DevloopError | None = None,
        preflight: Callable[[Target], Awaitable[None]] | None = None,
        explain_failure: Callable[[DevloopError, float], DevloopError] | None = None,
        callbacks_reported: Callable[[], Awaitable[None]] | None = None,
        silence: float = DEFAULT_SILENCE_SECONDS,
        retry_first: float = RETRY_FIRST_SECONDS,
    ) -> None:
        """``backend`` installs on the host (``registrars/``). A UPM client, or None with
        ``unavailable`` saying why (the host has no credentials: every request then reports
        that error instead of calling the host), is taken as the UPM backend around it.
        ``preflight`` runs before each install; when it raises a DevloopError the install
        fails with that error before its point of no return (the supervisor checks that the
        tunnel serves the descriptor). ``explain_failure(error, started)`` may reword an
        install failure with what the proxy saw since ``started`` (``time.monotonic()``),
        e.g. that the add-on server did not answer the installed callback.
        ``callbacks_reported()`` is awaited before an install's or uninstall's outcome is
        reported: the events of the lifecycle callbacks the host made meanwhile come first
        (the proxy waits, bounded, for them)."""
        self.host = host
        if not isinstance(backend, RegistrarBackend):
            backend = UpmBackend(host, backend, unavailable=unavailable)
        self.backend: RegistrarBackend = backend
        self._preflight = preflight
        self._explain_failure = explain_failure
        self._callbacks_reported = callbacks_reported
        self._ledger = ledger
        self._emit = emit
        self._settle = settle
        self._wanted: Target | None = None
        self._reason = "startup"
        self._force = False
        self._forcing = False  # the running install was forced (installs an unchanged revision)
        self._installed: Target | None = None
        # Key -> the backend revision the host confirmed (kept from an earlier run, or
        # installed by this one); only backends with revisions fill it.
        self._confirmed: dict[str, str] = {}
        self._last_request_at = float("-inf")
        self._burst = False
        self._busy = False
        self._closed = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._worker: asyncio.Task[None] | None = None
        self._silence = silence
        self._retry_first: float = retry_first
        self._retry_delay: float = retry_first
        self._retry: asyncio.TimerHandle | None = None
        self._attempt_started: float | None = None  # monotonic start of the running install
        # The running install passed its point of no return: the host may have it.
        self._committed = False
        self._reported_silent = False
        self._needs_recovery = False

    @property
    def installed(self) -> Target | None:
        return self._installed

    def keeps(self, entry: LedgerEntry) -> bool:
        """True when ``entry`` is this host's and stays in the ledger on purpose when closing
        (the backend keeps its installs on exit)."""
        return self.backend.keep_on_exit and entry.url == self.host.base_url

    def silent_for(self) -> float | None:
        """Seconds the running install has waited without any answer from the host; None
        when nothing runs or the host answered during this attempt."""
        if self._attempt_started is None:
            return None
        answered = self.backend.last_reply_at
        if answered is not None and answered >= self._attempt_started:
            return None
        return time.monotonic() - self._attempt_started

    def start(self, *, recover: bool = False) -> None:
        """Start the worker; with ``recover``, it first deals with what the ledger lists for
        this host: a crashed run's leftovers are uninstalled, what an earlier run kept on
        purpose is taken over. ``wait_idle`` waits for that too."""
        self._needs_recovery = recover
        if recover:
            self._idle.clear()
        self._worker = asyncio.create_task(
            keep_running(f"install worker of {self.host.name}", self._work, self._emit),
            name=f"registrar:{self.host.name}",
        )

    async def _work(self) -> None:
        """The worker's body; after a crash ``keep_running`` calls it again."""
        if self._needs_recovery:
            # Once only: after a crash this run's own installs are in the ledger too, and
            # must not be taken for a crashed run's leftovers.
            self._needs_recovery = False
            try:
                with self._watching_silence():
                    await self._recover()
            finally:
                if not self._wake.is_set():
                    self._idle.set()
        if self._wanted is not None and self._wanted != self._installed:
            self._wake.set()  # restarted after a crash: what was asked is still wanted
        await self._run()

    async def _recover(self) -> None:
        try:
            entries = self._ledger.entries_for(self.host.base_url)
        except LedgerError as exc:
            self._emit(DeregistrationFailed(host=self.host.name, error=exc.message, hint=exc.hint))
            return
        for entry in entries:
            kept = self.backend.kept_revision(entry)
            if kept is None:
                await self._uninstall(entry, reason="recovery")
            elif kept:
                self._confirmed[entry.key] = kept

    def request(self, target: Target, reason: str, *, force: bool = False) -> None:
        """Ask for ``target`` to be installed; returns at once. The newest request wins."""
        if self._closed:
            return
        now = time.monotonic()
        if self._busy or now - self._last_request_at < self._settle:
            self._burst = True
        self._last_request_at = now
        self._wanted = target
        self._reason = reason
        self._force = self._force or force
        self._idle.clear()
        self._wake.set()

    async def wait_idle(self) -> None:
        """Wait until every request made so far has been handled (installed or failed)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._burst:
                await self._wait_for_quiet()
            self._burst = False
            target, reason, force = self._wanted, self._reason, self._force
            self._force = False
            # Closing: an install that could not be abandoned past its point of no return must
            # not start now (the close would have to wait for all of it).
            starts = not self._closed or self.backend.interruptible
            if target is not None and (force or target != self._installed) and starts:
                self._busy = True
                self._committed = False
                self._forcing = force
                try:
                    await self._install(target, reason)
                finally:
                    self._busy = False
            if not self._wake.is_set():
                self._idle.set()

    @contextlib.contextmanager
    def _watching_silence(self) -> Iterator[None]:
        """Calls to the host inside are one attempt: reported as not answering when the host
        says nothing for ``silence`` seconds, and as answering again when it then does."""
        self._attempt_started = time.monotonic()
        watch = asyncio.get_running_loop().call_later(self._silence, self._check_silence)
        try:
            yield
        finally:
            watch.cancel()
            self._note_answer()
            self._attempt_started = None

    def _check_silence(self) -> None:
        silent = self.silent_for()
        if silent is not None and not self._reported_silent:
            self._reported_silent = True
            self._emit(HostAnswering(host=self.host.name, answering=False, seconds=silent))

    def _note_answer(self) -> None:
        """After an attempt: a host reported silent that answered during it is back."""
        if self._reported_silent and self._attempt_started is not None:
            silent = self.silent_for()
            if silent is None:
                self._reported_silent = False
                self._emit(
                    HostAnswering(
                        host=self.host.name,
                        answering=True,
                        seconds=round(time.monotonic() - self._attempt_started, 1),
                    )
                )

    def _retry_later(self, target: Target) -> float:
        """Ask for ``target`` again after a growing pause (the host could not be reached)."""
        delay = self._retry_delay
        self._retry_delay = min(delay * 2, RETRY_MAX_SECONDS)
        if self._retry is not None:
            self._retry.cancel()

        def retry() -> None:
            self._retry = None
            if self._wanted == target and self._installed != target:
                self.request(target, "retry")

        self._retry = asyncio.get_running_loop().call_later(delay, retry)
        return delay

    async def _wait_for_quiet(self) -> None:
        # The deadline moves each time a request arrives, so sleep to it and look again.
        while (remaining := self._last_request_at + self._settle - time.monotonic()) > 0:  # noqa: ASYNC110
            await asyncio.sleep(remaining)

    async def _install(self, target: Target, reason: str) -> None:
        kind = self.backend.kind
        self._emit(
            Registering(host=self.host.name, reason=reason, digest=target.digest, registrar=kind)
        )
        started = time.monotonic()
        # The preflight (the tunnel serves our descriptor) runs while the backend prepares
        # (UPM: the host is asked for its dev mode and a token): it only has to pass before
        # the point of no return, which is what makes the host fetch the descriptor. A lone
        # save installs that much sooner.
        preflight = (
            asyncio.ensure_future(self._preflight(target)) if self._preflight is not None else None
        )
        prepared = target

        async def commit() -> None:
            if preflight is not None:
                await preflight
            # Right before the point of no return, and on disk before it: if we die
            # mid-install the next run still cleans up, and a host that never accepted our
            # credentials is never listed.
            await self._ledger.write_record(self.backend.ledger_entry(prepared))
            self._committed = True
            if prepared.revision:
                # Past this point what the host has is not known until the install succeeds
                # (a deploy may land and its install fail): nothing may be skipped as there.
                self._confirmed.pop(prepared.key, None)
                self._installed = None

        unchanged = False
        try:
            with self._watching_silence():
                prepared = await self.backend.prepare(target)
                if self._already_there(prepared):
                    unchanged = True
                    installed = Installed(key=prepared.key)
                else:
                    installed = await self.backend.install(prepared, commit)
        except DevloopError as exc:
            if isinstance(exc, HostUnreachableError) and exc.retry:
                # The network, not the add-on: try again until the host answers.
                delay = self._retry_later(target)
                hint = f"{exc.hint} " if exc.hint else ""
                self._emit(
                    RegistrationFailed(
                        host=self.host.name,
                        error=exc.message,
                        hint=f"{hint}connect-dev tries again in {delay:g} s.",
                        registrar=kind,
                    )
                )
                return
            if self._explain_failure is not None:
                exc = self._explain_failure(exc, started)
            await self._after_callbacks()
            self._emit(
                RegistrationFailed(
                    host=self.host.name, error=exc.message, hint=exc.hint, registrar=kind
                )
            )
            return
        except Exception as exc:  # a bug must not kill the worker of this host
            logger.debug("install on %s failed unexpectedly", self.host.name, exc_info=exc)
            self._emit(
                RegistrationFailed(
                    host=self.host.name,
                    error=f"unexpected error: {type(exc).__name__}",
                    hint="This is a connect-devloop bug; please report it with the output of "
                    "the same run with -v (it has the traceback).",
                    registrar=kind,
                )
            )
            return
        finally:
            if preflight is not None:
                _settle(preflight)
        duration_ms = round((time.monotonic() - started) * 1000)
        if prepared.revision and not unchanged:
            await self._confirm(prepared)
        await self._after_callbacks()
        # Only now: had the wait above failed, a restarted worker installs this target again
        # rather than take it as done without its `registered`.
        self._installed = target
        self._retry_delay = self._retry_first
        self._emit(
            Registered(
                host=self.host.name,
                key=installed.key,
                duration_ms=duration_ms,
                digest=target.digest,
                enabled=installed.enabled,
                registrar=kind,
                unchanged=unchanged,
            )
        )
        if installed.key != target.key:
            logger.warning(
                "%s installed key %s, expected %s", self.host.name, installed.key, target.key
            )
        await self._remove_other_keys(target.key)

    def _already_there(self, prepared: Target) -> bool:
        """The host confirmed exactly this revision already (and the install is not forced)."""
        return (
            bool(prepared.revision)
            and not self._forcing
            and self._confirmed.get(prepared.key) == prepared.revision
        )

    async def _confirm(self, prepared: Target) -> None:
        """Record that the host has ``prepared.revision``: a later run that keeps the install
        knows what is there. A ledger that cannot be written costs only that knowledge."""
        self._confirmed[prepared.key] = prepared.revision
        entry = replace(self.backend.ledger_entry(prepared), confirmed=True)
        try:
            await self._ledger.write_record(entry)
        except LedgerError as exc:
            logger.warning("%s: %s", self.host.name, exc.message)

    async def _after_callbacks(self) -> None:
        if self._callbacks_reported is not None:
            await self._callbacks_reported()

    async def _remove_other_keys(self, current_key: str) -> None:
        """After the add-on key was renamed in the descriptor, the old key is still installed."""
        try:
            stale = [
                e for e in self._ledger.entries_for(self.host.base_url) if e.key != current_key
            ]
        except LedgerError as exc:
            self._emit(DeregistrationFailed(host=self.host.name, error=exc.message, hint=exc.hint))
            return
        for entry in stale:
            await self._uninstall(entry, reason="key_changed")

    async def close(self, grace: float) -> None:
        """Stop taking requests, let a running install finish (or cancel it at once when it
        has not reached its point of no return: nothing of it is on the host), then uninstall
        every key this host may have, or, when the backend keeps its installs on exit, report
        them as kept. Bounded by ``grace`` seconds in all, except that an install past its
        point of no return that may not be interrupted (a running ``forge deploy``) is waited
        for first, however long it takes."""
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._busy and self._committed and not self.backend.interruptible:
            await self._idle.wait()
        try:
            async with asyncio.timeout(grace):
                if self._busy and self._committed:
                    await self._idle.wait()
                await self._stop_worker()
                if self.backend.keep_on_exit:
                    self._report_kept()
                else:
                    await self.uninstall_all(reason="shutdown")
        except TimeoutError:
            await self._stop_worker()
            self._emit(
                DeregistrationFailed(
                    host=self.host.name,
                    error=f"uninstall did not finish within {grace:g} s",
                    hint=self._after_timeout_hint(),
                )
            )

    async def retire(self, *, wait: bool = True) -> None:
        """Stop taking requests and stop the worker, uninstalling nothing: a config reload
        replaces this registrar (and calls ``uninstall_all`` itself when the host's URL is
        gone). An install not past its point of no return is cancelled at once; one past it
        is waited for when ``wait`` (the caller bounds the wait)."""
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if wait and self._busy and self._committed:
            await self._idle.wait()
        await self._stop_worker()
        self._idle.set()  # whoever waits for this host's outcome (`ready`) stops waiting

    def _report_kept(self) -> None:
        try:
            entries = self._ledger.entries_for(self.host.base_url)
        except LedgerError as exc:
            self._emit(DeregistrationFailed(host=self.host.name, error=exc.message, hint=exc.hint))
            return
        for entry in entries:
            revision = entry.revision if entry.confirmed else ""
            self._emit(Kept(host=self.host.name, key=entry.key, revision=revision))

    def _after_timeout_hint(self) -> str:
        try:
            left = self._ledger.entries_for(self.host.base_url)
        except LedgerError:
            left = []
        if left:
            return "The ledger keeps the entry: run `connect-dev down` to retry."
        return "Nothing is left in the ledger for this host: no install reached it."

    async def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def uninstall_all(self, reason: str) -> bool:
        """Uninstall every key the ledger lists for this host (kept ones too). True when all
        are gone."""
        try:
            entries = self._ledger.entries_for(self.host.base_url)
        except LedgerError as exc:
            self._emit(DeregistrationFailed(host=self.host.name, error=exc.message, hint=exc.hint))
            return False
        results = [await self._uninstall(entry, reason) for entry in entries]
        return all(results)

    async def _uninstall(self, entry: LedgerEntry, reason: str) -> bool:
        key = entry.key
        try:
            was_installed = await self.backend.uninstall(entry)
        except DevloopError as exc:
            self._emit(
                DeregistrationFailed(host=self.host.name, key=key, error=exc.message, hint=exc.hint)
            )
            return False
        try:
            await self._ledger.write_removal(self.host.base_url, key)
        except LedgerError as exc:
            self._emit(
                DeregistrationFailed(host=self.host.name, key=key, error=exc.message, hint=exc.hint)
            )
            return False
        self._confirmed.pop(key, None)
        if self._installed is not None and self._installed.key == key:
            self._installed = None
        await self._after_callbacks()
        self._emit(
            Deregistered(host=self.host.name, key=key, reason=reason, was_installed=was_installed)
        )
        return True


def _settle(task: asyncio.Future[None]) -> None:
    """Cancel ``task`` if it still runs, else take its outcome (its error, if any, was
    reported by whoever awaited it, or does not matter since the install failed first)."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()

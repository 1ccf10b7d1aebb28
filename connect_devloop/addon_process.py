"""The add-on server as a process `up` runs: started, watched, restarted, stopped.

With ``[addon] command``, ``up`` starts the add-on itself, in a session (and process group) of
its own so that the user's Ctrl-C reaches only connect-dev, which must uninstall from every
host while the add-on still answers the ``uninstalled`` callbacks, and so that every process
the command starts (``npm start`` → node) is stopped with it:

- Its environment is ``up``'s own, plus ``CONNECT_DEV_BASE_URL`` and ``AC_LOCAL_BASE_URL``
  (the public URL; ACE reads the second), ``PORT`` (the port of ``[addon] url``),
  ``PYTHONUNBUFFERED=1`` (unless set: a Python add-on's prints would otherwise come in 8 KB
  lumps), and then ``[addon] env``. Only the names are ever shown.
- After each start, ``url`` + ``ready_path`` is polled until it answers (any HTTP status);
  the first install waits for that, up to ``ready_timeout``.
- Its output is read as it comes, line by line, from both streams: each line is an
  ``addon_output`` event, at most ``LINES_PER_WINDOW`` per ``WINDOW_SECONDS`` per stream (then
  one line says how many were dropped), so a chatty add-on cannot flood the bus. The last
  ``LAST_LINES`` lines go into the ``addon_exited`` event.
- It is stopped with SIGTERM to its process group, then SIGKILL after ``stop_timeout``: for
  a restart (a save of a ``restart_on`` file, debounced; a new public URL), and on exit.
- When it ends by itself it is started again after 0.5 s, doubling up to 10 s; the pause goes
  back to 0.5 s once a run lasted 30 s.
- Its pid is kept in ``.connect-dev/addon.json`` while it runs: a ``up`` killed outright (or
  quit with a second Ctrl-C) leaves it running, and the next ``up`` (or ``down``) stops it.

Without a command, ``AddonProbe`` asks ``url`` + ``ready_path`` every few seconds whether the
add-on answers, and reports a change (``addon_status``), so a stopped server is seen before an
install fails on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shlex
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import watchfiles

from .config import Config
from .errors import DevloopError
from .events import (
    AddonExited,
    AddonOutput,
    AddonRestarting,
    AddonStarted,
    AddonStatus,
    Event,
    Warning,
)
from .tasks import keep_running
from .tunnel.leftover import ProcessFile

__all__ = [
    "LAST_LINES",
    "LINES_PER_WINDOW",
    "WINDOW_SECONDS",
    "AddonProbe",
    "AddonProcess",
    "GlobSet",
    "addon_port",
    "stop_leftover_addon",
]

logger = logging.getLogger(__name__)

LINES_PER_WINDOW = 50
WINDOW_SECONDS = 0.1
LAST_LINES = 20
MAX_LINE_CHARS = 4000  # a longer line is cut: one minified bundle must not fill the screen
RESTART_FIRST_SECONDS = 0.5
RESTART_MAX_SECONDS = 10.0
HEALTHY_RUN_SECONDS = 30.0  # a run this long resets the pause before the next restart
RESTART_DEBOUNCE_SECONDS = 0.3
READY_POLL_SECONDS = 0.1
SLOW_POLL_SECONDS = 1.0  # after ready_timeout passed without an answer
PROBE_INTERVAL_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2.0
OUTPUT_DRAIN_SECONDS = 1.0  # for the last lines after an exit (a grandchild may hold the pipe)
LEFTOVER_FILE = "addon.json"

Emit = Callable[[Event], None]


def addon_port(url: str) -> int:
    """The port of ``[addon] url``: the add-on must listen there (``PORT``)."""
    parts = urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def stop_leftover_addon(config: Config) -> int | None:
    """Stop the add-on process (and its process group) an earlier ``up`` left running, if the
    recorded pid still runs the recorded command; return its pid when one was stopped.
    Blocking: call it in a thread."""
    pid = ProcessFile(config.ledger_path.parent / LEFTOVER_FILE).stop_leftover()
    if pid is not None:
        # It led its own process group: what it started goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
    return pid


class AddonProcess:
    """The add-on server run from ``[addon] command``. ``start`` once, ``stop`` once."""

    def __init__(self, config: Config, emit: Emit) -> None:
        self._config = config
        self._settings = config.addon
        self._emit = emit
        self._url = config.addon_url
        self._ready_url = config.addon_url + self._settings.ready_path
        self._leftover = ProcessFile(config.ledger_path.parent / LEFTOVER_FILE)
        self._base_url = ""
        self._process: asyncio.subprocess.Process | None = None
        self._started_at = 0.0
        self._last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self._readers: list[asyncio.Task[None]] = []
        self._readiness: asyncio.Task[None] | None = None
        self._answering = asyncio.Event()
        self._wake = asyncio.Event()
        self._restart: tuple[str, str, list[str]] | None = None
        self._closing = False
        self._supervisor: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None and process.returncode is None else None

    @property
    def answering(self) -> bool:
        return self._answering.is_set()

    async def start(self, base_url: str) -> None:
        """Start the add-on for the public URL ``base_url``, and keep it running. Raises
        ``ConfigError`` when the command cannot be run at all (not found, no such ``cwd``)."""
        self._base_url = base_url
        self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        left = await asyncio.to_thread(stop_leftover_addon, self._config)
        if left is not None:
            self._emit(Warning(message=f"stopped the add-on (pid {left}) an earlier run left"))
        await self._spawn("startup")
        self._supervisor = asyncio.create_task(
            keep_running("add-on process", self._supervise, self._emit), name="addon process"
        )

    async def wait_answering(self, seconds: float) -> bool:
        """Wait until the add-on answers, at most ``seconds``; True when it does."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._answering.wait()
        return self._answering.is_set()

    def restart(self, reason: str, detail: str, paths: Sequence[str] = ()) -> None:
        """Stop the add-on and start it again (``reason``: files_changed | tunnel_changed).
        Returns at once; ``wait_answering`` waits for the new one."""
        if self._closing:
            return
        self._emit(AddonRestarting(reason=reason, detail=detail, paths=list(paths)))
        self._answering.clear()
        self._restart = (reason, detail, list(paths))
        self._wake.set()

    def set_base_url(self, base_url: str) -> None:
        """The public URL the next start is given."""
        self._base_url = base_url

    async def stop(self) -> None:
        """Stop the add-on (SIGTERM, then SIGKILL after ``stop_timeout``) and everything it
        started; it is not started again."""
        self._closing = True
        self._wake.set()
        if self._supervisor is not None:
            # It returns at its next step: at most one restart's stop and start.
            try:
                async with asyncio.timeout(self._settings.stop_timeout * 2 + 5):
                    await self._supervisor
            except TimeoutError:
                self._supervisor.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._supervisor
            except Exception:  # reported by keep_running already
                logger.debug("the add-on supervisor ended with an error", exc_info=True)
        process = self._process
        if process is not None:
            await self._terminate(process, "shutdown")
        await self._cancel_readiness()
        if self._session is not None:
            await self._session.close()

    # --- the process ------------------------------------------------------------------------

    def _environment(self) -> tuple[dict[str, str], list[str]]:
        ours = {
            "CONNECT_DEV_BASE_URL": self._base_url,
            "AC_LOCAL_BASE_URL": self._base_url,
            "PORT": str(addon_port(self._url)),
        }
        if "PYTHONUNBUFFERED" not in os.environ:
            ours["PYTHONUNBUFFERED"] = "1"
        configured = {name: value.reveal() for name, value in self._settings.env}
        names = [*ours, *(name for name in configured if name not in ours)]
        return {**os.environ, **ours, **configured}, names

    async def _spawn(self, reason: str) -> None:
        """Start the command. Raises ``ConfigError`` when it cannot be started."""
        command = self._settings.command
        cwd = self._settings.cwd or self._config.project_dir
        if not cwd.is_dir():
            raise self._config.error(
                "addon.cwd" if self._settings.cwd else "addon.command",
                f"cannot start the add-on in {cwd}: no such directory",
                hint="Fix [addon] cwd in connect-dev.toml (relative to the file).",
            )
        env, names = self._environment()
        try:
            process = await asyncio.create_subprocess_exec(
                *command,
                cwd=cwd,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise self._config.error(
                "addon.command",
                f"cannot start the add-on: {command[0]!r} was not found",
                hint="Write the program as you would in a shell in [addon] cwd (it is looked up "
                'on PATH), e.g. command = "python app.py"; no shell runs it, so use '
                'command = ["sh", "-c", "..."] for shell syntax.',
            ) from exc
        except PermissionError as exc:
            raise self._config.error(
                "addon.command",
                f"cannot start the add-on: {command[0]!r}: permission denied",
                hint="Make it executable (chmod +x), or name its interpreter first, e.g. "
                'command = "python app.py".',
            ) from exc
        except OSError as exc:
            raise self._config.error(
                "addon.command", f"cannot start the add-on: {command[0]!r}: {exc.strerror or exc}"
            ) from exc
        self._process = process
        self._started_at = time.monotonic()
        self._last_lines = deque(maxlen=LAST_LINES)
        await asyncio.to_thread(self._leftover.record, process.pid)
        self._emit(
            AddonStarted(
                pid=process.pid,
                command=shlex.join(command),
                reason=reason,
                base_url=self._base_url,
                port=addon_port(self._url),
                env=names,
            )
        )
        lines = self._last_lines
        self._readers = [
            asyncio.create_task(
                keep_running(
                    f"add-on {name} reader",
                    _OutputReader(name, stream, self._emit, lines).run,
                    self._emit,
                ),
                name=f"addon {name}",
            )
            for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
            if stream is not None
        ]
        self._answering.clear()
        self._readiness = asyncio.create_task(
            keep_running("add-on readiness check", lambda: self._await_ready(process), self._emit),
            name="addon readiness",
        )

    async def _supervise(self) -> None:
        """Restart the add-on when asked, and when it ends by itself (with a growing pause)."""
        pause = RESTART_FIRST_SECONDS
        while not self._closing:
            process = self._process
            if process is not None and process.returncode is None:
                if self._restart is None:
                    self._wake.clear()
                    exited = asyncio.ensure_future(process.wait())
                    woken = asyncio.ensure_future(self._wake.wait())
                    try:
                        await asyncio.wait((exited, woken), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        exited.cancel()
                        woken.cancel()
                if self._closing:
                    return
                if process.returncode is None:  # woken for a restart
                    restart, self._restart = self._restart, None
                    if restart is not None:
                        await self._terminate(process, "restart")
                        await self._start_again(restart[0])
                    continue
            if process is not None and process.returncode is not None and process is self._process:
                ran = time.monotonic() - self._started_at
                if ran >= HEALTHY_RUN_SECONDS:
                    pause = RESTART_FIRST_SECONDS
                await self._finish(process, "crashed", restart_in=pause)
                self._process = None
            # Crashed (or could not be started): wait, unless asked to restart now.
            self._wake.clear()
            if self._restart is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):
                        await self._wake.wait()
                pause = min(pause * 2, RESTART_MAX_SECONDS)
            if self._closing:
                return
            restart, self._restart = self._restart, None
            await self._start_again(restart[0] if restart is not None else "crashed")

    async def _start_again(self, reason: str) -> None:
        if self._closing:
            return
        try:
            await self._spawn(reason)
        except DevloopError as exc:
            # The command worked before: tell, and try again after the pause.
            self._process = None
            self._emit(Warning(message=f"{exc.message}; trying again shortly", hint=exc.hint))

    async def _terminate(self, process: asyncio.subprocess.Process, reason: str) -> None:
        """SIGTERM to the process group; SIGKILL to what is left after ``stop_timeout``."""
        self._answering.clear()
        await self._cancel_readiness()
        grace = self._settings.stop_timeout
        deadline = time.monotonic() + grace
        forced = False
        _signal_group(process.pid, signal.SIGTERM)
        try:
            async with asyncio.timeout(grace):
                await process.wait()
        except TimeoutError:
            forced = True
            _signal_group(process.pid, signal.SIGKILL)
            await process.wait()
        # Its children may still be finishing: they get what is left of the grace period.
        while _group_alive(process.pid) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # (no event tells when a process group is empty)
        if _group_alive(process.pid):
            forced = True
            _signal_group(process.pid, signal.SIGKILL)
        await self._finish(process, reason, forced=forced)
        if process is self._process:
            self._process = None

    async def _finish(
        self,
        process: asyncio.subprocess.Process,
        reason: str,
        *,
        restart_in: float | None = None,
        forced: bool = False,
    ) -> None:
        """The process has exited: stop what it left running, take in its last lines, and
        report it."""
        await self._cancel_readiness()
        self._answering.clear()
        if reason == "crashed":
            # What it started dies with it: a server left holding the port would make every
            # restart fail.
            _signal_group(process.pid, signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.stop_timeout):
                    while _group_alive(process.pid):  # noqa: ASYNC110 - no event for a group
                        await asyncio.sleep(0.05)
            _signal_group(process.pid, signal.SIGKILL)
        readers, self._readers = self._readers, []
        if readers:
            _, pending = await asyncio.wait(readers, timeout=OUTPUT_DRAIN_SECONDS)
            for reader in pending:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.to_thread(self._leftover.clear)
        code = process.returncode
        killed_by = None
        if code is not None and code < 0:
            with contextlib.suppress(ValueError):
                killed_by = signal.Signals(-code).name
            code = None if killed_by else code
        self._emit(
            AddonExited(
                pid=process.pid,
                code=code,
                signal=killed_by,
                reason=reason,
                last_lines=list(self._last_lines),
                restart_in=restart_in,
                forced=forced,
                ran_seconds=round(time.monotonic() - self._started_at, 1),
            )
        )

    async def _cancel_readiness(self) -> None:
        task, self._readiness = self._readiness, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _await_ready(self, process: asyncio.subprocess.Process) -> None:
        """Poll until the add-on answers (then ``addon_status`` says so); after
        ``ready_timeout`` without an answer, say that and go on polling, more slowly."""
        assert self._session is not None
        started = self._started_at
        timeout = self._settings.ready_timeout
        reported = False
        while process.returncode is None:
            why = await probe(self._session, self._ready_url, PROBE_TIMEOUT_SECONDS)
            if process.returncode is not None:
                return
            elapsed = time.monotonic() - started
            if why is None:
                # Recorded again now that it serves: a wrapper (a pyenv shim, a script that
                # ends with exec) has become the real program, whose command line is recorded.
                await asyncio.to_thread(self._leftover.record, process.pid)
                self._answering.set()
                self._emit(
                    AddonStatus(
                        answering=True, url=self._ready_url, seconds=round(max(elapsed, 0.1), 1)
                    )
                )
                return
            if not reported and elapsed >= timeout:
                reported = True
                self._emit(
                    AddonStatus(
                        answering=False,
                        url=self._ready_url,
                        detail=f"no answer within {timeout:g} s of its start ({why})",
                        hint=f"Does it listen on PORT ({addon_port(self._url)}), the port of "
                        "[addon] url? Its output is in the add-on panel (addon_output lines). "
                        "Any HTTP answer at [addon] ready_path counts.",
                    )
                )
            await asyncio.sleep(SLOW_POLL_SECONDS if reported else READY_POLL_SECONDS)

    # --- restart_on --------------------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Restart the add-on when files matching ``restart_on`` change: once per burst of
        changes, ``RESTART_DEBOUNCE_SECONDS`` after the last one."""
        globs = GlobSet(self._config.project_dir, self._settings.restart_on)
        if not globs.patterns:
            return
        async for paths in globs.changes(stop, RESTART_DEBOUNCE_SECONDS):
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            self.restart("files_changed", f"{shown} changed", paths)


class _OutputReader:
    """One stream of the add-on: each line an ``addon_output`` event, rate-limited."""

    def __init__(
        self, stream_name: str, stream: asyncio.StreamReader, emit: Emit, last: deque[str]
    ) -> None:
        self._name = stream_name
        self._stream = stream
        self._emit = emit
        self._last = last
        self._window_start = float("-inf")
        self._shown = 0
        self._dropped = 0
        self._timer: asyncio.TimerHandle | None = None

    async def run(self) -> None:
        pending = b""
        try:
            while chunk := await self._stream.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._line(raw)
                if len(pending) > MAX_LINE_CHARS * 4:  # no newline in sight: cut it here
                    self._line(pending)
                    pending = b""
            if pending:
                self._line(pending)
        finally:
            self._report_dropped()

    def _line(self, raw: bytes) -> None:
        text = clean_line(raw.decode("utf-8", "replace"))
        if not text.strip():
            return
        self._last.append(text)
        now = time.monotonic()
        if now - self._window_start >= WINDOW_SECONDS:
            self._report_dropped()
            self._window_start, self._shown = now, 0
        if self._shown < LINES_PER_WINDOW:
            self._shown += 1
            self._emit(AddonOutput(stream=self._name, line=text))
            return
        self._dropped += 1
        if self._timer is None:
            wait = self._window_start + WINDOW_SECONDS - now
            self._timer = asyncio.get_running_loop().call_later(wait, self._report_dropped)

    def _report_dropped(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            self._emit(
                AddonOutput(
                    stream=self._name,
                    line=f"… {dropped} line{'s' if dropped != 1 else ''} dropped",
                    dropped=dropped,
                )
            )


# CSI (colours, cursor moves) and OSC (titles, links) sequences, then other control characters.
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_line(text: str) -> str:
    """A line of output fit for a log and a terminal: without colour codes or other control
    characters (an add-on must not be able to move our cursor), and at most
    ``MAX_LINE_CHARS`` long."""
    text = _CONTROLS.sub("", _ESCAPES.sub("", text.rstrip("\r")))
    if len(text) > MAX_LINE_CHARS:
        text = text[:MAX_LINE_CHARS] + f"… ({len(text) - MAX_LINE_CHARS} more characters)"
    return text


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group (a session we started, so its id is the pid of its
    first process) still runs; zombies do not count, since they run nothing and some init
    processes are slow to reap them."""
    if sys.platform.startswith("linux") and os.path.isdir("/proc"):
        try:
            entries = os.listdir("/proc")
        except OSError:
            entries = []
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as file:
                    stat = file.read()
            except OSError:
                continue
            fields = stat.rsplit(b")", 1)[-1].split()
            if len(fields) > 2 and fields[0] != b"Z" and int(fields[2]) == pgid:
                return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def probe(session: aiohttp.ClientSession, url: str, bound: float) -> str | None:
    """None when ``url`` gives any HTTP answer within ``bound`` seconds; else why not."""
    try:
        async with session.get(
            url, timeout=aiohttp.ClientTimeout(total=bound), allow_redirects=False
        ):
            return None
    except TimeoutError:
        return f"no answer within {bound:g} s"
    except aiohttp.ClientConnectorError as exc:
        error: BaseException = exc.os_error
        if isinstance(error, ConnectionRefusedError):
            return "connection refused"
        return error.strerror.lower() if isinstance(error, OSError) and error.strerror else str(exc)
    except aiohttp.ServerDisconnectedError:
        return "it closed the connection without an answer"
    except aiohttp.ClientError as exc:
        return str(exc) or type(exc).__name__


class AddonProbe:
    """Without ``[addon] command``: is the add-on server answering at ``url``? Checked every
    ``interval`` seconds; ``addon_status`` on each change (at the start only when it does not
    answer: the usual case needs no line)."""

    def __init__(
        self,
        config: Config,
        emit: Emit,
        *,
        interval: float = PROBE_INTERVAL_SECONDS,
        timeout: float = PROBE_TIMEOUT_SECONDS,
    ) -> None:
        self._url = config.addon_url + config.addon.ready_path
        self._emit = emit
        self._interval = interval
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.answering: bool | None = None

    async def check(self) -> bool:
        """Probe once now; report a change."""
        if self._session is None:
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
        why = await probe(self._session, self._url, self._timeout)
        answering = why is None
        if answering != self.answering and (self.answering is not None or not answering):
            self._emit(
                AddonStatus(
                    answering=answering,
                    url=self._url,
                    detail=why or "",
                    hint=None
                    if answering
                    else "Start your add-on server (or set [addon] command to let connect-dev "
                    "start it), or fix [addon] url. Installs fail while it does not answer: the "
                    "host's installed callback is forwarded to it.",
                )
            )
        self.answering = answering
        return answering

    async def run(self) -> None:
        """Probe every ``interval`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class GlobSet:
    """``restart_on`` globs, relative to ``root``: ``*`` and ``?`` within a name, ``[...]``,
    and ``**`` for any number of directories (``src/**/*.py``, ``templates/**``). Files under
    ``.connect-dev`` and the directories watchfiles ignores (``.git``, ``node_modules``,
    ``__pycache__``, ``.venv``, …), and editor temporary files, never match."""

    IGNORED_DIRS = frozenset((*watchfiles.DefaultFilter.ignore_dirs, ".connect-dev"))
    _IGNORED_NAMES = tuple(re.compile(p) for p in watchfiles.DefaultFilter.ignore_entity_patterns)

    def __init__(self, root: Path, patterns: Sequence[str]) -> None:
        self.root = root
        self.patterns = tuple(patterns)
        self._regexes = [_glob_regex(pattern) for pattern in self.patterns]
        self._bases = {str(root), os.path.realpath(root)}

    def matches(self, relative: str) -> bool:
        """Whether ``relative`` (a path relative to ``root``, with ``/``) is to be watched."""
        parts = relative.split("/")
        if any(part in self.IGNORED_DIRS for part in parts[:-1]):
            return False
        if any(pattern.search(parts[-1]) for pattern in self._IGNORED_NAMES):
            return False
        return any(regex.fullmatch(relative) for regex in self._regexes)

    def relative(self, path: str) -> str:
        """``path`` (absolute, as watchfiles reports it) relative to ``root``, with ``/``."""
        base = next(
            (b for b in self._bases if path == b or path.startswith(b + os.sep)), str(self.root)
        )
        return os.path.relpath(path, base).replace(os.sep, "/")

    def roots(self) -> tuple[list[Path], list[Path]]:
        """The directories to watch: (recursively, only their own entries)."""
        recursive: set[Path] = set()
        flat: set[Path] = set()
        for pattern in self.patterns:
            parts = [part for part in pattern.split("/") if part not in ("", ".")]
            literal = []
            for part in parts:
                if _WILDCARD.search(part):
                    break
                literal.append(part)
            deep = len(literal) < len(parts) - 1 or "**" in parts
            # The directory the first wildcard is in; for a file named in full, its own.
            directory = Path(os.path.normpath(self.root.joinpath(*literal[: len(parts) - 1])))
            while not directory.is_dir():  # not there yet: watch where it will appear
                deep = True
                if directory.parent == directory:
                    break
                directory = directory.parent
            (recursive if deep else flat).add(directory)
        flat = {d for d in flat if not any(_is_within(d, r) for r in recursive)}
        recursive = {
            d for d in recursive if not any(d != r and _is_within(d, r) for r in recursive)
        }
        return sorted(recursive), sorted(flat)

    def _filter(self, _change: watchfiles.Change, path: str) -> bool:
        return self.matches(self.relative(path))

    async def changes(self, stop: asyncio.Event, debounce: float) -> AsyncIterator[list[str]]:
        """Lists of the changed files (relative paths, sorted), one per burst of changes that
        ended ``debounce`` seconds ago."""
        recursive, flat = self.roots()
        batches: asyncio.Queue[set[str]] = asyncio.Queue()

        async def watch(directories: list[Path], deep: bool) -> None:
            async for batch in watchfiles.awatch(
                *directories,
                watch_filter=self._filter,
                recursive=deep,
                stop_event=stop,
                debounce=int(debounce * 1000),
                step=50,
            ):
                batches.put_nowait({path for _, path in batch})

        watchers = [
            asyncio.create_task(watch(directories, deep), name="addon restart_on")
            for directories, deep in ((recursive, True), (flat, False))
            if directories
        ]
        try:
            while not stop.is_set():
                getter = asyncio.ensure_future(batches.get())
                stopping = asyncio.ensure_future(stop.wait())
                running = [watcher for watcher in watchers if not watcher.done()]
                try:
                    await asyncio.wait(
                        (getter, stopping, *running), return_when=asyncio.FIRST_COMPLETED
                    )
                finally:
                    stopping.cancel()
                    if not getter.done():
                        getter.cancel()
                for watcher in running:
                    if watcher.done() and not stop.is_set():
                        watcher.result()  # a watcher's error goes to keep_running
                if not getter.done() or getter.cancelled():
                    continue
                changed = set(getter.result())
                with contextlib.suppress(TimeoutError):
                    while True:  # the burst goes on while changes come closer than debounce
                        async with asyncio.timeout(debounce):
                            changed |= await batches.get()
                if stop.is_set():
                    return
                yield sorted({self.relative(path) for path in changed})
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)


_WILDCARD = re.compile(r"[*?\[]")


def _is_within(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    regex = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _name_regex(part) + ("" if last else "/")
    return re.compile(regex)


def _name_regex(part: str) -> str:
    out: list[str] = []
    index = 0
    while index < len(part):
        character = part[index]
        if character == "*":
            out.append("[^/]*")
        elif character == "?":
            out.append("[^/]")
        elif character == "[" and (end := part.find("]", index + 2)) != -1:
            inside = part[index + 1 : end]
            negate = inside.startswith(("!", "^"))
            body = inside[1:] if negate else inside
            out.append(("[^" if negate else "[") + body.replace("\\", "\\\\") + "]")
            index = end
        else:
            out.append(re.escape(character))
        index += 1
    return "".join(out)

"""Atlassian's Connect bridge, ``atlassian-connect-js``, for the emulated site's pages.

The npm package (Apache-2.0) holds both ends of the bridge: ``dist/connect-host.js``, which the
product's pages load to create add-on iframes and answer their calls, and ``dist/iframe.js``,
the ``all.js`` that add-on pages load to get ``AP``. connect-host.js expects jQuery as
``AJS.$``, so jQuery comes with it. Neither is copied into this repository: the first page
that needs them installs both with npm into a user cache (``~/.cache/connect-devloop/
atlassian-connect-js/<version>``, or ``$CONNECT_DEV_CONNECT_JS_DIR``) and every later run reuses
that directory while it holds the pinned versions.

    connect_js = await ConnectJsSource().get()   # ConnectJsUnavailable, with a hint, if it cannot
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DevloopError

__all__ = [
    "ACJS_VERSION",
    "CACHE_DIR_ENV",
    "JQUERY_VERSION",
    "ConnectJs",
    "ConnectJsSource",
    "ConnectJsUnavailable",
    "default_directory",
    "ensure_connect_js",
]

logger = logging.getLogger(__name__)

ACJS_VERSION = "5.3.190"
JQUERY_VERSION = "3.7.1"
PINS: Mapping[str, str] = {"atlassian-connect-js": ACJS_VERSION, "jquery": JQUERY_VERSION}
CACHE_DIR_ENV = "CONNECT_DEV_CONNECT_JS_DIR"
NPM_TIMEOUT_S = 300
PACKAGE_JSON = (
    json.dumps(
        {
            "name": "connect-devloop-connect-js",
            "private": True,
            "description": "Atlassian's Connect bridge for the pages of connect-dev's emulated "
            "site; installed by connect-devloop on first use.",
            "dependencies": dict(PINS),
        },
        indent=2,
    )
    + "\n"
)
# Written after a complete install: a directory with it and the pinned versions is reused.
MARKER = ".connect-devloop-complete"

# One install at a time per directory in this process (threads), and across processes (flock).
_directory_locks: dict[Path, threading.Lock] = {}
_directory_locks_guard = threading.Lock()


class ConnectJsUnavailable(DevloopError):
    """atlassian-connect-js could not be installed or read; ``hint`` says what to do."""


@dataclass(frozen=True)
class ConnectJs:
    """The files the site serves, read once."""

    directory: Path
    version: str
    host_js: bytes = field(repr=False)  # dist/connect-host.js, on the site's pages
    host_css: bytes = field(repr=False)  # dist/connect-host.css
    iframe_js: bytes = field(repr=False)  # dist/iframe.js: all.js, in add-on pages
    jquery_js: bytes = field(repr=False)  # jQuery, as AJS.$ for connect-host.js


def default_directory() -> Path:
    """``$CONNECT_DEV_CONNECT_JS_DIR``, else the user cache for the pinned version."""
    configured = os.environ.get(CACHE_DIR_ENV)
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "connect-devloop" / "atlassian-connect-js" / ACJS_VERSION


def ensure_connect_js(directory: Path | None = None) -> ConnectJs:
    """Read atlassian-connect-js and jQuery from ``directory``, installing them with npm first
    when they are not there at the pinned versions. Blocking: npm can take a while."""
    directory = (directory or default_directory()).resolve()
    if not _installed(directory):
        with _install_lock(directory):
            if not _installed(directory):
                _npm_install(directory)
    try:
        return _read(directory)
    except OSError as exc:
        raise ConnectJsUnavailable(
            f"atlassian-connect-js in {directory} cannot be read: {exc}",
            hint=f"Delete {directory} to have it installed again.",
        ) from exc


class ConnectJsSource:
    """What a site asks for the bridge: installed once, on first use, in a worker thread; a
    failure is remembered, so pages render at once (without the bridge) after it."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._result: ConnectJs | ConnectJsUnavailable | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> ConnectJs:
        async with self._lock:
            if self._result is None:
                directory = self._directory or default_directory()
                logger.info(
                    "atlassian-connect-js %s for the site's pages: %s", ACJS_VERSION, directory
                )
                try:
                    self._result = await asyncio.to_thread(ensure_connect_js, directory)
                except ConnectJsUnavailable as exc:
                    logger.warning("%s (%s)", exc.message, exc.hint)
                    self._result = exc
        if isinstance(self._result, ConnectJsUnavailable):
            raise self._result
        return self._result


def _installed(directory: Path) -> bool:
    """The pinned versions are there, and not from an install that was interrupted: ours leave
    a marker when they complete; a directory someone filled by hand has its own package.json."""
    return _pinned(directory) and ((directory / MARKER).exists() or not _ours(directory))


def _ours(directory: Path) -> bool:
    try:
        return (directory / "package.json").read_text("utf-8") == PACKAGE_JSON
    except OSError:
        return False


def _npm_install(directory: Path) -> None:
    npm = shutil.which("npm")
    wanted = f"atlassian-connect-js@{ACJS_VERSION} and jquery@{JQUERY_VERSION}"
    by_hand = (
        "or, on a machine that reaches the npm registry, run "
        f"`npm install {wanted.replace(' and ', ' ')}` in a directory, copy it here and set "
        f"{CACHE_DIR_ENV} to it"
    )
    if npm is None:
        raise ConnectJsUnavailable(
            f"npm is not installed, so the site's pages cannot get {wanted}",
            hint=f"Install Node.js and npm (Debian: apt-get install npm), {by_hand}.",
        )
    if (directory / "package.json").exists() and not _ours(directory):
        raise ConnectJsUnavailable(
            f"{directory} has a package.json of its own but not {wanted}",
            hint=f"Run `npm install {wanted.replace(' and ', ' ')}` there, or point "
            f"{CACHE_DIR_ENV} at an empty directory.",
        )
    logger.info("installing %s with npm into %s (first use)", wanted, directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER).unlink(missing_ok=True)
        (directory / "package.json").write_text(PACKAGE_JSON, encoding="utf-8")
    except OSError as exc:
        raise ConnectJsUnavailable(
            f"cannot write {directory}: {exc}",
            hint=f"Set {CACHE_DIR_ENV} to a directory you can write.",
        ) from exc
    command = [
        npm,
        "install",
        "--no-audit",
        "--no-fund",
        "--no-progress",
        "--loglevel=error",
        # No install scripts: only the dist files are used. And npm's own cache first, so a
        # machine that installed them once can do it again offline.
        "--ignore-scripts",
        "--prefer-offline",
    ]
    try:
        result = subprocess.run(
            command,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ConnectJsUnavailable(
            f"npm install of {wanted} took over {NPM_TIMEOUT_S} s",
            hint=f"Check that npm reaches its registry (npm ping), {by_hand}.",
        ) from exc
    except OSError as exc:
        raise ConnectJsUnavailable(
            f"npm could not run: {exc}", hint=f"Check npm, {by_hand}."
        ) from exc
    if result.returncode != 0:
        output = (result.stderr.strip() or result.stdout.strip())[-800:]
        offline = any(
            code in output for code in ("ENOTFOUND", "EAI_AGAIN", "ECONNREFUSED", "ETIMEDOUT")
        )
        reason = "npm could not reach its registry" if offline else "npm install failed"
        raise ConnectJsUnavailable(
            f"{reason} while installing {wanted}: {output or f'exit {result.returncode}'}",
            hint=(
                "The machine looks offline: connect it once (the packages then stay in the "
                f"cache), {by_hand}."
                if offline
                else f"Run `npm install` in {directory} to see the whole error, {by_hand}."
            ),
        )
    if not _pinned(directory):
        raise ConnectJsUnavailable(
            f"npm install finished but {directory} does not hold {wanted}",
            hint=f"Delete {directory} and try again, {by_hand}.",
        )
    (directory / MARKER).write_text(f"{wanted}\n", encoding="utf-8")


def _pinned(directory: Path) -> bool:
    with contextlib.suppress(OSError, ValueError):
        return all(
            json.loads((directory / "node_modules" / name / "package.json").read_text("utf-8")).get(
                "version"
            )
            == version
            for name, version in PINS.items()
        )
    return False


def _read(directory: Path) -> ConnectJs:
    acjs = directory / "node_modules" / "atlassian-connect-js" / "dist"
    return ConnectJs(
        directory=directory,
        version=ACJS_VERSION,
        host_js=(acjs / "connect-host.js").read_bytes(),
        host_css=(acjs / "connect-host.css").read_bytes(),
        iframe_js=(acjs / "iframe.js").read_bytes(),
        jquery_js=(directory / "node_modules" / "jquery" / "dist" / "jquery.min.js").read_bytes(),
    )


@contextlib.contextmanager
def _install_lock(directory: Path) -> Iterator[None]:
    with _directory_locks_guard:
        lock = _directory_locks.setdefault(directory, threading.Lock())
    with lock:
        try:
            directory.parent.mkdir(parents=True, exist_ok=True)
            handle = open(f"{directory}.lock", "a")  # noqa: SIM115 - held for the whole block
        except OSError as exc:
            raise ConnectJsUnavailable(
                f"cannot write beside {directory}: {exc}",
                hint=f"Set {CACHE_DIR_ENV} to a directory you can write.",
            ) from exc
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

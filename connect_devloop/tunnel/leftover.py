"""The tunnel process a crashed run left behind, and how the next run stops it.

Tunnel processes (the ngrok agent, ssh) run in their own session so that a Ctrl-C in the
terminal reaches only connect-dev, which must uninstall through the tunnel before closing it.
The price: when connect-dev is killed outright (kill -9, a crash), nothing stops them. So each
one is recorded in ``.connect-dev/tunnel.json`` while it runs; the next ``up`` stops a recorded
process that still runs *with the same command line* (a reused pid never matches), which also
frees the single agent session of ngrok's free plan.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..errors import DevloopError
from ..ledger import StateFileError, ensure_state_dir, read_state_json

__all__ = ["ProcessFile"]

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 2.0
PRIVATE_DIR_PREFIX = "connect-dev-"


class ProcessFile:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, pid: int, private_dir: Path | None = None) -> None:
        """Remember a process this run started, once it runs (a wrapper script has exec'd the
        real program), and the private directory it uses (the ngrok config with the
        authtoken), removed with it. The command line is kept only as a digest: it may hold an
        authtoken."""
        command = _command_line(pid)
        if command is None:
            return
        data: dict[str, object] = {"pid": pid, "command_sha256": _digest(command)}
        if private_dir is not None:
            data["private_dir"] = str(private_dir)
        try:
            ensure_state_dir(self.path.parent)
            temp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as file:
                json.dump(data, file)
            os.replace(temp, self.path)
        except (OSError, DevloopError) as exc:  # losing crash clean-up must not stop the tunnel
            logger.warning("cannot record the tunnel process in %s: %s", self.path, exc)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def stop_leftover(self) -> int | None:
        """Stop the recorded process if it still runs with the recorded command line; return
        its pid when one was stopped."""
        try:
            data = read_state_json(self.path)
            if data is None:
                return None
            if not isinstance(data, dict):
                raise TypeError(f"expected a JSON object, found {type(data).__name__}")
            pid, digest = int(data["pid"]), str(data["command_sha256"])
            private_dir = data.get("private_dir")
        except (StateFileError, ValueError, KeyError, TypeError, OverflowError) as exc:
            # Only a pointer to a process to stop (no install state): one we cannot use is
            # dropped, so it is not reported again.
            logger.warning("ignoring unreadable %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                self.clear()
            return None
        command = _command_line(pid)
        stopped = None
        if command is not None and _digest(command) == digest:
            logger.info("stopping tunnel process %d left by an earlier run", pid)
            _stop(pid)
            stopped = pid
        if isinstance(private_dir, str):
            _remove_private_dir(Path(private_dir))
        self.clear()
        return stopped


def _remove_private_dir(path: Path) -> None:
    # Only what connect-dev creates (tempfile.mkdtemp(prefix="connect-dev-…")) is removed.
    if path.name.startswith(PRIVATE_DIR_PREFIX) and path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)


def _digest(command: str) -> str:
    return hashlib.sha256(command.encode("utf-8", "surrogateescape")).hexdigest()


def _command_line(pid: int) -> str | None:
    """The process's command line, arguments joined by spaces; None when it does not run."""
    proc = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux"):
        try:
            raw = proc.read_bytes()
        except OSError:
            return None
        return " ".join(part.decode("utf-8", "surrogateescape") for part in raw.split(b"\0")[:-1])
    try:  # macOS and the BSDs
        result = subprocess.run(
            ["ps", "-ww", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def _stop(pid: int) -> None:
    for signum in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while time.monotonic() < deadline:
            if _command_line(pid) is None or _is_zombie(pid):
                return
            time.sleep(0.05)


def _is_zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return status.rsplit(")", 1)[-1].split()[0] == "Z"

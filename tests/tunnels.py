"""Helpers for the tunnel tests: the stand-in ngrok agent, a real sshd, configs, processes."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

FAKE_AGENT = Path(__file__).with_name("fake_ngrok_agent.py")


def write_agent(directory: Path) -> Path:
    """An executable ``ngrok`` in ``directory`` that runs the stand-in agent."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "ngrok"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_AGENT}" "$@"\n', encoding="utf-8")
    path.chmod(0o755)
    return path


@dataclass
class AgentRecord:
    """What the stand-in agents wrote to ``FAKE_NGROK_RECORD``."""

    path: Path

    def entries(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line]

    def starts(self) -> list[dict[str, Any]]:
        return [e for e in self.entries() if "argv" in e]

    def api(self, pid: int) -> str:
        return next(e["api"] for e in self.entries() if e.get("pid") == pid and "api" in e)

    def endpoints(self) -> list[dict[str, Any]]:
        return [e["endpoint"] for e in self.entries() if "endpoint" in e]


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not count)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def wait_dead(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tunnel_config(
    project: Path,
    addon_url: str,
    hosts: list[str],
    *,
    provider: str,
    tunnel: str = "",
    health_interval: float = 0.5,
) -> Path:
    """A connect-dev.toml with a real tunnel provider; ``tunnel`` holds its sub-tables."""
    text = (
        'descriptor = "atlassian-connect.json"\n'
        f'[addon]\nurl = "{addon_url}"\n'
        "[proxy]\nport = 0\n"
        f'[tunnel]\nprovider = "{provider}"\nhealth_interval = {health_interval}\n'
        f"health_timeout = 2\n{tunnel}" + "".join(hosts)
    )
    path = project / "connect-dev.toml"
    path.write_text(text, encoding="utf-8")
    return path


# --- a real sshd on loopback ------------------------------------------------------------------


def find_sshd() -> str | None:
    found = shutil.which("sshd")
    if found:
        return found
    for candidate in ("/usr/sbin/sshd", "/usr/local/sbin/sshd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def make_key(path: Path) -> Path:
    """A new ed25519 key pair without passphrase: ``path`` and ``path.pub``."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )
    return path


@dataclass
class Sshd:
    port: int
    directory: Path
    client_key: Path
    known_hosts: Path
    process: subprocess.Popen[bytes]

    @property
    def options(self) -> list[str]:
        return [
            "StrictHostKeyChecking=no",
            f"UserKnownHostsFile={self.known_hosts}",
            "LogLevel=ERROR",  # no "Permanently added … to the list of known hosts"
        ]

    def toml(self, **extra: Any) -> str:
        values: dict[str, Any] = {
            "target": "root@127.0.0.1",
            "port": self.port,
            "identity_file": str(self.client_key),
            "options": self.options,
            **extra,
        }
        lines = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
        return "[tunnel.ssh]\n" + lines

    def log(self) -> str:
        return (self.directory / "sshd.log").read_text(errors="replace")


@contextlib.contextmanager
def running_sshd(directory: Path, *, extra_config: str = "") -> Iterator[Sshd]:
    """sshd -D on 127.0.0.1 with its own host key and authorized_keys (TESTING.md)."""
    sshd = find_sshd()
    if sshd is None:
        pytest.skip("sshd is not installed (apt-get install openssh-server; .ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("the sshd tests log in as root and need to run as root (CI does)")
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # sshd's privilege-separation dir
    directory.mkdir(parents=True, exist_ok=True)
    host_key, client_key = directory / "host_key", directory / "client_key"
    for key in (host_key, client_key):
        make_key(key)
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = directory / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nUsePAM no\n"
        f"PidFile {directory / 'sshd.pid'}\nPasswordAuthentication no\n"
        f"KbdInteractiveAuthentication no\n{extra_config}"
    )
    log = (directory / "sshd.log").open("wb")
    process = subprocess.Popen([sshd, "-f", str(config), "-D", "-e"], stderr=log)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    "sshd did not start: " + (directory / "sshd.log").read_text(errors="replace")
                )
            time.sleep(0.05)
        yield Sshd(port, directory, client_key, directory / "known_hosts", process)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()

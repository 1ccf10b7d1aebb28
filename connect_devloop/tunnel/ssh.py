"""``provider = "ssh"``: a reverse tunnel, ``ssh -N -R``, to a server the user names.

    ssh -N -T -o BatchMode=yes -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 …
        -R [remote_bind:]remote_port:127.0.0.1:<proxy port> target

The server listens on ``remote_port`` (0: it picks one and ssh says ``Allocated port N for
remote forward``) and sends what arrives there through ssh to the proxy. The public URL is
``[tunnel] public_url`` with ``{host}`` (the target's host) and ``{port}`` (the remote port)
filled in (default ``http://{host}:{port}``), or, with ``url_pattern``, the first match of that
regular expression in what the server prints (tunnel services print the URL they assigned; ssh
then keeps a session open instead of ``-N`` so their output reaches us).

ssh runs with ``BatchMode=yes``: it never prompts, and fails instead; its exit-255 messages are
turned into errors saying what to fix. It runs in its own session, so Ctrl-C in the terminal
reaches only connect-dev, which closes the tunnel after the hosts uninstalled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import shlex
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from ..config import SshConfig
from ..errors import TunnelError
from .leftover import ProcessFile

__all__ = ["DEFAULT_PUBLIC_URL", "SshTunnel"]

logger = logging.getLogger(__name__)

DEFAULT_PUBLIC_URL = "http://{host}:{port}"
STARTUP_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 3.0
SERVER_ALIVE_INTERVAL = 15

_ALLOCATED = re.compile(r"Allocated port (\d+) for remote forward")
_FORWARD_OK = re.compile(r"remote forward success for: listen (?:\S+:)?(\d+)")


class SshTunnel:
    provider = "ssh"
    inspector_url = ""

    def __init__(
        self,
        settings: SshConfig,
        public_url: str | None = None,
        *,
        leftovers: ProcessFile | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        if settings.target is None:
            raise TunnelError("[tunnel.ssh] target is not set")
        self._settings = settings
        self.target: str = settings.target
        self._template = public_url or DEFAULT_PUBLIC_URL
        self._pattern = re.compile(settings.url_pattern) if settings.url_pattern else None
        self._leftovers = leftovers
        self._startup_timeout = startup_timeout
        self._process: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []
        self._lines: deque[str] = deque(maxlen=40)
        self._ready: asyncio.Future[str] | None = None
        self._left_checked = False
        self.argv: list[str] = []

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def host(self) -> str:
        """The server's host name as written in ``target`` (an alias stays an alias)."""
        host = self.target.rsplit("@", 1)[-1]
        return host[1:-1] if host.startswith("[") and host.endswith("]") else host

    def command(self, local_url: str) -> list[str]:
        """The ssh command line for a tunnel to ``local_url`` (the proxy)."""
        settings = self._settings
        local = urlsplit(local_url)
        local_host = local.hostname or "127.0.0.1"
        local_port = local.port or 80
        bind = f"{settings.remote_bind}:" if settings.remote_bind else ""
        argv = [settings.path, "-T"]
        if self._pattern is None:
            argv.append("-N")  # no session: nothing to read from the server
        for option in (
            "BatchMode=yes",
            "ExitOnForwardFailure=yes",
            f"ServerAliveInterval={SERVER_ALIVE_INTERVAL}",
            "ServerAliveCountMax=3",
            "ConnectTimeout=15",
        ):
            argv += ["-o", option]
        if settings.remote_port == 0 or self._pattern is not None:
            # "Allocated port N" is logged at INFO: make sure a LogLevel=QUIET config shows it.
            argv += ["-o", "LogLevel=INFO"]
        else:
            # ssh reports a fixed port's forward only at debug level ("remote forward success").
            argv.append("-v")
        if settings.port:
            argv += ["-p", str(settings.port)]
        if settings.identity_file is not None:
            argv += ["-i", str(settings.identity_file), "-o", "IdentitiesOnly=yes"]
        for option in settings.options:
            argv += ["-o", option]
        host = f"[{local_host}]" if ":" in local_host else local_host
        argv += ["-R", f"{bind}{settings.remote_port}:{host}:{local_port}", self.target]
        return argv

    async def open(self, local_url: str) -> str:
        if self._process is not None:
            raise TunnelError("the ssh tunnel is already open")
        if self._leftovers is not None and not self._left_checked:
            self._left_checked = True
            await asyncio.to_thread(self._leftovers.stop_leftover)
        identity = self._settings.identity_file
        if identity is not None and not identity.is_file():
            raise TunnelError(
                f"the ssh identity file {identity} does not exist",
                hint="Fix [tunnel.ssh] identity_file (a private key the server accepts).",
            )
        self.argv = self.command(local_url)
        self._lines.clear()
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        with_session = self._pattern is not None
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=asyncio.subprocess.PIPE if with_session else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if with_session else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            raise TunnelError(
                f"ssh was not found ({self._settings.path!r})",
                hint="Install the OpenSSH client (e.g. apt-get install openssh-client) or set "
                "[tunnel.ssh] path to it.",
            ) from exc
        except OSError as exc:
            raise TunnelError(f"cannot run {self._settings.path}: {exc.strerror}") from exc
        process = self._process
        for stream in (process.stderr, process.stdout):
            if stream is not None:
                self._readers.append(asyncio.create_task(self._read(stream), name="ssh output"))
        try:
            url = await self._wait_ready(process)
        except BaseException:
            await self.close()
            raise
        if self._leftovers is not None:
            self._leftovers.record(process.pid)
        return url.rstrip("/")

    async def _wait_ready(self, process: asyncio.subprocess.Process) -> str:
        assert self._ready is not None
        waiter = asyncio.ensure_future(process.wait())
        either: set[asyncio.Future[Any]] = {self._ready, waiter}
        try:
            done, _ = await asyncio.wait(
                either,
                timeout=self._startup_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            waiter.cancel()
        if self._ready in done or self._ready.done():
            return self._ready.result()
        if process.returncode is None:
            raise TunnelError(
                f"ssh to {self.target} did not report the forward within "
                f"{self._startup_timeout:g} s",
                hint=self._try_by_hand(),
            )
        # Let the readers take in what ssh printed last: that is why it failed.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*self._readers, return_exceptions=True), 2)
        raise self._failure(process.returncode)

    async def close(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    await process.wait()
            if self._leftovers is not None:
                self._leftovers.clear()
        readers, self._readers = self._readers, []
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        if self._ready is not None and not self._ready.done():
            self._ready.cancel()

    def exited(self) -> str | None:
        process = self._process
        if process is None or process.returncode is None:
            return None
        return str(self._failure(process.returncode))

    async def _read(self, stream: asyncio.StreamReader) -> None:
        while line_bytes := await stream.readline():
            line = line_bytes.decode("utf-8", "replace").rstrip()
            if not line:
                continue
            logger.debug("ssh: %s", line)
            if not line.startswith("debug"):
                self._lines.append(line)
            url = self._url_from(line)
            if url is not None and self._ready is not None and not self._ready.done():
                self._ready.set_result(url)
                self._lines.clear()  # what explains a later exit comes after this

    def _url_from(self, line: str) -> str | None:
        if self._pattern is not None:
            match = self._pattern.search(line)
            if match is None:
                return None
            return match.group("url") if "url" in self._pattern.groupindex else match.group(0)
        allocated = _ALLOCATED.search(line)
        if allocated and self._settings.remote_port == 0:
            return self._fill(int(allocated.group(1)))
        forwarded = _FORWARD_OK.search(line)
        if forwarded and int(forwarded.group(1)) == self._settings.remote_port:
            return self._fill(self._settings.remote_port)
        return None

    def _fill(self, port: int) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self._template.format(host=host, port=port)

    def _failure(self, code: int) -> TunnelError:
        """What ssh's last words (exit 255 and its stderr) mean, and what to do about it."""
        text = "\n".join(self._lines)
        for pattern, explain in _FAILURES:
            match = pattern.search(text)
            if match:
                message, hint = explain(match, self)
                return TunnelError(message, hint=hint)
        how = f"was killed (signal {-code})" if code < 0 else f"exited with code {code}"
        last = next((line for line in reversed(self._lines) if line.strip()), "")
        return TunnelError(
            f"ssh to {self.target} {how}" + (f": {last}" if last else ""),
            hint=self._try_by_hand(),
        )

    @property
    def login_command(self) -> str:
        """How to log in by hand with the same server and port."""
        port = f" -p {self._settings.port}" if self._settings.port else ""
        return f"ssh{port} {self.target}"

    def _try_by_hand(self) -> str:
        return "Run the same command by hand to see more: " + shlex.join(self.argv)


def _explain_auth(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"the ssh server {tunnel.host} refused the login of {tunnel.target} "
        f"(Permission denied, tried: {match.group(1)})",
        "connect-dev runs ssh with BatchMode=yes, so it never asks for a password: set "
        "[tunnel.ssh] identity_file to a key whose public half is in the server's "
        f"authorized_keys, or add the key to ssh-agent. Check with `{tunnel.login_command}`.",
    )


def _explain_forward(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"the ssh server {tunnel.host} refused to forward port {match.group(1)}: the port is "
        "taken there, or forwarding is not allowed",
        "Set [tunnel.ssh] remote_port = 0 to let the server pick a free port, or pick another; "
        "the server's sshd_config must allow it (AllowTcpForwarding yes).",
    )


def _explain_connect(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    host, port, reason = match.group(1), match.group(2), match.group(3)
    return (
        f"cannot connect to the ssh server {host} port {port}: {reason}",
        "Check [tunnel.ssh] target and port, and that sshd runs there and is reachable.",
    )


def _explain_resolve(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"cannot resolve the ssh host {match.group(1)}: {match.group(2)}",
        "Check [tunnel.ssh] target (user@host, or a Host from ~/.ssh/config).",
    )


def _explain_changed_key(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"the ssh host key of {tunnel.host} has CHANGED since you last connected",
        f"If the server was reinstalled, remove the old key with `ssh-keygen -R {tunnel.host}` "
        "and connect once by hand; otherwise someone may be intercepting the connection.",
    )


def _explain_unknown_key(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"the ssh host key of {tunnel.host} is not known, and BatchMode cannot ask to accept it",
        f"Connect once by hand (`{tunnel.login_command}`) to accept it, or add "
        'options = ["StrictHostKeyChecking=accept-new"] to [tunnel.ssh].',
    )


def _explain_closed(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"the ssh connection to {tunnel.host} was lost: {match.group(0)}",
        "The server or the network went away; connect-dev reopens the tunnel.",
    )


def _explain_option(match: re.Match[str], tunnel: SshTunnel) -> tuple[str, str]:
    return (
        f"ssh rejected an option: {match.group(0)}",
        "Check [tunnel.ssh] options (each is passed as -o Key=Value).",
    )


_Explain = Callable[[re.Match[str], SshTunnel], tuple[str, str]]

# Checked in this order against ssh's last lines; the first match explains the failure.
_FAILURES: list[tuple[re.Pattern[str], _Explain]] = [
    (re.compile(r"REMOTE HOST IDENTIFICATION HAS CHANGED"), _explain_changed_key),
    (re.compile(r"Host key verification failed"), _explain_unknown_key),
    (re.compile(r"Permission denied \(([^)]*)\)"), _explain_auth),
    (re.compile(r"remote port forwarding failed for listen port (\d+)"), _explain_forward),
    (re.compile(r"connect to host (\S+) port (\d+): (.+)"), _explain_connect),
    (re.compile(r"Could not resolve hostname ([^:\s]+): (.+)"), _explain_resolve),
    (re.compile(r"(?:command-line line \d+|Bad configuration option)[^\n]*"), _explain_option),
    (
        re.compile(
            r"(?:Connection (?:to \S+ )?closed by remote host|Timeout, server \S+ not "
            r"responding|Connection reset by \S+(?: port \d+)?|Broken pipe)"
        ),
        _explain_closed,
    ),
]

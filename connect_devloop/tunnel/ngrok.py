"""``provider = "ngrok"``: the ngrok agent, driven by pyngrok from a worker thread.

pyngrok blocks and keeps global state, so every call into it runs in ``asyncio.to_thread`` with
a ``PyngrokConfig`` of our own: the agent binary we found, and a private ``ngrok.yml`` (in a
0700 temporary directory, mode 0600) holding the authtoken, so it is neither on the agent's
command line nor in the user's ``~/.config/ngrok/ngrok.yml``. The user's own ngrok config is
used only when ``[tunnel.ngrok] config_path`` points to it.

The authtoken comes from, in this order: the environment variable ``authtoken_env``
(``NGROK_AUTHTOKEN``), ``authtoken_lookup`` (the keychain), the user's ngrok config. It is never
logged: the agent echoes a rejected token in its error, so every agent line and error text is
redacted first.

The agent runs in its own session: Ctrl-C in the terminal reaches only connect-dev, which
closes the tunnel after the hosts uninstalled (their ``uninstalled`` callbacks go through it).
Only the agent this tunnel started is ever stopped.

The agent's web inspector (its local API and traffic UI, ``web_addr``) is reported as
``inspector_url``: the address the agent announced. The private config leaves ``web_addr`` at
ngrok's default, 127.0.0.1:4040, on loopback: it has no authentication, shows every request
(JWTs included) and can replay them. A user's own config that puts it elsewhere gets a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..config import NgrokConfig
from ..errors import DevloopError, TunnelError
from ..events import Event, Warning
from .leftover import PRIVATE_DIR_PREFIX, ProcessFile

__all__ = ["NgrokTunnel"]

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 20.0
STOP_GRACE_SECONDS = 3.0
REQUEST_TIMEOUT_SECONDS = 10.0
DOWNLOAD_URL = "https://ngrok.com/download"
AUTHTOKEN_URL = "https://dashboard.ngrok.com/get-started/your-authtoken"

# ngrok's error codes (https://ngrok.com/docs/errors/) that a user can fix, and how.
_ERROR_HINTS = {
    "ERR_NGROK_105": "authtoken",
    "ERR_NGROK_106": "authtoken",
    "ERR_NGROK_107": "authtoken",
    "ERR_NGROK_4018": "authtoken",
    "ERR_NGROK_108": "session",
    "ERR_NGROK_313": "domain",
    "ERR_NGROK_320": "domain",
    "ERR_NGROK_334": "session",
    "ERR_NGROK_8013": "authtoken",
}


class NgrokTunnel:
    provider = "ngrok"

    def __init__(
        self,
        settings: NgrokConfig,
        *,
        authtoken_lookup: Callable[[], str | None] | None = None,
        emit: Callable[[Event], None] | None = None,
        leftovers: ProcessFile | None = None,
        chosen_because: str = "",
        environ: Mapping[str, str] | None = None,
        startup_timeout: float = STARTUP_TIMEOUT_SECONDS,
    ) -> None:
        """``authtoken_lookup`` is asked (in a thread) when the environment variable is unset;
        ``chosen_because`` is added to hints when ``auto`` picked ngrok."""
        self._settings = settings
        self._authtoken_lookup = authtoken_lookup
        self._emit = emit
        self._leftovers = leftovers
        self._chosen_because = chosen_because
        self._environ = os.environ if environ is None else environ
        self._startup_timeout = startup_timeout
        self._private_dir: Path | None = None
        self._agent: Any = None  # pyngrok's NgrokProcess of the agent we started
        self._drain: threading.Thread | None = None
        self._errors: deque[str] = deque(maxlen=5)
        self._left_checked = False
        self._exposure_warned = False

    @property
    def pid(self) -> int | None:
        """The agent's process id while this tunnel runs one."""
        return int(self._agent.proc.pid) if self._agent is not None else None

    @property
    def inspector_url(self) -> str:
        """The agent's web inspector while this tunnel runs one (pyngrok learns it from the
        agent's ``starting web service addr=…`` line); "" otherwise."""
        return str(self._agent.api_url or "") if self._agent is not None else ""

    async def open(self, local_url: str) -> str:
        if self._agent is not None:
            raise TunnelError("the ngrok tunnel is already open")
        if self._leftovers is not None and not self._left_checked:
            self._left_checked = True
            await asyncio.to_thread(self._leftovers.stop_leftover)
        self._errors.clear()
        token = await self._authtoken()
        try:
            config_path = self._config_file(token)
            agent = await asyncio.to_thread(self._find_agent)
            if agent is None:
                agent = await self._download()
            url = await self._start(agent, config_path, token, local_url)
        except BaseException:
            await self.close()
            raise
        started: Any = self._agent
        if self._leftovers is not None:
            self._leftovers.record(started.proc.pid, self._private_dir)
        self._warn_if_exposed()
        return url.rstrip("/")

    async def close(self) -> None:
        agent, self._agent = self._agent, None
        if agent is not None:
            await asyncio.to_thread(self._stop_agent, agent)
            if self._leftovers is not None:
                self._leftovers.clear()
        if self._private_dir is not None:
            shutil.rmtree(self._private_dir, ignore_errors=True)
            self._private_dir = None

    def exited(self) -> str | None:
        agent = self._agent
        if agent is None:
            return None
        code = agent.proc.poll()
        if code is None:
            return None
        how = f"was killed (signal {-code})" if code < 0 else f"exited with code {code}"
        last = f": {self._errors[-1]}" if self._errors else ""
        return f"the ngrok agent (pid {agent.proc.pid}) {how}{last}"

    def _warn_if_exposed(self) -> None:
        # Only a user's own config can move web_addr off loopback; say so once per run, as
        # anyone who reaches the inspector sees and replays the add-on's traffic.
        inspector = self.inspector_url
        if not inspector or _on_loopback(inspector) or self._exposure_warned:
            return
        self._exposure_warned = True
        where = self._settings.config_path or "the ngrok config"
        if self._emit is not None:
            self._emit(
                Warning(
                    message=f"the ngrok agent's web inspector listens beyond loopback, at "
                    f"{inspector}: anyone who reaches it sees every request through the tunnel "
                    "and can replay it",
                    hint=f"Set web_addr: 127.0.0.1:4040 in {where}.",
                )
            )

    # --- the authtoken and the private config ------------------------------------------------

    async def _authtoken(self) -> str | None:
        token = self._environ.get(self._settings.authtoken_env) or None
        if token is None and self._authtoken_lookup is not None:
            try:
                token = await asyncio.to_thread(self._authtoken_lookup) or None
            except DevloopError:
                raise
            except Exception as exc:
                raise TunnelError(
                    f"reading the ngrok authtoken from the keychain failed: {exc!r}",
                    hint=f"Set {self._settings.authtoken_env} instead.",
                ) from exc
        if token is not None:
            _redactor.add(token)
        elif self._settings.config_path is None:
            raise TunnelError(
                "ngrok needs an authtoken and none was found",
                hint=self._no_token_hint(),
            )
        return token

    def _no_token_hint(self) -> str:
        hint = f"Copy yours from {AUTHTOKEN_URL} and export {self._settings.authtoken_env}=…"
        if self._authtoken_lookup is not None:
            hint += ", or keep it in the keychain (`connect-dev login --ngrok`)"
        existing = [path for path in _user_ngrok_configs(self._environ) if path.is_file()]
        if existing:
            hint += (
                f', or set [tunnel.ngrok] config_path = "{existing[0]}" to use the ngrok '
                "config that has it"
            )
        else:
            hint += ", or set [tunnel.ngrok] config_path to your ngrok.yml"
        return hint + "." + self._why()

    def _why(self) -> str:
        return f" (ngrok was chosen {self._chosen_because}.)" if self._chosen_because else ""

    def _config_file(self, token: str | None) -> str:
        """The config the agent reads: the user's when they chose one, else a private one."""
        if self._settings.config_path is not None:
            if not self._settings.config_path.is_file():
                raise TunnelError(
                    f"the ngrok config {self._settings.config_path} does not exist",
                    hint="Fix [tunnel.ngrok] config_path, or remove it (connect-dev then uses a "
                    f"private config with the authtoken from {self._settings.authtoken_env}).",
                )
            return str(self._settings.config_path)
        assert token is not None
        self._private_dir = Path(tempfile.mkdtemp(prefix=f"{PRIVATE_DIR_PREFIX}ngrok-"))
        path = self._private_dir / "ngrok.yml"
        # JSON strings are valid YAML scalars, whatever the token holds. No web_addr: ngrok's
        # default keeps the inspector on loopback (127.0.0.1:4040).
        text = f'version: "3"\nagent:\n  authtoken: {json.dumps(token)}\n'
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        return str(path)

    # --- finding (or, when asked, downloading) the agent --------------------------------------

    def _find_agent(self) -> str | None:
        """The agent binary; None when it is missing and ``download = true``. Never lets pyngrok
        download it on its own."""
        explicit = self._settings.path
        if explicit is not None:
            return _check_executable(explicit, "[tunnel.ngrok] path")
        from_env = self._environ.get("PYNGROK_NGROK_PATH")
        if from_env:
            return _check_executable(Path(from_env), "PYNGROK_NGROK_PATH")
        for candidate in _agent_candidates(self._environ):
            return str(candidate)
        if self._settings.download:
            return None
        raise TunnelError(
            "the ngrok agent is not installed (pyngrok would download it from ngrok.com; "
            "connect-dev does not download programs unless asked)",
            hint=f"Install ngrok ({DOWNLOAD_URL}) so that `ngrok` is on PATH, or set "
            "[tunnel.ngrok] path to the agent binary, or set [tunnel.ngrok] download = true "
            "to let pyngrok fetch it." + self._why(),
        )

    async def _download(self) -> str:
        from pyngrok import conf, installer
        from pyngrok.exception import PyngrokError

        target = conf.DEFAULT_NGROK_PATH
        if self._emit is not None:
            self._emit(
                Warning(
                    message=f"the ngrok agent is not installed: downloading it from ngrok.com "
                    f"to {target} ([tunnel.ngrok] download = true)"
                )
            )
        # pyngrok draws a progress bar on stdout, which would break --log-format json.
        installer._print_progress_enabled = False
        try:
            await asyncio.to_thread(installer.install_ngrok, target, ngrok_version="3")
        except (PyngrokError, OSError) as exc:
            raise TunnelError(
                f"downloading the ngrok agent failed: {exc}",
                hint=f"Install ngrok yourself ({DOWNLOAD_URL}) so that `ngrok` is on PATH, or "
                "set [tunnel.ngrok] path to the agent binary.",
            ) from exc
        return _check_executable(Path(target), "the downloaded agent")

    # --- the agent's life ---------------------------------------------------------------------

    async def _start(self, agent: str, config_path: str, token: str | None, local_url: str) -> str:
        # The token goes in the private config; on the command line only next to the user's
        # own config, which we do not write to (that is what pyngrok would do).
        token_argument = token if self._settings.config_path is not None else None
        started = asyncio.ensure_future(
            asyncio.to_thread(self._start_blocking, agent, config_path, token_argument, local_url)
        )
        try:
            async with asyncio.timeout(self._startup_timeout):
                return await asyncio.shield(started)
        except (TimeoutError, asyncio.CancelledError) as exc:
            # The thread cannot be interrupted: stop the agent it waits on, then let it finish.
            _kill_starting(agent)
            with contextlib.suppress(Exception):
                await started
            if isinstance(exc, TimeoutError):
                raise TunnelError(
                    f"the ngrok agent ({agent}) did not start within {self._startup_timeout:g} s",
                    hint=_by_hand(agent),
                ) from exc
            raise

    def _start_blocking(
        self, agent: str, config_path: str, token_argument: str | None, local_url: str
    ) -> str:
        from pyngrok import conf, ngrok, process
        from pyngrok.exception import PyngrokError, PyngrokNgrokError, PyngrokNgrokHTTPError

        pyngrok_config = conf.PyngrokConfig(
            ngrok_path=agent,
            config_path=config_path,
            region=self._settings.region,
            monitor_thread=False,  # we drain its output ourselves, and stop the reader cleanly
            log_event_callback=self._on_startup_line,
            startup_timeout=max(1, int(self._startup_timeout)),
            request_timeout=REQUEST_TIMEOUT_SECONDS,
            start_new_session=True,
        )
        # PyngrokConfig falls back to $NGROK_AUTHTOKEN and $NGROK_API_KEY by itself: decide here.
        pyngrok_config.auth_token = token_argument
        pyngrok_config.api_key = None
        if process.is_process_running(agent):
            raise TunnelError(
                f"an ngrok agent started from {agent} already runs in this process",
                hint="Stop the other tunnel first.",
            )
        options: dict[str, Any] = {}
        if self._settings.domain:
            options["url"] = f"https://{self._settings.domain}"
        try:
            # Named by us: pyngrok would name it after the address, "http-http://127.0.0.1:…".
            name = f"connect-dev-{uuid.uuid4().hex[:12]}"
            endpoint = ngrok.connect(
                local_url, "http", name, pyngrok_config=pyngrok_config, **options
            )
        except PyngrokNgrokHTTPError as exc:
            self._abandon(agent)
            raise self._endpoint_error(exc) from None
        except PyngrokNgrokError as exc:
            self._abandon(agent)
            raise self._start_error(agent, exc) from None
        except PyngrokError as exc:
            self._abandon(agent)
            raise TunnelError(f"pyngrok failed: {_redactor(str(exc))}") from None
        except OSError as exc:
            self._abandon(agent)
            raise TunnelError(
                f"cannot run the ngrok agent {agent}: {exc.strerror}",
                hint="Check that it is the ngrok agent for this system and is executable.",
            ) from None
        self._agent = process.get_process(pyngrok_config)
        self._drain = threading.Thread(
            target=self._drain_output, args=(self._agent.proc,), name="ngrok agent log", daemon=True
        )
        self._drain.start()
        return str(endpoint.public_url)

    def _on_startup_line(self, log: Any) -> None:
        # Called by pyngrok for each agent line while it starts (our drain thread takes over
        # once it runs).
        self._note(log.line, log.lvl, getattr(log, "err", None))

    def _note(self, line: str, level: str, err: str | None) -> None:
        text = _redactor(line)
        logger.debug("ngrok agent: %s", text)
        if level in ("ERROR", "CRITICAL") and err:
            self._errors.append(_first_line(_redactor(err)))

    def _drain_output(self, proc: Any) -> None:
        from pyngrok.log import NgrokLog

        stream = proc.stdout
        if stream is None:
            return
        with contextlib.suppress(ValueError, OSError):
            for line in stream:
                log = NgrokLog(line)
                if log.line:
                    self._note(log.line, log.lvl, log.err)

    def _stop_agent(self, agent: Any) -> None:
        from pyngrok import process

        proc = agent.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_GRACE_SECONDS)
            except Exception:
                proc.kill()
                proc.wait()
        # pyngrok forgets a dead agent when asked about it; ask now, so a reopen starts afresh.
        process.is_process_running(agent.pyngrok_config.ngrok_path)
        drain, self._drain = self._drain, None
        if drain is not None:
            drain.join(STOP_GRACE_SECONDS)
        if proc.stdout is not None:
            proc.stdout.close()

    def _abandon(self, agent: str) -> None:
        """After a failed start: stop the agent if it still runs, and close its pipe."""
        from pyngrok import process

        if process.is_process_running(agent):  # it started, then the endpoint failed
            running = process._current_processes[agent].proc
            running.kill()
            running.wait()
            process.is_process_running(agent)  # pyngrok forgets it
        # pyngrok keeps no handle on an agent that failed to start (only its atexit hook
        # does), so find the Popen to close its pipe. Only dead agents of this path match.
        for candidate in gc.get_objects():
            if (
                isinstance(candidate, subprocess.Popen)
                and isinstance(candidate.args, list)
                and candidate.args[:1] == [agent]
                and candidate.stdout is not None
                and not candidate.stdout.closed
                and candidate.poll() is not None
                and candidate is not getattr(self._agent, "proc", None)
            ):
                candidate.stdout.close()

    # --- errors -------------------------------------------------------------------------------

    def _start_error(self, agent: str, exc: Any) -> TunnelError:
        error = _redactor(exc.ngrok_error or "")
        if not error:
            last = f": {self._errors[-1]}" if self._errors else ""
            return TunnelError(
                f"the ngrok agent ({agent}) stopped before it was ready{last}",
                hint=_by_hand(agent),
            )
        code = _error_code(error)
        return TunnelError(
            f"the ngrok agent failed to start: {_first_line(error)}"
            + (f" ({code})" if code and code not in _first_line(error) else ""),
            hint=self._hint_for(code),
        )

    def _endpoint_error(self, exc: Any) -> TunnelError:
        body = _redactor(str(getattr(exc, "body", "") or exc))
        try:
            detail = json.loads(body).get("msg") or body
        except (ValueError, AttributeError):
            detail = body
        code = _error_code(body)
        what = f"the reserved domain {self._settings.domain}" if self._settings.domain else "it"
        return TunnelError(
            f"ngrok refused to open {what}: {_first_line(str(detail))}"
            + (f" ({code})" if code and code not in str(detail) else ""),
            hint=self._hint_for(code),
        )

    def _hint_for(self, code: str | None) -> str | None:
        kind = _ERROR_HINTS.get(code or "")
        if kind == "authtoken":
            return (
                f"Check the authtoken in {self._settings.authtoken_env} (or your ngrok config): "
                f"copy it again from {AUTHTOKEN_URL}."
            )
        if kind == "session":
            return (
                "Your ngrok account allows only so many agents at once (the free plan: one). "
                "Stop the other ngrok agent (another `ngrok` or connect-dev) and try again."
            )
        if kind == "domain":
            return (
                f"Check [tunnel.ngrok] domain = {self._settings.domain!r}: it must be a domain "
                "reserved on your ngrok account (https://dashboard.ngrok.com/domains)."
            )
        return f"See https://ngrok.com/docs/errors/{code.lower()}/" if code else None


class _Redactor:
    """Replaces every authtoken seen in this process by ``***`` (agent lines, errors, logs)."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if len(secret) >= 4:
            self._secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


_redactor = _Redactor()


class _RedactingFilter(logging.Filter):
    """Keeps authtokens out of pyngrok's log records."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _redactor(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class _AgentLinesFilter(logging.Filter):
    """pyngrok re-logs every agent line, errors at ERROR, and a rejected authtoken is echoed in
    one of them. We log each line ourselves (redacted, at debug) and report failures as
    errors with hints, so pyngrok's copies are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return False


logging.getLogger("pyngrok.process.ngrok").addFilter(_AgentLinesFilter())
for _name in ("pyngrok.process", "pyngrok.ngrok", "pyngrok.installer"):
    logging.getLogger(_name).addFilter(_RedactingFilter())


def _check_executable(path: Path, source: str) -> str:
    if not path.is_file():
        raise TunnelError(
            f"the ngrok agent is not at {path} ({source})",
            hint=f"Fix {source}, or install ngrok ({DOWNLOAD_URL}) and remove it to use the "
            "`ngrok` on PATH.",
        )
    if not os.access(path, os.X_OK):
        raise TunnelError(
            f"the ngrok agent {path} ({source}) is not executable", hint=f"chmod +x {path}"
        )
    return str(path)


def _agent_candidates(environ: Mapping[str, str]) -> list[Path]:
    """Installed agents: pyngrok's download location, then ``ngrok`` on PATH, skipping
    pyngrok's own ``ngrok`` command (a Python script that downloads the agent when run)."""
    from pyngrok import conf

    found = [Path(conf.DEFAULT_NGROK_PATH)]
    for directory in environ.get("PATH", "").split(os.pathsep):
        if directory:
            found.append(Path(directory) / "ngrok")
    return [
        path
        for path in found
        if path.is_file() and os.access(path, os.X_OK) and not _is_wrapper_script(path)
    ]


_WRAPPER_MARKERS = (b"from pyngrok", b"import pyngrok", b'pyenv" exec', b"pyenv exec", b"asdf exec")


def _is_wrapper_script(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            head = file.read(4096)
    except OSError:
        return True
    # pyngrok's console script, or a pyenv/asdf shim that would run it.
    return head.startswith(b"#!") and any(marker in head for marker in _WRAPPER_MARKERS)


def _user_ngrok_configs(environ: Mapping[str, str]) -> list[Path]:
    home = Path(environ.get("HOME") or Path.home())
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [
        config_home / "ngrok" / "ngrok.yml",
        home / "Library" / "Application Support" / "ngrok" / "ngrok.yml",
        home / ".ngrok2" / "ngrok.yml",
    ]


def _on_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _by_hand(agent: str) -> str:
    return f"Run `{agent} start --none --log stdout` by hand to see why."


def _kill_starting(agent: str) -> None:
    from pyngrok import process

    starting = process._current_processes.get(agent)
    if starting is not None and starting.proc.poll() is None:
        starting.proc.kill()


def _error_code(text: str) -> str | None:
    match = re.search(r"ERR_NGROK_\d+", text)
    return match.group(0) if match else None


def _first_line(text: str) -> str:
    # The agent's logfmt escapes newlines in err="…" as \n.
    for line in re.split(r"\\r\\n|\\n|\r?\n", text):
        if line.strip():
            return line.strip().rstrip(".") + "."
    return text.strip()

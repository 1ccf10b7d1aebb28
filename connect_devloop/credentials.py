"""Where a host's password comes from.

The password itself travels as a ``Secret`` (``secret.py``, re-exported here).

Each place a password may come from is a ``PasswordSource``; ``up`` tries, in order, the
environment variable named by ``password_env``, the OS keychain (``connect-dev login``), and an
inline ``password``. When none has one and a terminal is attached, ``prepare_password_sources``
asks once, without echo, and offers to keep the answer in the keychain.

This module is named ``credentials`` rather than DESIGN.md's ``secrets`` so it never shadows the
standard library's ``secrets`` module in tools that put the package directory on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, TextIO

from .errors import CredentialsError
from .secret import Secret

if TYPE_CHECKING:
    from .config import HostConfig
    from .keychain import Keychain, KeychainError

__all__ = [
    "EnvironmentSource",
    "InlineSource",
    "KeychainSource",
    "PasswordSource",
    "ResolvedSource",
    "Secret",
    "default_sources",
    "prepare_password_sources",
    "resolve_password",
]

logger = logging.getLogger(__name__)


class PasswordSource(Protocol):
    """One place a host's password may be found. Returns ``None`` when it has none."""

    name: str

    def lookup(self, host: HostConfig) -> Secret | None: ...


class EnvironmentSource:
    """``password_env = "JIRA_API_TOKEN"``: the variable named in the config."""

    name = "environment"

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def lookup(self, host: HostConfig) -> Secret | None:
        if not host.password_env:
            return None
        value = self._environ.get(host.password_env)
        return Secret(value) if value else None


class InlineSource:
    """``password = "..."`` written in the config (meant for local SDK hosts: admin/admin)."""

    name = "config file"

    def lookup(self, host: HostConfig) -> Secret | None:
        return host.password


class KeychainSource:
    """The OS keychain entry ``connect-dev login`` writes (service ``connect-devloop``, account
    ``<username> @ <base URL>``).

    A machine without a usable keychain is not an error here: the lookup finds nothing and
    ``problem`` keeps why, so the final "no password" message can say so.
    """

    name = "keychain"

    def __init__(self, keychain: Keychain | None = None) -> None:
        self._keychain = keychain
        self.problem: KeychainError | None = None

    def lookup(self, host: HostConfig) -> Secret | None:
        from .keychain import KeychainError, SystemKeychain, host_account

        keychain = self._keychain if self._keychain is not None else SystemKeychain()
        try:
            return keychain.get(host_account(host.url, host.username))
        except KeychainError as exc:
            self.problem = exc
            logger.debug("host %r: keychain lookup skipped: %s", host.name, exc)
            return None


class ResolvedSource:
    """Passwords already found (or typed at the prompt) for this run, by host URL and user."""

    name = "this run"

    def __init__(self, secrets: Mapping[tuple[str, str], Secret] | None = None) -> None:
        self._secrets = dict(secrets or {})

    def add(self, host: HostConfig, secret: Secret) -> None:
        self._secrets[(host.base_url, host.username)] = secret

    def lookup(self, host: HostConfig) -> Secret | None:
        return self._secrets.get((host.base_url, host.username))


def default_sources() -> list[PasswordSource]:
    """``password_env``, then the keychain, then an inline ``password``."""
    return [EnvironmentSource(), KeychainSource(), InlineSource()]


def resolve_password(host: HostConfig, sources: Sequence[PasswordSource] | None = None) -> Secret:
    """The first password found for ``host``, or ``CredentialsError`` saying where we looked."""
    sources = list(sources) if sources is not None else default_sources()
    secret = _first_found(host, sources)
    if secret is not None:
        return secret
    raise _not_found(host, sources)


def _first_found(host: HostConfig, sources: Sequence[PasswordSource]) -> Secret | None:
    for source in sources:
        secret = source.lookup(host)
        if secret is not None:
            return secret
    return None


def _not_found(host: HostConfig, sources: Sequence[PasswordSource]) -> CredentialsError:
    from .keychain import BACKEND_HINT, KeychainUnavailableError

    problem = _keychain_problem(sources)
    login = f"`connect-dev login {_host_argument(host)}`"
    if problem is None:
        where, keychain_hint = "", ""
    elif isinstance(problem, KeychainUnavailableError):
        where, keychain_hint = f"; {problem.message}", f" To use the keychain, {BACKEND_HINT}."
    else:
        where, keychain_hint = f"; {problem.message}", f" {problem.hint}" if problem.hint else ""
    if host.password_env:
        state = "is empty" if host.password_env in os.environ else "is not set"
        keep = f"run {login} to keep it in the OS keychain, " if problem is None else ""
        return CredentialsError(
            f"host {host.name!r}: environment variable {host.password_env} {state}{where}",
            hint=f"export {host.password_env}=<API token> before `connect-dev up`, {keep}"
            f"or set `password` in the [[hosts]] entry for a local host.{keychain_hint}",
        )
    start = (
        f"Run {login} to keep an API token in the OS keychain, add" if problem is None else "Add"
    )
    return CredentialsError(
        f"host {host.name!r}: no password or API token configured{where}",
        hint=f'{start} `password_env = "VARIABLE"` to the [[hosts]] entry (Cloud: an API token '
        f"from id.atlassian.com), or `password` for a local host.{keychain_hint}",
    )


def _keychain_problem(sources: Sequence[PasswordSource]) -> KeychainError | None:
    for source in sources:
        problem = getattr(source, "problem", None)
        if problem is not None:
            return problem  # type: ignore[no-any-return]
    return None


def _host_argument(host: HostConfig) -> str:
    name = host.name
    return name if name.replace("-", "").replace("_", "").replace(".", "").isalnum() else repr(name)


# --- asking at the terminal -------------------------------------------------------------------


def prepare_password_sources(
    hosts: Sequence[HostConfig],
    *,
    sources: Sequence[PasswordSource] | None = None,
    interactive: bool | None = None,
    ask: Callable[[str], str] = getpass.getpass,
    confirm: Callable[[str], str] | None = None,
    keychain: Keychain | None = None,
    out: TextIO | None = None,
) -> list[PasswordSource] | None:
    """The password sources for ``up``; ``None`` (the defaults) without a terminal.

    With a terminal (``interactive``, default: stdin is a TTY), every host's password is looked
    up now, before the dashboard takes the terminal; for each host that has none, the user is
    asked once (no echo) and offered to keep the answer in the keychain. An empty answer skips
    the host (its install then fails with the usual "no password" message).
    """
    if interactive is None:
        interactive = sys.stdin is not None and sys.stdin.isatty()
    if not interactive:
        return list(sources) if sources is not None else None
    out = out if out is not None else sys.stderr
    confirm = confirm if confirm is not None else _ask_on_stderr
    sources = list(sources) if sources is not None else default_sources()
    resolved = ResolvedSource()
    for host in hosts:
        if host.registrar != "upm" or resolved.lookup(host) is not None:
            continue  # a Forge host has no password of ours: the Forge CLI logs in
        secret = _first_found(host, sources)
        if secret is None:
            secret = _prompt(host, sources, ask, confirm, keychain, out)
        if secret is not None:
            resolved.add(host, secret)
    return [resolved, *sources]


def _prompt(
    host: HostConfig,
    sources: Sequence[PasswordSource],
    ask: Callable[[str], str],
    confirm: Callable[[str], str],
    keychain: Keychain | None,
    out: TextIO,
) -> Secret | None:
    from .keychain import KeychainError, SystemKeychain, host_account

    problem = _not_found(host, sources)
    print(f"connect-dev: {problem.message}", file=out, flush=True)
    try:
        with _interruptible():
            value = ask(f"API token or password for {host.username} on {host.base_url}: ")
    except EOFError:
        value = ""
    if not value:
        print(f"connect-dev: nothing entered; {host.name!r} is skipped.", file=out, flush=True)
        return None
    secret = Secret(value)
    store = keychain if keychain is not None else SystemKeychain()
    keychain_problem = _keychain_problem(sources)
    if keychain_problem is not None:
        print(
            f"connect-dev: not kept: {keychain_problem.message}. It is used for this run only.",
            file=out,
            flush=True,
        )
        return secret
    try:
        with _interruptible():
            answer = confirm("Keep it in the OS keychain so the next run finds it? [Y/n] ")
    except EOFError:
        answer = "n"
    if answer.strip().lower() in ("", "y", "yes"):
        try:
            store.set(host_account(host.url, host.username), secret)
        except KeychainError as exc:
            print(f"connect-dev: not kept: {exc.message}", file=out, flush=True)
            if exc.hint:
                print(f"  hint: {exc.hint}", file=out, flush=True)
        else:
            print(
                f"connect-dev: kept in the keychain ({store.description}); "
                f"`connect-dev logout {_host_argument(host)}` removes it.",
                file=out,
                flush=True,
            )
    return secret


def _ask_on_stderr(prompt: str) -> str:
    # Not input(): it writes the prompt to stdout, which may be the JSON-lines log.
    sys.stderr.write(prompt)
    sys.stderr.flush()
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line.rstrip("\r\n")


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Let Ctrl-C and SIGTERM end the process at a prompt even after asyncio took the signals
    over (its handlers only wake its loop, which is not running while we block on the
    terminal). Nothing is installed or locked yet, so there is nothing to clean up."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

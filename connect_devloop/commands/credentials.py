"""``connect-dev login``, ``logout``, ``token`` and ``open``: secrets in the OS keychain, and
requests signed as the host would sign them.

- ``login [HOST]`` asks for a host's API token (no echo; or one line from ``--password-stdin``),
  checks it against the host's UPM REST API, and keeps it in the keychain. Without ``HOST``: every
  host that has no password yet. ``login --ngrok`` keeps the ngrok authtoken; ``login --forge``
  the Forge CLI's login (an Atlassian account email, asked or ``--email``, and an API token,
  never from an argument: see forge/login.py).
- ``logout [HOST]`` removes keychain entries (``--ngrok`` the authtoken, ``--forge`` the Forge
  login, ``--tenants`` the tenant secrets of this project).
- ``token METHOD PATH`` prints an HS256 token for a stored tenant; ``open PATH`` prints the full
  signed URL of ``PATH`` at the add-on's public URL, as an iframe would load it.

Nothing here prints a secret, except the token itself, which is the command's output.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..config import Config, HostConfig
    from ..keychain import Keychain
    from ..secret import Secret
    from ..tenants import Tenant

__all__ = ["add_parsers", "run_login", "run_logout", "run_open", "run_token"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILURE = 1
MAX_TTL_S = 24 * 3600
CHECK_TIMEOUT_S = 15.0


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``login``, ``logout``, ``token`` and ``open`` to the ``connect-dev`` parser."""
    login = commands.add_parser(
        "login",
        help="keep a host's API token (or the ngrok authtoken, or the Forge login) in the OS "
        "keychain",
        description="Ask for a host's API token or password (no echo), check it against the "
        "host, and keep it in the OS keychain (service connect-devloop) so `up` finds it. "
        "HOST is a host name or URL from connect-dev.toml; without it, every host that has no "
        "password yet. --ngrok keeps the ngrok authtoken instead, --forge the Forge CLI's "
        "login (Atlassian account email and API token).",
    )
    add_config(login)
    login.add_argument(
        "host",
        nargs="?",
        metavar="HOST",
        help="host name or URL (default: every host that has no password yet)",
    )
    login.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the token from standard input (one line per host) instead of asking",
    )
    login.add_argument(
        "--no-check", action="store_true", help="store without checking it against the host"
    )
    login.add_argument(
        "--ngrok", action="store_true", help="keep the ngrok authtoken instead of a host's token"
    )
    login.add_argument(
        "--forge",
        action="store_true",
        help="keep the Forge CLI's login (Atlassian account email and API token) instead",
    )
    login.add_argument(
        "--email",
        metavar="ADDRESS",
        help="with --forge: the Atlassian account email (default: ask)",
    )
    login.set_defaults(command="login", run=run_login)

    logout = commands.add_parser(
        "logout",
        help="remove keychain entries",
        description="Remove a host's API token from the OS keychain (without HOST: every "
        "host's), the ngrok authtoken (--ngrok), the Forge CLI's login (--forge), or this "
        "project's tenant secrets (--tenants).",
    )
    add_config(logout)
    logout.add_argument(
        "host", nargs="?", metavar="HOST", help="host name or URL (default: every host)"
    )
    logout.add_argument("--ngrok", action="store_true", help="remove the ngrok authtoken")
    logout.add_argument("--forge", action="store_true", help="remove the Forge CLI's login")
    logout.add_argument(
        "--tenants",
        action="store_true",
        help="forget the tenants (clientKey and sharedSecret) stored for this project",
    )
    logout.set_defaults(command="logout", run=run_logout)

    token = commands.add_parser(
        "token",
        help="print a host-signed JWT for a request to your add-on",
        description="Print an HS256 token signed with a stored tenant's sharedSecret, as the "
        "host signs requests to the add-on. Use it as `Authorization: JWT <token>`.",
    )
    add_config(token)
    _add_signing_options(token)
    token.add_argument("method", metavar="METHOD", help="HTTP method, e.g. GET")
    token.add_argument(
        "path", metavar="PATH", help="path and query relative to the add-on's base URL"
    )
    token.set_defaults(command="token", run=run_token)

    open_ = commands.add_parser(
        "open",
        help="print a signed URL of a page of your add-on (?jwt=...)",
        description="Print the add-on's public URL + PATH + ?jwt=<token>, as the host would "
        "load it in an iframe: paste it into a browser or curl.",
    )
    add_config(open_)
    _add_signing_options(open_)
    open_.add_argument(
        "--base-url", metavar="URL", help="sign for this base URL (default: the tenant's)"
    )
    open_.add_argument("--browser", action="store_true", help="also open it in a web browser")
    open_.add_argument(
        "path", metavar="PATH", help="path and query relative to the add-on's base URL"
    )
    open_.set_defaults(command="open", run=run_open)


def _add_signing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tenant",
        metavar="KEY",
        help="clientKey, host name or product URL of a stored tenant (default: the only one)",
    )
    parser.add_argument(
        "--ttl",
        type=int,
        default=180,
        metavar="SECONDS",
        help="lifetime of the token (default 180, as hosts sign)",
    )
    parser.add_argument("--sub", metavar="ACCOUNT_ID", help="the user's accountId (sub claim)")


# --- login / logout ---------------------------------------------------------------------------


def run_login(args: argparse.Namespace, *, keychain: Keychain | None = None) -> int:
    from ..keychain import NGROK_AUTHTOKEN_ACCOUNT, SystemKeychain, host_account

    store = keychain if keychain is not None else SystemKeychain()
    if args.ngrok and args.forge:
        return _usage("login takes --ngrok or --forge, not both")
    if args.email is not None and not args.forge:
        return _usage("--email goes with login --forge")
    if args.forge:
        if args.host is not None:
            return _usage("login --forge takes no HOST")
        return _login_forge(args, store)
    if args.ngrok:
        if args.host is not None:
            return _usage("login --ngrok takes no HOST")
        secret = _read_secret("ngrok authtoken: ", args.password_stdin, sys.stdin)
        store.set(NGROK_AUTHTOKEN_ACCOUNT, secret)
        _say(f"kept the ngrok authtoken in the keychain ({store.description})")
        return EXIT_OK
    config = _load_config(args)
    hosts = _chosen_hosts(config, args.host) if args.host else _hosts_without_password(config)
    if not hosts:
        _say(
            "every host already has a password (environment, keychain or config file); "
            "name one to replace its keychain entry: connect-dev login HOST"
        )
        return EXIT_OK
    failed = 0
    for host in hosts:
        if host.registrar == "forge":
            _say(
                f"{host.name}: a Forge host: the Forge CLI logs in by itself "
                "(`connect-dev login --forge`, or `forge login`)"
            )
            failed += 1
            continue
        secret = _read_secret(
            f"API token or password for {host.username} on {host.base_url}: ",
            args.password_stdin,
            sys.stdin,
        )
        checked = "" if args.no_check else _check_login(host, secret)
        if checked is None:
            failed += 1
            continue
        store.set(host_account(host.url, host.username), secret)
        _say(
            f"{host.name}: {checked}kept in the keychain ({store.description}) as "
            f"{host_account(host.url, host.username)!r}"
        )
    return EXIT_FAILURE if failed else EXIT_OK


def run_logout(args: argparse.Namespace, *, keychain: Keychain | None = None) -> int:
    from ..keychain import NGROK_AUTHTOKEN_ACCOUNT, SystemKeychain, host_account

    store = keychain if keychain is not None else SystemKeychain()
    if args.ngrok or args.forge or args.tenants:
        if args.host is not None:
            return _usage("logout --ngrok/--forge/--tenants take no HOST")
        if args.ngrok:
            removed = _delete(store, NGROK_AUTHTOKEN_ACCOUNT)
            if removed is not None:
                _say("removed the ngrok authtoken" if removed else "no ngrok authtoken was stored")
        if args.forge:
            _logout_forge(store)
        if args.tenants:
            _forget_tenants(_load_config(args), store)
        return EXIT_OK
    config = _load_config(args)
    hosts = _chosen_hosts(config, args.host) if args.host else _upm_hosts(config)
    for host in hosts:
        account = host_account(host.url, host.username)
        removed = _delete(store, account)
        if removed is None:
            break
        if removed:
            _say(f"{host.name}: removed {account!r} from the keychain")
        else:
            _say(f"{host.name}: nothing stored in the keychain")
    return EXIT_OK


def _login_forge(args: argparse.Namespace, store: Keychain) -> int:
    """``login --forge``: the email (``--email`` or asked, with echo: it is no secret), then the
    API token as any other secret (no echo, or ``--password-stdin``), into the keychain."""
    import os

    from ..errors import CredentialsError
    from ..forge.login import (
        FORGE_API_TOKEN_ACCOUNT,
        FORGE_API_TOKEN_ENV,
        FORGE_EMAIL_ACCOUNT,
        FORGE_EMAIL_ENV,
        store_forge_login,
    )
    from ..keychain import BACKEND_HINT, KeychainUnavailableError

    if args.email is not None:
        email = args.email.strip()
        if not _looks_like_email(email):
            return _usage(f"--email {args.email!r}: not an email address")
    else:
        email = _read_email(sys.stdin)
        if not _looks_like_email(email):
            raise CredentialsError(
                f"{email!r} is not an email address; nothing stored",
                hint="Enter the email of the Atlassian account the API token belongs to.",
            )
    secret = _read_secret(f"Forge API token for {email}: ", args.password_stdin, sys.stdin)
    try:
        store_forge_login(email, secret, store)
    except KeychainUnavailableError as exc:
        # The usual hint names password_env and inline passwords, which a Forge login has not.
        raise KeychainUnavailableError(
            exc.message,
            hint=f"Set {FORGE_EMAIL_ENV} and {FORGE_API_TOKEN_ENV} in the environment instead; "
            f"or {BACKEND_HINT}.",
        ) from exc
    _say(
        f"kept the Forge login of {email} in the keychain ({store.description}) as "
        f"{FORGE_EMAIL_ACCOUNT!r} and {FORGE_API_TOKEN_ACCOUNT!r}"
    )
    if os.environ.get(FORGE_EMAIL_ENV) or os.environ.get(FORGE_API_TOKEN_ENV):
        _say(
            f"note: {FORGE_EMAIL_ENV}/{FORGE_API_TOKEN_ENV} are set here, and the environment "
            "wins over the keychain"
        )
    return EXIT_OK


def _read_email(stdin: TextIO) -> str:
    from ..errors import CredentialsError

    if not stdin.isatty():
        raise CredentialsError(
            "no terminal to ask for the Atlassian account email on",
            hint='Name it and pipe the token: printf %s "$TOKEN" | connect-dev login --forge '
            "--email you@example.com --password-stdin",
        )
    # Not input(): it writes the prompt to stdout; every message of ours goes to stderr.
    sys.stderr.write("Atlassian account email: ")
    sys.stderr.flush()
    email = stdin.readline().strip()
    if not email:
        raise CredentialsError("nothing entered; nothing stored")
    return email


def _looks_like_email(text: str) -> bool:
    local, at, domain = text.rpartition("@")
    return bool(local and at and domain) and not any(c.isspace() for c in text)


def _logout_forge(store: Keychain) -> None:
    from ..forge.login import remove_forge_login
    from ..keychain import KeychainUnavailableError

    try:
        removed = remove_forge_login(store)
    except KeychainUnavailableError as exc:
        _say(f"nothing to remove: {exc.message}")
        return
    _say("removed the Forge login" if removed else "no Forge login was stored")


def _delete(store: Keychain, account: str) -> bool | None:
    """Remove ``account``; ``None`` (said why) when this machine has no keychain at all."""
    from ..keychain import KeychainUnavailableError

    try:
        return store.delete(account)
    except KeychainUnavailableError as exc:
        _say(f"nothing to remove: {exc.message}")
        return None


def _forget_tenants(config: Config, keychain: Keychain) -> None:
    from ..tenants import TenantStore

    removed = TenantStore(config.ledger_path.parent, keychain).forget()
    if not removed:
        _say("no tenants were stored for this project")
    for tenant in removed:
        _say(f"forgot tenant {tenant.describe()}")


def _check_login(host: HostConfig, secret: Secret) -> str | None:
    """Ask the host whether the credentials work; ``None`` when it said no (reported)."""
    import asyncio

    from ..errors import AuthenticationError, UpmError

    try:
        asyncio.run(_fetch_upm_token(host, secret))
    except AuthenticationError as exc:
        _say(f"{host.name}: not stored: {exc.message}")
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        return None
    except UpmError as exc:
        _say(f"{host.name}: could not check the token ({exc.message}); storing it anyway")
        return ""
    return "the host accepted it; "


async def _fetch_upm_token(host: HostConfig, secret: Secret) -> None:
    import aiohttp

    from ..upm import UpmClient

    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as session:
        client = UpmClient(
            session, host.base_url, host.username, secret, request_timeout=CHECK_TIMEOUT_S
        )
        await client.fetch_token()


def _hosts_without_password(config: Config) -> list[HostConfig]:
    from ..credentials import default_sources

    sources = default_sources()
    return [host for host in _upm_hosts(config) if all(s.lookup(host) is None for s in sources)]


def _upm_hosts(config: Config) -> list[HostConfig]:
    """The hosts connect-dev logs in to itself (a Forge host's login is the Forge CLI's)."""
    return [host for host in config.hosts if host.registrar == "upm"]


def _chosen_hosts(config: Config, wanted: str) -> list[HostConfig]:
    from ..errors import ConfigError

    target = wanted.rstrip("/")
    for host in config.hosts:
        if target in (host.name, host.base_url):
            return [host]
    names = ", ".join(host.name for host in config.hosts) or "none"
    raise ConfigError(
        f"no host {wanted!r} in connect-dev.toml",
        hint=f"Name a [[hosts]] entry by its name or URL. Hosts: {names}.",
        file=str(config.path),
    )


def _read_secret(prompt: str, from_stdin: bool, stdin: TextIO) -> Secret:
    import getpass

    from ..errors import CredentialsError
    from ..secret import Secret

    if from_stdin:
        value = stdin.readline().rstrip("\r\n")
    elif stdin.isatty():
        value = getpass.getpass(prompt)
    else:
        raise CredentialsError(
            "no terminal to ask for the secret on",
            hint='Pipe it instead: printf %s "$TOKEN" | connect-dev login ... --password-stdin',
        )
    if not value:
        raise CredentialsError("nothing entered; nothing stored")
    return Secret(value)


# --- token / open -----------------------------------------------------------------------------


def run_token(args: argparse.Namespace, *, keychain: Keychain | None = None) -> int:
    _, token = _sign(args, args.method, args.path, keychain)
    print(token)
    return EXIT_OK


def run_open(args: argparse.Namespace, *, keychain: Keychain | None = None) -> int:
    from urllib.parse import urlsplit

    from ..errors import ConfigError

    path = args.path
    if not urlsplit(path).scheme and not path.startswith("/"):
        path = "/" + path
    tenant, token = _sign(args, "GET", path, keychain, base_url=args.base_url)
    if urlsplit(path).scheme:
        url = path
    else:
        base = (args.base_url or tenant.addon_base_url).rstrip("/")
        if not urlsplit(base).scheme:
            raise ConfigError(
                f"tenant {tenant.client_key} has no add-on base URL",
                hint="Pass --base-url URL (the add-on's public URL).",
            )
        url = base + path
    separator = "&" if urlsplit(url).query else "?"
    url = f"{url}{separator}jwt={token}"
    print(url, flush=True)
    if args.browser:
        failure = _start_browser(url)
        if failure:
            _say(f"no web browser could be started ({failure}); open the URL above by hand.")
    return EXIT_OK


def _start_browser(url: str) -> str:
    """Open ``url`` in a web browser: "" when one took it, else why not."""
    import webbrowser

    try:
        if webbrowser.open(url):
            return ""
    except Exception as exc:  # webbrowser.Error, or an OSError from the browser command
        return str(exc) or type(exc).__name__
    return "none is available here (set BROWSER to choose one)"


def _sign(
    args: argparse.Namespace,
    method: str,
    path: str,
    keychain: Keychain | None,
    *,
    base_url: str | None = None,
) -> tuple[Tenant, str]:
    from urllib.parse import urlsplit

    from .. import jwt
    from ..errors import ConfigError
    from ..tenants import TenantStore

    if not 1 <= args.ttl <= MAX_TTL_S:
        raise ConfigError(f"--ttl {args.ttl}: must be between 1 and {MAX_TTL_S} seconds")
    config = _load_config(args)
    store = TenantStore(config.ledger_path.parent, keychain)
    tenant, secret = store.select(args.tenant, addon_key=_descriptor_key(config))
    if not tenant.installed:
        _say(
            f"warning: tenant {tenant.client_key} was uninstalled since; the add-on may have "
            "forgotten it"
        )
    parts = urlsplit(path)
    base_path = urlsplit(base_url or tenant.addon_base_url).path
    if parts.scheme:
        # A whole URL: the qsh is of its path relative to the add-on's base URL.
        relative, query = parts.path, parts.query
    else:
        relative, _, query = path.partition("?")
        base_path = ""
    claims = jwt.make_claims(
        tenant.client_key, method, relative, query, base_path, ttl=args.ttl, sub=args.sub
    )
    logger.info(
        "signed %s %s for tenant %s (%s), valid %d s",
        method.upper(),
        path,
        tenant.client_key,
        tenant.host,
        args.ttl,
    )
    return tenant, jwt.encode_hs256(claims, secret.reveal())


def _descriptor_key(config: Config) -> str | None:
    from .. import descriptor
    from ..errors import DescriptorError

    try:
        return descriptor.load(config.descriptor_path).key
    except DescriptorError:
        return None


# --- helpers ----------------------------------------------------------------------------------


def _load_config(args: argparse.Namespace) -> Config:
    from ..config import find_config, load_config

    return load_config(find_config(args.config))


def _say(message: str) -> None:
    print(f"connect-dev: {message}", file=sys.stderr, flush=True)


def _usage(message: str) -> int:
    print(f"connect-dev: error: {message}", file=sys.stderr)
    return 2

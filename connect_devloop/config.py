"""``connect-dev.toml``: read it, check every key, and say exactly where a mistake is.

Errors name the file, the line and the key, and unknown keys get a "did you mean" hint, because a
typo in a config file should cost seconds, not a debugging session. Any text at all gives either a
``Config`` or a ``ConfigError``: a value that reaches int(), float(), a URL parser or a path must
be checked here, where the key and line are known.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import shlex
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from .errors import ConfigError
from .files import InputFileError, NotUtf8Error, decode_utf8, describe_missing, read_input_file
from .secret import Secret

__all__ = [
    "CONFIG_FILE_NAME",
    "AddonConfig",
    "Config",
    "ForgeConfig",
    "HostConfig",
    "InspectorConfig",
    "NgrokConfig",
    "SshConfig",
    "TunnelConfig",
    "find_config",
    "is_loopback_url",
    "load_config",
    "parse_config",
    "parse_config_bytes",
]

CONFIG_FILE_NAME = "connect-dev.toml"
LEDGER_RELATIVE_PATH = Path(".connect-dev") / "ledger.json"
PROVIDERS = ("auto", "ngrok", "ssh", "none")
PRODUCTS = ("jira", "confluence")
REGISTRARS = ("upm", "forge")
ON_EXIT = ("keep", "uninstall")
MAX_SECONDS = 86400.0  # a day; longer waits are typos, and some clocks overflow on huge ones

# The schema: table -> {key: expected type name}. "hosts" is an array of tables.
_SCHEMA: dict[str, dict[str, str]] = {
    "": {"descriptor": "string", "addon": "table", "proxy": "table", "inspector": "table",
         "tunnel": "table", "forge": "table", "hosts": "array of tables"},
    "addon": {"url": "string", "command": "string or array of strings", "cwd": "string",
              "env": "table", "restart_on": "array of strings", "ready_path": "string",
              "ready_timeout": "number", "stop_timeout": "number"},
    "proxy": {"port": "integer"},
    "inspector": {"capture": "boolean", "keep": "integer", "max_body": "integer"},
    "tunnel": {"provider": "string", "public_url": "string", "health_interval": "number",
               "health_timeout": "number", "ngrok": "table", "ssh": "table"},
    "tunnel.ngrok": {"authtoken_env": "string", "domain": "string", "region": "string",
                     "path": "string", "config_path": "string", "download": "boolean"},
    "tunnel.ssh": {"target": "string", "port": "integer", "identity_file": "string",
                   "remote_port": "integer", "remote_bind": "string", "url_pattern": "string",
                   "options": "array of strings", "path": "string"},
    "forge": {"manifest": "string", "environment": "string",
              "command": "string or array of strings", "on_exit": "string",
              "deploy_timeout": "number", "install_timeout": "number",
              "uninstall_timeout": "number"},
    "hosts": {"name": "string", "url": "string", "product": "string", "username": "string",
              "password_env": "string", "password": "string", "keys_url": "string",
              "registrar": "string", "site": "string"},
}  # fmt: skip
# Keys of a UPM host that a Forge host must not have, and why.
_NOT_FOR_FORGE = {
    "url": (
        "a Forge host is named by its site, not a URL",
        'Remove url; write the site\'s host name, e.g. site = "your-site.atlassian.net".',
    ),
    "username": (
        "the Forge CLI logs in by itself",
        "Remove it: `connect-dev login --forge` keeps the login, or set FORGE_EMAIL and "
        "FORGE_API_TOKEN in the environment.",
    ),
    "password_env": (
        "the Forge CLI logs in by itself",
        "Remove it: `connect-dev login --forge` keeps the login, or set FORGE_EMAIL and "
        "FORGE_API_TOKEN in the environment.",
    ),
    "password": (
        "the Forge CLI logs in by itself",
        "Remove it: `connect-dev login --forge` keeps the login, or set FORGE_EMAIL and "
        "FORGE_API_TOKEN in the environment.",
    ),
}


@dataclass(frozen=True)
class HostConfig:
    """One ``[[hosts]]`` entry: a Jira or Confluence site to install the add-on on.

    ``registrar`` says how: ``"upm"`` (UPM REST at ``url``, as ``username``) or ``"forge"``
    (the Forge CLI, on ``site``; ``url`` is then derived from the site and ``username`` is
    empty)."""

    name: str
    url: str
    product: str
    username: str
    password_env: str | None = None
    password: Secret | None = None
    line: int | None = None
    # Where this host's install-signing keys are published (None: the default for the host).
    keys_url: str | None = None
    registrar: str = "upm"
    # forge: the site `forge install --site` is given: "x.atlassian.net", or "host:port"
    site: str | None = None

    @property
    def base_url(self) -> str:
        return self.url.rstrip("/")

    @property
    def is_local(self) -> bool:
        return is_loopback_url(self.url)


@dataclass(frozen=True)
class NgrokConfig:
    """``[tunnel.ngrok]``. Paths are absolute (resolved against the config file's directory)."""

    authtoken_env: str = "NGROK_AUTHTOKEN"
    domain: str | None = None  # a reserved domain, without scheme: "my-addon.ngrok.app"
    region: str | None = None
    path: Path | None = None  # the agent binary; None: looked up (never downloaded unless asked)
    config_path: Path | None = None  # the user's own ngrok.yml, used only when set
    download: bool = False  # let pyngrok download the agent from ngrok.com when it is missing


@dataclass(frozen=True)
class SshConfig:
    """``[tunnel.ssh]``: an ``ssh -N -R`` reverse tunnel to a server the user names."""

    target: str | None = None  # "user@host" or a Host alias from ~/.ssh/config
    port: int = 0  # 0: ssh's default (22 or what ~/.ssh/config says)
    identity_file: Path | None = None
    remote_port: int = 0  # 0: the server allocates one ("Allocated port N")
    remote_bind: str | None = None  # -R bind_address (some services use it as a subdomain)
    url_pattern: str | None = None  # regex finding the public URL in the service's output
    options: tuple[str, ...] = ()  # extra "-o Key=Value" options
    path: str = "ssh"


@dataclass(frozen=True)
class TunnelConfig:
    provider: str = "auto"
    # none: the URL hosts use (default: the proxy's); ssh: a template with {host} and {port}
    public_url: str | None = None
    health_interval: float = 5.0  # seconds between probes of the public URL; 0: no probes
    health_timeout: float = 5.0
    ngrok: NgrokConfig = field(default_factory=NgrokConfig)
    ssh: SshConfig = field(default_factory=SshConfig)


@dataclass(frozen=True)
class ForgeConfig:
    """``[forge]``: how hosts with ``registrar = "forge"`` are installed (docs/forge.md)."""

    manifest: Path  # absolute (resolved against the config file's directory)
    environment: str = "development"
    command: tuple[str, ...] = ("forge",)  # the Forge CLI and any words before its arguments
    on_exit: str = "keep"  # keep | uninstall
    # Bounds of the Forge CLI's steps, in seconds.
    deploy_timeout: float = 600.0
    install_timeout: float = 300.0
    uninstall_timeout: float = 120.0


@dataclass(frozen=True)
class InspectorConfig:
    """``[inspector]``: what the proxy keeps of the traffic (docs/inspector.md)."""

    capture: bool = True
    keep: int = 500  # requests kept, the oldest forgotten first
    max_body: int = 64 * 1024  # bytes kept of each body, each direction; the rest is counted


# A body limit past this is a typo: 500 requests would hold gigabytes.
MAX_INSPECTED_BODY = 16 * 1024 * 1024
MAX_KEPT_REQUESTS = 100_000


@dataclass(frozen=True)
class AddonConfig:
    """``[addon]`` beyond its ``url``: the add-on server as a process ``up`` starts, restarts
    and stops (docs/configuration.md). Without ``command`` nothing is started: ``url`` is only
    probed."""

    command: tuple[str, ...] = ()  # the program and its arguments; () = not started by us
    cwd: Path | None = None  # absolute; None: the config file's directory
    # Added to the add-on's environment. The values may be secrets: kept as Secret, and only
    # the names are ever shown.
    env: tuple[tuple[str, Secret], ...] = ()
    restart_on: tuple[str, ...] = ()  # globs, relative to the config file's directory
    ready_path: str = "/"  # polled on url until it answers (any HTTP status)
    ready_timeout: float = 30.0  # how long the first install waits for that answer
    stop_timeout: float = 5.0  # SIGTERM, then SIGKILL after this many seconds

    @property
    def managed(self) -> bool:
        """True when ``up`` runs the add-on itself."""
        return bool(self.command)


@dataclass(frozen=True)
class Config:
    path: Path
    descriptor_path: Path
    addon_url: str = "http://localhost:3000"
    addon: AddonConfig = field(default_factory=AddonConfig)
    proxy_port: int = 8000
    tunnel: TunnelConfig = field(default_factory=TunnelConfig)
    hosts: tuple[HostConfig, ...] = ()
    # None when the file has neither a [forge] table nor a host with registrar = "forge".
    forge: ForgeConfig | None = None
    inspector: InspectorConfig = field(default_factory=InspectorConfig)
    warnings: tuple[str, ...] = ()
    # Line of each dotted key ("proxy.port", "hosts[1].url") as written in the file, so errors
    # found later (a taken port) can still point at the line.
    key_lines: Mapping[str, int] = field(default_factory=dict, compare=False, repr=False)

    def error(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        """A ConfigError about ``key`` of this file, with its line when the file has the key."""
        return ConfigError(
            message, hint=hint, file=str(self.path), line=self.key_lines.get(key), key=key
        )

    @property
    def project_dir(self) -> Path:
        return self.path.parent

    @property
    def ledger_path(self) -> Path:
        """Where installs are recorded, so a crashed run can be cleaned up."""
        return self.project_dir / LEDGER_RELATIVE_PATH

    @property
    def tunnel_provider(self) -> str:
        """The provider after resolving ``auto``: ngrok when some host is not on loopback."""
        if self.tunnel.provider != "auto":
            return self.tunnel.provider
        return "none" if all(host.is_local for host in self.hosts) else "ngrok"


def is_loopback_url(url: str) -> bool:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:  # "http://[::1" and the like
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def find_config(explicit: str | Path | None, cwd: Path | None = None) -> Path:
    """``--config PATH`` when given, else ``connect-dev.toml`` in the current directory."""
    if explicit is not None:
        path = Path(explicit)
        if path.is_dir():
            path = path / CONFIG_FILE_NAME
    else:
        path = (cwd or Path.cwd()) / CONFIG_FILE_NAME
    # Something that is there but not a file (a FIFO, a directory link) is left to load_config,
    # which says what it is.
    if not os.path.lexists(path):
        create = (
            "Write one with `connect-dev init` (`connect-dev init --example` prints every key), "
            "or pass --config PATH."
        )
        nearby = describe_missing(path, suffix=".toml")
        raise ConfigError(
            "config file not found",
            hint=f"{nearby} {create}" if nearby.startswith("Did you mean") else create,
            file=str(path),
        )
    return path


def load_config(path: Path) -> Config:
    try:
        raw = read_input_file(path)
    except InputFileError as exc:
        hint = describe_missing(path, suffix=".toml") if exc.missing else None
        raise ConfigError(exc.reason, hint=hint, file=str(path)) from exc
    return parse_config_bytes(raw, path)


def parse_config_bytes(raw: bytes, path: Path) -> Config:
    """``load_config`` of bytes already read (a save seen by the watch of a running ``up``)."""
    try:
        text = decode_utf8(raw)
    except NotUtf8Error as exc:
        raise ConfigError(
            f"{exc.reason}; TOML must be UTF-8" if exc.encoding else exc.reason,
            hint="Save it as UTF-8 (most editors offer the encoding in Save As)."
            if exc.encoding
            else "Save it as UTF-8.",
            file=str(path),
            line=exc.line,
        ) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Parse and check a config's text. ``path`` anchors relative paths and error messages."""
    syntax_hint = "Check quotes, brackets and `key = value` syntax on that line."
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # "at end of document" has no number; the last line is where the user must look.
        line = _toml_error_line(str(exc)) or _last_line(text)
        raise ConfigError(
            f"not valid TOML: {_strip_position(str(exc))}",
            hint=syntax_hint,
            file=str(path),
            line=line,
        ) from exc
    except RecursionError as exc:
        raise ConfigError(
            "not valid TOML: arrays or inline tables are nested too deeply",
            hint="No key of connect-dev.toml takes nested values.",
            file=str(path),
            line=_deep_line(text),
        ) from exc
    except ValueError as exc:  # an integer with too many digits for int()
        long_number = _LONG_NUMBER.search(text)
        message = (
            f"a number has more than {_MAX_DIGITS} digits"
            if long_number
            else f"cannot be read: {exc}"
        )
        raise ConfigError(
            f"not valid TOML: {message}",
            hint=syntax_hint,
            file=str(path),
            line=text.count("\n", 0, long_number.start()) + 1 if long_number else _last_line(text),
        ) from exc
    lines = _KeyLines(text)
    reader = _Reader(str(path), lines)
    reader.check_keys("", data)

    descriptor = reader.get(data, "", "descriptor", str, "atlassian-connect.json")
    addon = reader.table(data, "addon")
    proxy = reader.table(data, "proxy")
    tunnel = reader.table(data, "tunnel")
    addon_url = reader.url(
        addon, "addon", "url", reader.get(addon, "addon", "url", str, "http://localhost:3000")
    )
    port = reader.get(proxy, "proxy", "port", int, 8000)
    if not 0 <= port <= 65535:
        reader.fail(
            "proxy",
            "port",
            f"{_show_number(port)} is not a port number (0-65535; 0 = any free port)",
        )
    provider = reader.get(tunnel, "tunnel", "provider", str, "auto")
    if provider not in PROVIDERS:
        reader.fail(
            "tunnel",
            "provider",
            f"{_show(provider)} is not one of {', '.join(PROVIDERS)}",
            hint=_did_you_mean(provider, PROVIDERS),
        )
    if not descriptor:
        reader.fail(
            "", "descriptor", "must not be empty", hint='e.g. descriptor = "atlassian-connect.json"'
        )
    descriptor_path = reader.path("", "descriptor", descriptor, path.parent, expand_user=False)
    assert descriptor_path is not None  # descriptor is not empty
    addon_config = _read_addon(reader, addon, path.parent)
    tunnel_config = _read_tunnel(reader, tunnel, provider, path.parent)
    forge = _read_forge(reader, reader.table(data, "forge"), path.parent)
    inspector = _read_inspector(reader, reader.table(data, "inspector"))

    hosts, warnings = _read_hosts(reader, data)
    _check_public_url(reader, tunnel_config, hosts)
    uses_forge = "forge" in data or any(host.registrar == "forge" for host in hosts)
    return Config(
        path=path,
        descriptor_path=descriptor_path,
        addon_url=addon_url.rstrip("/"),
        addon=addon_config,
        proxy_port=port,
        tunnel=tunnel_config,
        hosts=tuple(hosts),
        forge=forge if uses_forge else None,
        inspector=inspector,
        warnings=tuple(warnings),
        key_lines=lines.dotted(),
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_FIELDS = frozenset({"host", "port"})
# [addon] keys that mean something only for an add-on process ``up`` starts.
_ONLY_WITH_COMMAND = ("cwd", "env", "restart_on", "ready_timeout", "stop_timeout")


def _read_inspector(reader: _Reader, table: Mapping[str, Any]) -> InspectorConfig:
    capture = reader.get(table, "inspector", "capture", bool, True)
    keep = reader.get(table, "inspector", "keep", int, 500)
    if not 1 <= keep <= MAX_KEPT_REQUESTS:
        reader.fail(
            "inspector",
            "keep",
            f"{_show_number(keep)} is not a number of requests to keep (1-{MAX_KEPT_REQUESTS:,})",
            hint="To capture nothing, set capture = false.",
        )
    max_body = reader.get(table, "inspector", "max_body", int, 64 * 1024)
    if not 0 <= max_body <= MAX_INSPECTED_BODY:
        reader.fail(
            "inspector",
            "max_body",
            f"{_show_number(max_body)} is not a body size in bytes (0-{MAX_INSPECTED_BODY:,})",
            hint="e.g. max_body = 65536 (64 KB of each body; the rest is counted, not kept)",
        )
    return InspectorConfig(capture=capture, keep=keep, max_body=max_body)


def _read_addon(reader: _Reader, table: Mapping[str, Any], base: Path) -> AddonConfig:
    name = "addon"
    command = _read_addon_command(reader, table)
    if not command:
        for key in _ONLY_WITH_COMMAND:
            if key in table:
                reader.fail(
                    name,
                    key,
                    "is used only with command: the add-on process connect-dev starts",
                    hint='Add command = "..." (how to start your add-on server, e.g. '
                    '"python app.py"), or remove ' + key + ".",
                )
    cwd = reader.path(name, "cwd", reader.get(table, name, "cwd", str, ""), base)
    env: list[tuple[str, Secret]] = []
    if "env" in table:
        raw_env = table["env"]
        if not isinstance(raw_env, dict):
            reader.fail(
                name,
                "env",
                f"must be a table of variables, not {_toml_type(raw_env)}",
                hint='e.g. env = { DEBUG = "1" }, or an [addon.env] table',
            )
        for variable, value in raw_env.items():
            if not _ENV_NAME.fullmatch(variable):
                reader.fail(
                    name,
                    "env",
                    f"{_show(variable, 60)} is not an environment variable name",
                    hint="Names are letters, digits and _, not starting with a digit.",
                )
            # The value is never echoed: it may be a token.
            if not isinstance(value, str):
                _fail_env(
                    reader,
                    variable,
                    f"must be a string, not {_toml_type(value)}",
                    hint=f'Quote it: {variable} = "..." (the environment holds only text).',
                )
            if "\x00" in value or _SURROGATE.search(value):
                _fail_env(
                    reader,
                    variable,
                    "holds a NUL character or half of a UTF-16 surrogate pair, which no "
                    "environment variable can hold",
                )
            env.append((variable, Secret(value)))
    restart_on = reader.get(table, name, "restart_on", list, [])
    for pattern in restart_on:
        if not isinstance(pattern, str):
            reader.fail(
                name,
                "restart_on",
                f"{_toml_type(pattern)} is not a glob: each must be a string",
                hint='e.g. restart_on = ["src/**/*.py", "templates/**"]',
            )
        reader.check_text(name, "restart_on", pattern)
        if not pattern.strip() or os.path.isabs(pattern) or pattern.startswith("~"):
            reader.fail(
                name,
                "restart_on",
                f"{_show(pattern)} is not a glob relative to connect-dev.toml",
                hint='e.g. restart_on = ["src/**/*.py", "templates/**"]',
            )
    ready_path = reader.get(table, name, "ready_path", str, "/")
    if not ready_path.startswith("/") or any(c <= " " or c == "\x7f" for c in ready_path):
        reader.fail(
            name,
            "ready_path",
            f"{_show(ready_path)} is not a path: it must start with / and have no spaces",
            hint='e.g. ready_path = "/healthz"',
        )
    timeouts = {}
    for key, default in (("ready_timeout", 30.0), ("stop_timeout", 5.0)):
        timeouts[key] = reader.seconds(table, name, key, default)
        if timeouts[key] <= 0:
            reader.fail(name, key, "must be more than 0 seconds", hint=f"e.g. {key} = {default:g}")
    return AddonConfig(
        command=command,
        cwd=cwd,
        env=tuple(env),
        restart_on=tuple(restart_on),
        ready_path=ready_path,
        **timeouts,
    )


def _fail_env(reader: _Reader, variable: str, message: str, hint: str | None = None) -> NoReturn:
    """An error about one variable of ``[addon] env``, at its line in an ``[addon.env]``
    table, else at the ``env = {...}`` line."""
    line = (
        reader.lines.line("addon.env", variable)
        or reader.lines.line("addon", "env")
        or reader.lines.table_line("addon.env")
    )
    raise ConfigError(message, hint=hint, file=reader.file, line=line, key=f"addon.env.{variable}")


def _read_addon_command(reader: _Reader, table: Mapping[str, Any]) -> tuple[str, ...]:
    """``[addon] command``; () when absent."""
    if "command" not in table:
        return ()
    return _read_words(
        reader,
        "addon",
        table["command"],
        example='e.g. command = "python app.py", or command = ["node", "app.js"]',
        empty="must name the program that runs your add-on server",
        empty_hint=None,
    )


def _read_tunnel(
    reader: _Reader, tunnel: Mapping[str, Any], provider: str, base: Path
) -> TunnelConfig:
    public_url = reader.get(tunnel, "tunnel", "public_url", str, "") or None
    if public_url is not None:
        reader.url(tunnel, "tunnel", "public_url", _fill_url_template(reader, public_url))
    interval = reader.seconds(tunnel, "tunnel", "health_interval", 5.0)
    if interval < 0:
        reader.fail("tunnel", "health_interval", "must be 0 (no probes) or more seconds")
    timeout = reader.seconds(tunnel, "tunnel", "health_timeout", 5.0)
    if timeout <= 0:
        reader.fail("tunnel", "health_timeout", "must be more than 0 seconds")
    return TunnelConfig(
        provider=provider,
        public_url=public_url.rstrip("/") if public_url else None,
        health_interval=interval,
        health_timeout=timeout,
        ngrok=_read_ngrok(reader, reader.table(tunnel, "ngrok", parent="tunnel"), base),
        ssh=_read_ssh(reader, reader.table(tunnel, "ssh", parent="tunnel"), base),
    )


def _fill_url_template(reader: _Reader, template: str) -> str:
    """``public_url`` with {host} and {port} filled with examples, to check it is a URL."""
    hint = (
        "Only {host} and {port} are filled in (provider ssh), "
        'e.g. "https://{port}.tunnel.example.net".'
    )
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError as exc:
        reader.fail("tunnel", "public_url", f"{_show(template)} is not a URL template: {exc}", hint)
    for _, name, spec, conversion in fields:
        if name is None:
            continue
        if name not in _URL_FIELDS:
            return str(
                reader.fail(
                    "tunnel",
                    "public_url",
                    f"{_show(template)} is not a URL template: {_show(name)}",
                    hint=hint,
                )
            )
        # A format spec could ask for a gigabyte of padding ("{port:>999999999}").
        if spec or conversion:
            reader.fail(
                "tunnel",
                "public_url",
                f"{_show(template)} is not a URL template: write {{{name}}} alone, "
                "without a format",
                hint=hint,
            )
    return template.format(host="example.com", port=8000)


def _read_ngrok(reader: _Reader, table: Mapping[str, Any], base: Path) -> NgrokConfig:
    name = "tunnel.ngrok"
    env = reader.get(table, name, "authtoken_env", str, "NGROK_AUTHTOKEN")
    if not _ENV_NAME.fullmatch(env):
        reader.fail(
            name,
            "authtoken_env",
            f"{_not_an_env_name(env)} is not an environment variable name",
            hint="Name the variable (e.g. NGROK_AUTHTOKEN), not the authtoken itself.",
        )
    domain = reader.get(table, name, "domain", str, "") or None
    if domain is not None:
        try:
            parts = urlsplit(domain if "://" in domain else f"https://{domain}")
            hostname = parts.hostname
        except ValueError:
            hostname = None
        if not hostname or parts.scheme != "https" or parts.path not in ("", "/"):
            reader.fail(
                name,
                "domain",
                f"{_show(domain)} is not a domain name",
                hint='Write the reserved domain alone, e.g. domain = "my-addon.ngrok.app".',
            )
        domain = parts.netloc
    region = reader.get(table, name, "region", str, "") or None
    return NgrokConfig(
        authtoken_env=env,
        domain=domain,
        region=region,
        path=reader.path(name, "path", reader.get(table, name, "path", str, ""), base),
        config_path=reader.path(
            name, "config_path", reader.get(table, name, "config_path", str, ""), base
        ),
        download=reader.get(table, name, "download", bool, False),
    )


def _read_ssh(reader: _Reader, table: Mapping[str, Any], base: Path) -> SshConfig:
    name = "tunnel.ssh"
    target = reader.get(table, name, "target", str, "") or None
    if target is not None and (target.startswith("-") or any(c.isspace() for c in target)):
        reader.fail(
            name,
            "target",
            f"{_show(target)} is not an ssh destination",
            hint='e.g. target = "me@my-vps.example.com" (options go in options = [...]).',
        )
    ports = {}
    for key in ("port", "remote_port"):
        ports[key] = reader.get(table, name, key, int, 0)
        if not 0 <= ports[key] <= 65535:
            reader.fail(
                name, key, f"{_show_number(ports[key])} is not a port number (0-65535; 0 = default)"
            )
    pattern = reader.get(table, name, "url_pattern", str, "") or None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            reader.fail(name, "url_pattern", f"not a regular expression: {exc}")
        except (RecursionError, OverflowError, ValueError, MemoryError) as exc:
            # re's parser recurses per group and refuses huge repeat counts with OverflowError.
            reader.fail(name, "url_pattern", f"not a regular expression Python can compile: {exc}")
    options = reader.get(table, name, "options", list, [])
    for option in options:
        if not isinstance(option, str):
            reader.fail(
                name,
                "options",
                f"{_toml_type(option)} is not an ssh option: each must be a string Key=Value",
                hint='e.g. options = ["StrictHostKeyChecking=accept-new"] (each is passed as -o).',
            )
        reader.check_text(name, "options", option)
        if option.startswith("-") or "=" not in option:
            reader.fail(
                name,
                "options",
                f"{_show(option)} is not an ssh option of the form Key=Value",
                hint='e.g. options = ["StrictHostKeyChecking=accept-new"] (each is passed as -o).',
            )
    return SshConfig(
        target=target,
        port=ports["port"],
        identity_file=reader.path(
            name, "identity_file", reader.get(table, name, "identity_file", str, ""), base
        ),
        remote_port=ports["remote_port"],
        remote_bind=reader.get(table, name, "remote_bind", str, "") or None,
        url_pattern=pattern,
        options=tuple(options),
        path=reader.get(table, name, "path", str, "ssh") or "ssh",
    )


def _read_forge(reader: _Reader, table: Mapping[str, Any], base: Path) -> ForgeConfig:
    name = "forge"
    manifest = reader.get(table, name, "manifest", str, "manifest.yml")
    if not manifest:
        reader.fail(name, "manifest", "must not be empty", hint='e.g. manifest = "manifest.yml"')
    manifest_path = reader.path(name, "manifest", manifest, base)
    assert manifest_path is not None  # manifest is not empty
    environment = reader.get(table, name, "environment", str, "development")
    if (
        not environment
        or environment.startswith("-")
        or not _FORGE_ENVIRONMENT.fullmatch(environment)
    ):
        reader.fail(
            name,
            "environment",
            f"{_show(environment)} is not a Forge environment name",
            hint='e.g. environment = "development" (or staging, production, or one of '
            "`forge environments list`).",
        )
    on_exit = reader.get(table, name, "on_exit", str, "keep")
    if on_exit not in ON_EXIT:
        reader.fail(
            name,
            "on_exit",
            f"{_show(on_exit)} is not one of {', '.join(ON_EXIT)}",
            hint=_did_you_mean(on_exit, ON_EXIT)
            or "keep leaves the app installed on exit (deploys are slow; `connect-dev down` "
            'uninstalls it); "uninstall" runs forge uninstall.',
        )
    timeouts = {}
    for key, default in (
        ("deploy_timeout", 600.0),
        ("install_timeout", 300.0),
        ("uninstall_timeout", 120.0),
    ):
        timeouts[key] = reader.seconds(table, name, key, default)
        if timeouts[key] <= 0:
            reader.fail(name, key, "must be more than 0 seconds", hint=f"e.g. {key} = {default:g}")
    return ForgeConfig(
        manifest=manifest_path,
        environment=environment,
        command=_read_command(reader, table),
        on_exit=on_exit,
        **timeouts,
    )


_FORGE_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _read_command(reader: _Reader, table: Mapping[str, Any]) -> tuple[str, ...]:
    """``[forge] command``; the Forge CLI on PATH when absent."""
    if "command" not in table:
        return ("forge",)
    return _read_words(
        reader,
        "forge",
        table["command"],
        example='e.g. command = "npx forge", or command = ["npx", "forge"]',
        empty="must name the Forge CLI",
        empty_hint='e.g. command = "forge" (the default: forge on PATH)',
    )


def _read_words(
    reader: _Reader,
    table: str,
    value: object,
    *,
    example: str,
    empty: str,
    empty_hint: str | None,
) -> tuple[str, ...]:
    """A ``command`` key: a string split as a shell would (without running one), or a list of
    strings; its first word names a program."""
    words: list[str] = []
    if isinstance(value, str):
        reader.check_text(table, "command", value)
        try:
            words = shlex.split(value)
        except ValueError as exc:
            reader.fail(
                table, "command", f"{_show(value)} cannot be split into words: {exc}", example
            )
    elif isinstance(value, list):
        for word in value:
            if not isinstance(word, str):
                reader.fail(
                    table,
                    "command",
                    f"{_toml_type(word)} is not a word of a command: each must be a string",
                    example,
                )
            reader.check_text(table, "command", word)
        words = list(value)
    else:
        reader.fail(
            table,
            "command",
            f"must be a string or an array of strings, not {_toml_type(value)}",
            example,
        )
    if not words or not words[0]:
        reader.fail(table, "command", empty, empty_hint or example)
    return tuple(words)


def _check_public_url(reader: _Reader, tunnel: TunnelConfig, hosts: list[HostConfig]) -> None:
    if tunnel.public_url is None:
        return
    provider = tunnel.provider
    if provider == "auto":
        provider = "none" if all(host.is_local for host in hosts) else "ngrok"
    if provider == "ngrok":
        reader.fail(
            "tunnel",
            "public_url",
            "is not used with provider ngrok: ngrok gives the URL",
            hint='For a tunnel you run yourself at this URL, set provider = "none"; for a fixed '
            "ngrok URL, set [tunnel.ngrok] domain to your reserved domain.",
        )
    if provider == "none" and tunnel.public_url != _fill_url_template(reader, tunnel.public_url):
        reader.fail(
            "tunnel",
            "public_url",
            "{host} and {port} are filled in only with provider ssh",
            hint="With provider none, write the URL hosts use to reach the proxy.",
        )


def _read_hosts(reader: _Reader, data: Mapping[str, Any]) -> tuple[list[HostConfig], list[str]]:
    raw_hosts = data.get("hosts", [])
    if not isinstance(raw_hosts, list) or not all(isinstance(h, dict) for h in raw_hosts):
        reader.fail("", "hosts", "must be an array of tables: write each host as [[hosts]]")
    hosts: list[HostConfig] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(raw_hosts):
        table = f"hosts[{index}]"
        reader.check_keys(table, entry)
        registrar = reader.get(entry, table, "registrar", str, "upm")
        if registrar not in REGISTRARS:
            reader.fail(
                table,
                "registrar",
                f"{_show(registrar)} is not one of {', '.join(REGISTRARS)}",
                hint=_did_you_mean(registrar, REGISTRARS)
                or "upm installs through the host's UPM REST API (the default); forge through "
                "the Forge CLI (Connect on Forge).",
            )
        if registrar == "forge":
            forge_host = _read_forge_host(reader, entry, table)
            _claim_name(reader, seen, table, forge_host.name, index)
            hosts.append(forge_host)
            continue
        if "site" in entry:
            reader.fail(
                table,
                "site",
                'is only used with registrar = "forge": a UPM host is named by its url',
                hint='To install through the Forge CLI, add registrar = "forge" (and remove url, '
                "username and the password); else remove site.",
            )
        if "url" not in entry:
            reader.fail(
                table,
                "url",
                "is required: the site's base URL",
                hint='e.g. url = "https://your-site.atlassian.net"',
            )
        url = reader.url(entry, table, "url", reader.get(entry, table, "url", str, ""))
        name = reader.get(entry, table, "name", str, "") or url.rstrip("/")
        product = reader.get(entry, table, "product", str, _guess_product(url))
        if product not in PRODUCTS:
            reader.fail(
                table,
                "product",
                f"{_show(product)} is not one of jira, confluence",
                hint=_did_you_mean(product, PRODUCTS),
            )
        _check_confluence_cloud_path(reader, table, url, product)
        if "username" not in entry:
            reader.fail(
                table,
                "username",
                "is required",
                hint="Cloud: your Atlassian account e-mail; local SDK hosts: admin",
            )
        username = reader.get(entry, table, "username", str, "")
        password_env = reader.get(entry, table, "password_env", str, "") or None
        if password_env is not None and not _ENV_NAME.fullmatch(password_env):
            reader.fail(
                table,
                "password_env",
                f"{_not_an_env_name(password_env)} is not an environment variable name",
                hint="Name the variable (e.g. JIRA_API_TOKEN), not its value.",
            )
        inline = reader.get(entry, table, "password", str, "") or None
        keys_url = reader.get(entry, table, "keys_url", str, "") or None
        if keys_url is not None:
            reader.url(entry, table, "keys_url", keys_url)
        _claim_name(reader, seen, table, name, index)
        host = HostConfig(
            name=name,
            url=url.rstrip("/"),
            product=product,
            username=username,
            password_env=password_env,
            password=Secret(inline) if inline is not None else None,
            line=reader.lines.table_line(table),
            keys_url=keys_url.rstrip("/") if keys_url is not None else None,
        )
        if inline is not None and not host.is_local:
            warnings.append(
                f"{reader.file}:{reader.lines.line(table, 'password') or '?'}: host {name!r} "
                "has an inline password but is not on loopback; prefer password_env "
                "(or the keychain) so the token is not kept in a file"
            )
        hosts.append(host)
    return hosts, warnings


def _claim_name(reader: _Reader, seen: dict[str, int], table: str, name: str, index: int) -> None:
    if name in seen:
        reader.fail(
            table,
            "name",
            f"{_show(name)} is already the name of hosts[{seen[name]}]",
            hint="Give each [[hosts]] entry its own name.",
        )
    seen[name] = index


def _read_forge_host(reader: _Reader, entry: Mapping[str, Any], table: str) -> HostConfig:
    """A ``[[hosts]]`` entry with ``registrar = "forge"``: a site and a product."""
    for key, (why, hint) in _NOT_FOR_FORGE.items():
        if key in entry:
            reader.fail(table, key, f'is not used with registrar = "forge": {why}', hint=hint)
    if "site" not in entry:
        reader.fail(
            table,
            "site",
            "is required for a Forge host: the site to install on",
            hint='e.g. site = "your-site.atlassian.net"',
        )
    site = _check_site(reader, table, reader.get(entry, table, "site", str, ""))
    if "product" not in entry:
        reader.fail(
            table,
            "product",
            "is required for a Forge host",
            hint='product = "jira" or product = "confluence"',
        )
    product = reader.get(entry, table, "product", str, "")
    if product not in PRODUCTS:
        reader.fail(
            table,
            "product",
            f"{_show(product)} is not one of jira, confluence",
            hint=_did_you_mean(product, PRODUCTS),
        )
    keys_url = reader.get(entry, table, "keys_url", str, "") or None
    if keys_url is not None:
        reader.url(entry, table, "keys_url", keys_url)
    return HostConfig(
        name=reader.get(entry, table, "name", str, "") or site,
        url=site_url(site, product),
        product=product,
        username="",
        line=reader.lines.table_line(table),
        keys_url=keys_url.rstrip("/") if keys_url is not None else None,
        registrar="forge",
        site=site,
    )


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def _check_site(reader: _Reader, table: str, site: str) -> str:
    """``site``: a host name (``x.atlassian.net``), or ``host:port`` (the emulated site);
    no scheme, no path."""
    hint = 'Write the host name of the site alone, e.g. site = "your-site.atlassian.net".'
    if "://" in site:
        scheme = site.split("://", 1)[0]
        reader.fail(
            table,
            "site",
            f"{_show(site)} is not a site: write it without {_show(scheme + '://')}",
            hint=hint,
        )
    if not site or any(character <= " " or character == "\x7f" for character in site):
        reader.fail(
            table, "site", f"{_show(site)} is not a site: it is empty or has a space", hint=hint
        )
    try:
        parts = urlsplit(f"//{site}")
        hostname = parts.hostname
        port = parts.port
    except ValueError as exc:
        return str(reader.fail(table, "site", f"{_show(site)} is not a site: {exc}", hint=hint))
    if parts.path or parts.query or parts.fragment or site.endswith(("?", "#")):
        reader.fail(
            table,
            "site",
            f"{_show(site)} is not a site: it has a path",
            hint=f'{hint} Confluence is product = "confluence", without /wiki.',
        )
    if "@" in parts.netloc:
        reader.fail(table, "site", "the site has a user name in it (before the '@')", hint=hint)
    if not hostname or not _is_host_name(hostname) or (site.endswith(":") and port is None):
        reader.fail(table, "site", f"{_show(site)} is not a host name", hint=hint)
    return site


def _is_host_name(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname)
    except ValueError:
        labels = hostname.rstrip(".").split(".")
        return all(_HOST_LABEL.fullmatch(label) for label in labels)
    return True


def site_url(site: str, product: str) -> str:
    """The base URL of ``product`` on a Forge ``site``: https (http on loopback, the emulated
    site), Confluence under /wiki as on Cloud."""
    scheme = "http" if is_loopback_url(f"http://{site}") else "https"
    return f"{scheme}://{site}" + ("/wiki" if product == "confluence" else "")


def _guess_product(url: str) -> str:
    parts = urlsplit(url)
    return "confluence" if re.search(r"/(wiki|confluence)\b", parts.path) else "jira"


def _check_confluence_cloud_path(reader: _Reader, table: str, url: str, product: str) -> None:
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    if (
        product == "confluence"
        and hostname.endswith(".atlassian.net")
        and not parts.path.rstrip("/").endswith("/wiki")
    ):
        reader.fail(
            table,
            "url",
            f"{_show(url)}: Confluence Cloud lives under /wiki",
            hint=f'use url = "{parts.scheme}://{hostname}/wiki"',
        )


class _Reader:
    """Typed access to the parsed TOML that raises ConfigError pointing at the line."""

    def __init__(self, file: str, lines: _KeyLines) -> None:
        self.file = file
        self.lines = lines

    def fail(self, table: str, key: str, message: str, hint: str | None = None) -> NoReturn:
        dotted = _dotted(table, key)
        # A mistyped table header ([tunel], [[host]]) is found under its own name.
        line = (
            self.lines.line(table, key)
            or self.lines.table_line(dotted)
            or self.lines.table_line(f"{dotted}[0]")
            or self.lines.table_line(table)
        )
        if len(dotted) > 200:  # an unknown key may be any length
            dotted = f"{dotted[:200]}..."
        raise ConfigError(message, hint=hint, file=self.file, line=line, key=dotted)

    def check_keys(self, table: str, data: Mapping[str, Any]) -> None:
        allowed = _SCHEMA[_schema_name(table)]
        for key in data:
            if key not in allowed:
                suggestion = _did_you_mean(key, allowed) or _belongs_elsewhere(table, key)
                hint = suggestion or f"Known keys here: {', '.join(allowed)}."
                self.fail(table, key, "unknown key", hint=hint)

    def table(self, data: Mapping[str, Any], name: str, parent: str = "") -> Mapping[str, Any]:
        value = data.get(name, {})
        dotted = _dotted(parent, name)
        if not isinstance(value, dict):
            self.fail(parent, name, f"must be a table: write [{dotted}] on its own line")
        self.check_keys(dotted, value)
        table: Mapping[str, Any] = value
        return table

    def get(self, data: Mapping[str, Any], table: str, key: str, kind: type, default: Any) -> Any:
        if key not in data:
            return default
        value = data[key]
        # A TOML integer is a fine number of seconds (converted below).
        # bool is an int in Python; TOML's true is never a port.
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:
                self.fail(table, key, f"is more than a day ({MAX_SECONDS:g} seconds)")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            expected = _SCHEMA[_schema_name(table)][key]
            article = "an" if expected[0] in "aeiou" else "a"
            example = {
                "integer": "8000",
                "string": '"text"',
                "number": "5.0",
                "boolean": "true",
                "array of strings": '["text"]',
            }.get(expected)
            self.fail(
                table,
                key,
                f"must be {article} {expected}, not {_toml_type(value)}",
                hint=f"e.g. {key} = {example}" if example else None,
            )
        if isinstance(value, str):
            self.check_text(table, key, value)
        return value

    def check_text(self, table: str, key: str, value: str) -> None:
        """Refuse what no path, URL, name or argument can hold."""
        if "\x00" in value:
            self.fail(
                table,
                key,
                "contains a NUL character (\\u0000)",
                hint="Remove the \\u0000 escape from the string.",
            )
        if _SURROGATE.search(value):
            self.fail(
                table,
                key,
                "contains half of a UTF-16 surrogate pair, which is not a character",
                hint="Write the character itself.",
            )

    def seconds(self, data: Mapping[str, Any], table: str, key: str, default: float) -> float:
        value: float = self.get(data, table, key, float, default)
        if not math.isfinite(value):
            self.fail(
                table, key, f"{value} is not a number of seconds", hint=f"e.g. {key} = {default}"
            )
        if value > MAX_SECONDS:
            self.fail(table, key, f"{value:g} seconds is more than a day ({MAX_SECONDS:g})")
        return value

    def path(
        self, table: str, key: str, value: str, base: Path, *, expand_user: bool = True
    ) -> Path | None:
        """``value`` made absolute against ``base`` (the config's directory); None if empty.
        Symlinks are kept, not resolved: a descriptor that is a link is watched as a link (an
        edit of its target and a re-pointed link are both seen)."""
        if not value:
            return None
        try:
            relative = Path(value).expanduser() if expand_user else Path(value)
            return Path(os.path.abspath(base / relative))
        except RuntimeError as exc:  # "~user" with no such user, or no home directory
            return self.fail(
                table,
                key,
                f"{_show(value)}: {exc}".rstrip("."),
                hint="Write the path without ~, or relative to connect-dev.toml.",
            )
        except (OSError, ValueError) as exc:
            return self.fail(table, key, f"{_show(value)} is not a usable path: {exc}")

    def url(self, data: Mapping[str, Any], table: str, key: str, value: str) -> str:
        hint = 'Write the whole URL, e.g. "http://localhost:3000".'
        if any(character <= " " or character == "\x7f" for character in value):
            self.fail(
                table,
                key,
                f"{_show(value)} is not a URL: it contains a space or a control character",
                hint=hint,
            )
        try:
            parts = urlsplit(value)
            hostname = parts.hostname
        except ValueError as exc:  # "http://[::1": an IPv6 address without its "]"
            return str(self.fail(table, key, f"{_show(value)} is not a URL: {exc}", hint=hint))
        if parts.username is not None or parts.password is not None:
            # Not echoed: the part before "@" is a credential, and this message is printed.
            self.fail(
                table,
                key,
                "the URL has a user name or password in it (before the '@')",
                hint="Write the URL without 'user:password@': credentials in a URL end up in "
                "logs and events. Use username and password_env (or `connect-dev login`).",
            )
        if parts.scheme not in ("http", "https") or not hostname:
            self.fail(table, key, f"{_show(value)} is not an http(s) URL", hint=hint)
        try:
            parts.port  # noqa: B018 (urlsplit checks the port only when asked)
        except ValueError as exc:
            self.fail(table, key, f"{_show(value)} has no valid port: {exc}", hint=hint)
        return value


class _KeyLines:
    """Where each key and table header is in the file (tomllib does not report positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+|\"[^\"]*\"|'[^']*')\s*=")

    def __init__(self, text: str) -> None:
        self._keys: dict[tuple[str, str], int] = {}
        self._tables: dict[str, int] = {}
        counts: dict[str, int] = {}
        table = ""
        # split("\n"), not splitlines(): TOML counts lines by "\n" only, as tomllib's errors do.
        for number, line in enumerate(text.split("\n"), start=1):
            header = self._HEADER.match(line)
            if header:
                name = header.group(2).replace('"', "").replace("'", "").strip()
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    name = f"{name}[{index}]"
                table = name
                self._tables.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                self._keys.setdefault((table, key.group(1).strip("\"'")), number)

    def line(self, table: str, key: str) -> int | None:
        return self._keys.get((table, key))

    def dotted(self) -> dict[str, int]:
        return {_dotted(table, key): number for (table, key), number in self._keys.items()}

    def table_line(self, table: str) -> int | None:
        return self._tables.get(table)


def _schema_name(table: str) -> str:
    return re.sub(r"\[\d+\]$", "", table)


def _dotted(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def _belongs_elsewhere(table: str, key: str) -> str | None:
    """``region`` under [tunnel] belongs in [tunnel.ngrok]: say so instead of listing keys."""
    name = _schema_name(table)
    root = name.split(".")[0]
    homes = [
        other
        for other, keys in _SCHEMA.items()
        if root and other != name and other.split(".")[0] == root and key in keys
    ]
    if homes:
        return f"{key} belongs in " + " or ".join(f"[{home}]" for home in homes)
    # The Forge settings are shared by every Forge host; the site and product are each one's.
    if name == "hosts" and key in _SCHEMA["forge"]:
        return f"{key} belongs in [forge] (one setting for every Forge host)"
    if name == "forge" and key in _SCHEMA["hosts"]:
        return f"{key} belongs in the [[hosts]] entry of each Forge host"
    return None


def _did_you_mean(word: str, choices: Any) -> str | None:
    if len(word) > 100:  # no choice is that long, and difflib would take its time
        return None
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None


def _toml_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return f"a {type(value).__name__}"  # TOML dates and times


_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)")


_SURROGATE = re.compile("[\ud800-\udfff]")
_MAX_DIGITS = 4300  # Python's limit for int("...") (sys.get_int_max_str_digits())
_LONG_NUMBER = re.compile(rf"[0-9][0-9_]{{{_MAX_DIGITS},}}")


def _not_an_env_name(value: str) -> str:
    """How to name a value given where a variable name belongs without echoing it: it is
    most often the token itself, pasted in the wrong key."""
    return f"the value ({len(value)} characters)"


def _show(text: str, limit: int = 200) -> str:
    """``text`` quoted for a message, shortened: a value may be megabytes long."""
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text):,} characters)"
    return repr(text)


def _show_number(number: int) -> str:
    # str() of an integer over 4300 digits raises; TOML hex literals have no such limit.
    return str(number) if number.bit_length() <= 200 else "a number that large"


def _last_line(text: str) -> int:
    return text.rstrip().count("\n") + 1


def _deep_line(text: str, limit: int = 50) -> int:
    """The line where brackets first nest ``limit`` deep, skipping strings and comments
    (roughly: good enough to point at the line that made tomllib recurse too deep)."""
    depth, line, quote, escaped, comment = 0, 1, "", False, False
    for character in text:
        if character == "\n":
            line += 1
            comment = False
        elif comment:
            continue
        elif quote:
            if escaped:
                escaped = False
            elif character == "\\" and quote == '"':
                escaped = True
            elif character == quote:
                quote = ""
        elif character in "\"'":
            quote = character
        elif character == "#":
            comment = True
        elif character in "[{":
            depth += 1
            if depth >= limit:
                return line
        elif character in "]}":
            depth = max(depth - 1, 0)
    return _last_line(text)


def _toml_error_line(message: str) -> int | None:
    match = _POSITION.search(message)
    return int(match.group(1)) if match else None


def _strip_position(message: str) -> str:
    return _POSITION.sub("", message)

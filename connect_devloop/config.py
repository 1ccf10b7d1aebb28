"""``connect-dev.toml``: read it, check every key, and say exactly where a mistake is.

Errors name the file, the line and the key, and unknown keys get a "did you mean" hint, because a
typo in a config file should cost seconds, not a debugging session.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .credentials import Secret
from .errors import ConfigError

__all__ = [
    "CONFIG_FILE_NAME",
    "Config",
    "HostConfig",
    "NgrokConfig",
    "SshConfig",
    "TunnelConfig",
    "find_config",
    "is_loopback_url",
    "load_config",
    "parse_config",
]

CONFIG_FILE_NAME = "connect-dev.toml"
LEDGER_RELATIVE_PATH = Path(".connect-dev") / "ledger.json"
PROVIDERS = ("auto", "ngrok", "ssh", "none")
PRODUCTS = ("jira", "confluence")

# The schema: table -> {key: expected type name}. "hosts" is an array of tables.
_SCHEMA: dict[str, dict[str, str]] = {
    "": {"descriptor": "string", "addon": "table", "proxy": "table", "tunnel": "table",
         "hosts": "array of tables"},
    "addon": {"url": "string"},
    "proxy": {"port": "integer"},
    "tunnel": {"provider": "string", "public_url": "string", "health_interval": "number",
               "health_timeout": "number", "ngrok": "table", "ssh": "table"},
    "tunnel.ngrok": {"authtoken_env": "string", "domain": "string", "region": "string",
                     "path": "string", "config_path": "string", "download": "boolean"},
    "tunnel.ssh": {"target": "string", "port": "integer", "identity_file": "string",
                   "remote_port": "integer", "remote_bind": "string", "url_pattern": "string",
                   "options": "array of strings", "path": "string"},
    "hosts": {"name": "string", "url": "string", "product": "string", "username": "string",
              "password_env": "string", "password": "string", "keys_url": "string"},
}  # fmt: skip


@dataclass(frozen=True)
class HostConfig:
    """One ``[[hosts]]`` entry: a Jira or Confluence site to install the add-on on."""

    name: str
    url: str
    product: str
    username: str
    password_env: str | None = None
    password: Secret | None = None
    line: int | None = None
    # Where this host's install-signing keys are published (None: the default for the host).
    keys_url: str | None = None

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
class Config:
    path: Path
    descriptor_path: Path
    addon_url: str = "http://localhost:3000"
    proxy_port: int = 8000
    tunnel: TunnelConfig = field(default_factory=TunnelConfig)
    hosts: tuple[HostConfig, ...] = ()
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
    host = (urlsplit(url).hostname or "").lower()
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
    if not path.is_file():
        raise ConfigError(
            "config file not found",
            hint=f"Create {CONFIG_FILE_NAME} (see config.example.toml) or pass --config PATH.",
            file=str(path),
        )
    return path


def load_config(path: Path) -> Config:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("not UTF-8 text", file=str(path)) from exc
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Parse and check a config's text. ``path`` anchors relative paths and error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        raise ConfigError(
            f"not valid TOML: {_strip_position(str(exc))}",
            hint="Check quotes, brackets and `key = value` syntax on that line.",
            file=str(path),
            line=line,
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
        reader.fail("proxy", "port", f"{port} is not a port number (0-65535; 0 = any free port)")
    provider = reader.get(tunnel, "tunnel", "provider", str, "auto")
    if provider not in PROVIDERS:
        reader.fail(
            "tunnel",
            "provider",
            f"{provider!r} is not one of {', '.join(PROVIDERS)}",
            hint=_did_you_mean(provider, PROVIDERS),
        )
    tunnel_config = _read_tunnel(reader, tunnel, provider, path.parent)

    hosts, warnings = _read_hosts(reader, data)
    _check_public_url(reader, tunnel_config, hosts)
    return Config(
        path=path,
        descriptor_path=(path.parent / descriptor).resolve(),
        addon_url=addon_url.rstrip("/"),
        proxy_port=port,
        tunnel=tunnel_config,
        hosts=tuple(hosts),
        warnings=tuple(warnings),
        key_lines=lines.dotted(),
    )


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_URL_FIELDS = frozenset({"host", "port"})


def _read_tunnel(
    reader: _Reader, tunnel: Mapping[str, Any], provider: str, base: Path
) -> TunnelConfig:
    public_url = reader.get(tunnel, "tunnel", "public_url", str, "") or None
    if public_url is not None:
        reader.url(tunnel, "tunnel", "public_url", _fill_url_template(reader, public_url))
    interval = reader.get(tunnel, "tunnel", "health_interval", float, 5.0)
    if interval < 0:
        reader.fail("tunnel", "health_interval", "must be 0 (no probes) or more seconds")
    timeout = reader.get(tunnel, "tunnel", "health_timeout", float, 5.0)
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
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = sorted(fields - _URL_FIELDS)
        if unknown:
            raise KeyError(unknown[0])
        return template.format(host="example.com", port=8000)
    except (KeyError, ValueError, IndexError) as exc:
        return str(
            reader.fail(
                "tunnel",
                "public_url",
                f"{template!r} is not a URL template: {exc}",
                hint="Only {host} and {port} are filled in (provider ssh), "
                'e.g. "https://{port}.tunnel.example.net".',
            )
        )


def _read_ngrok(reader: _Reader, table: Mapping[str, Any], base: Path) -> NgrokConfig:
    name = "tunnel.ngrok"
    env = reader.get(table, name, "authtoken_env", str, "NGROK_AUTHTOKEN")
    if not _ENV_NAME.fullmatch(env):
        reader.fail(
            name,
            "authtoken_env",
            f"{env!r} is not an environment variable name",
            hint="Name the variable (e.g. NGROK_AUTHTOKEN), not the authtoken itself.",
        )
    domain = reader.get(table, name, "domain", str, "") or None
    if domain is not None:
        parts = urlsplit(domain if "://" in domain else f"https://{domain}")
        if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            reader.fail(
                name,
                "domain",
                f"{domain!r} is not a domain name",
                hint='Write the reserved domain alone, e.g. domain = "my-addon.ngrok.app".',
            )
        domain = parts.netloc
    region = reader.get(table, name, "region", str, "") or None
    return NgrokConfig(
        authtoken_env=env,
        domain=domain,
        region=region,
        path=_path(reader.get(table, name, "path", str, ""), base),
        config_path=_path(reader.get(table, name, "config_path", str, ""), base),
        download=reader.get(table, name, "download", bool, False),
    )


def _read_ssh(reader: _Reader, table: Mapping[str, Any], base: Path) -> SshConfig:
    name = "tunnel.ssh"
    target = reader.get(table, name, "target", str, "") or None
    if target is not None and (target.startswith("-") or any(c.isspace() for c in target)):
        reader.fail(
            name,
            "target",
            f"{target!r} is not an ssh destination",
            hint='e.g. target = "me@my-vps.example.com" (options go in options = [...]).',
        )
    ports = {}
    for key in ("port", "remote_port"):
        ports[key] = reader.get(table, name, key, int, 0)
        if not 0 <= ports[key] <= 65535:
            reader.fail(name, key, f"{ports[key]} is not a port number (0-65535; 0 = default)")
    pattern = reader.get(table, name, "url_pattern", str, "") or None
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            reader.fail(name, "url_pattern", f"not a regular expression: {exc}")
    options = reader.get(table, name, "options", list, [])
    for option in options:
        if not isinstance(option, str) or option.startswith("-") or "=" not in option:
            reader.fail(
                name,
                "options",
                f"{option!r} is not an ssh option of the form Key=Value",
                hint='e.g. options = ["StrictHostKeyChecking=accept-new"] (each is passed as -o).',
            )
    return SshConfig(
        target=target,
        port=ports["port"],
        identity_file=_path(reader.get(table, name, "identity_file", str, ""), base),
        remote_port=ports["remote_port"],
        remote_bind=reader.get(table, name, "remote_bind", str, "") or None,
        url_pattern=pattern,
        options=tuple(options),
        path=reader.get(table, name, "path", str, "ssh") or "ssh",
    )


def _path(value: str, base: Path) -> Path | None:
    return (base / Path(value).expanduser()).resolve() if value else None


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
                f"{product!r} is not one of jira, confluence",
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
        if password_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env):
            reader.fail(
                table,
                "password_env",
                f"{password_env!r} is not an environment variable name",
                hint="Name the variable (e.g. JIRA_API_TOKEN), not its value.",
            )
        inline = reader.get(entry, table, "password", str, "") or None
        keys_url = reader.get(entry, table, "keys_url", str, "") or None
        if keys_url is not None:
            reader.url(entry, table, "keys_url", keys_url)
        if name in seen:
            reader.fail(
                table,
                "name",
                f"{name!r} is already the name of hosts[{seen[name]}]",
                hint="Give each [[hosts]] entry its own name.",
            )
        seen[name] = index
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
            f"{url!r}: Confluence Cloud lives under /wiki",
            hint=f'use url = "{parts.scheme}://{hostname}/wiki"',
        )


class _Reader:
    """Typed access to the parsed TOML that raises ConfigError pointing at the line."""

    def __init__(self, file: str, lines: _KeyLines) -> None:
        self.file = file
        self.lines = lines

    def fail(self, table: str, key: str, message: str, hint: str | None = None) -> Any:
        dotted = _dotted(table, key)
        # A mistyped table header ([tunel], [[host]]) is found under its own name.
        line = (
            self.lines.line(table, key)
            or self.lines.table_line(dotted)
            or self.lines.table_line(f"{dotted}[0]")
            or self.lines.table_line(table)
        )
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
        # A TOML integer is a fine number of seconds.
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        # bool is an int in Python; TOML's true is never a port.
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
        return value

    def url(self, data: Mapping[str, Any], table: str, key: str, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(
                table,
                key,
                f"{value!r} is not an http(s) URL",
                hint='Write the whole URL, e.g. "http://localhost:3000".',
            )
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
        for number, line in enumerate(text.splitlines(), start=1):
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
    return f"{key} belongs in " + " or ".join(f"[{home}]" for home in homes) if homes else None


def _did_you_mean(word: str, choices: Any) -> str | None:
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


def _toml_error_line(message: str) -> int | None:
    match = _POSITION.search(message)
    return int(match.group(1)) if match else None


def _strip_position(message: str) -> str:
    return _POSITION.sub("", message)

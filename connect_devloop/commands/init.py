"""``connect-dev init``: a commented ``connect-dev.toml`` for the add-on in this directory.

- From flags (``--addon-url``, ``--addon-command``, ``--host-url``, ``--host-user``,
  ``--product``, ``--tunnel`` ...), and on a terminal from a few questions for what the flags
  leave out, each with its default. Without a terminal nothing is asked: the defaults are used.
- Never a secret in the file: a host's password or API token goes to the keychain (``connect-dev
  login``), to an environment variable (``password_env``), or is asked by ``up``. The last lines
  say what to run next.
- An existing file is never replaced without ``--force``. What is written is checked by the
  config's own parser first: ``init`` writes nothing that ``up`` would refuse.
- ``init --example`` prints the example of every key with its comment, which ships inside the
  package (``connect_devloop/config.example.toml``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_ADDON_URL",
    "DEFAULT_HOST_URL",
    "Answers",
    "add_parser",
    "example_text",
    "render_config",
    "run_init",
]

EXIT_OK = 0
DEFAULT_DESCRIPTOR = "atlassian-connect.json"
DEFAULT_ADDON_URL = "http://localhost:3000"
# `connect-dev host` with its defaults, and a local SDK Jira (atlas-run): the same URL.
DEFAULT_HOST_URL = "http://localhost:2990/jira"
DEFAULT_LOCAL_USER = "admin"
TUNNELS = ("auto", "ngrok", "ssh", "none")
PRODUCTS = ("jira", "confluence")
API_TOKENS_URL = "https://id.atlassian.com/manage-profile/security/api-tokens"
# The options that give an answer; --example takes none of them.
_ANSWER_OPTIONS = (
    "descriptor",
    "addon_url",
    "addon_command",
    "host_url",
    "host_user",
    "product",
    "tunnel",
    "ssh_target",
    "public_url",
)


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_verbose: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``init`` to the ``connect-dev`` parser."""
    init = commands.add_parser(
        "init",
        help="write a commented connect-dev.toml (--example: print every key)",
        description="Write a commented connect-dev.toml for the add-on in this directory, from "
        "the options below, and on a terminal from a few questions for what they leave out "
        "(Enter keeps the default). No password or token is written: the last lines say how "
        "to keep one in the keychain (connect-dev login). An existing file is kept unless "
        "--force is given. --example prints the example of every key, with its comment.",
    )
    init.add_argument(
        "--example",
        action="store_true",
        help="print the commented example of every key and exit",
    )
    init.add_argument(
        "--force", action="store_true", help="replace the file if it is there (default: keep it)"
    )
    init.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help="the file to write, or a directory for PATH/connect-dev.toml (default: "
        "./connect-dev.toml)",
    )
    init.add_argument(
        "--descriptor",
        metavar="PATH",
        help=f"the add-on descriptor, relative to the file (default: {DEFAULT_DESCRIPTOR})",
    )
    init.add_argument(
        "--addon-url",
        metavar="URL",
        help="your add-on server, any language (default: the descriptor's baseUrl when it is "
        f"on loopback, else {DEFAULT_ADDON_URL})",
    )
    init.add_argument(
        "--addon-command",
        metavar="COMMAND",
        help="the command that starts your add-on server, for `up` to run, e.g. "
        '"npm start" (default: none: you start it yourself)',
    )
    init.add_argument(
        "--host-url",
        metavar="URL",
        help="the Jira or Confluence site, context path included, e.g. "
        "https://your-site.atlassian.net (default: "
        f"{DEFAULT_HOST_URL}: `connect-dev host` or a local SDK Jira)",
    )
    init.add_argument(
        "--host-user",
        metavar="NAME",
        help="a site admin: on Cloud your Atlassian account email (default: "
        f"{DEFAULT_LOCAL_USER} for a host on loopback; needed for any other)",
    )
    init.add_argument(
        "--product",
        choices=PRODUCTS,
        help="the product of the site (default: confluence when the URL path is /wiki or "
        "/confluence, else jira)",
    )
    init.add_argument(
        "--tunnel",
        choices=TUNNELS,
        help="how hosts reach connect-dev (default: auto: no tunnel while every host is on "
        "loopback, else ngrok; ssh with --ssh-target)",
    )
    init.add_argument(
        "--ssh-target",
        metavar="USER@HOST",
        help="with --tunnel ssh: the server to tunnel through (default: asked on a terminal)",
    )
    init.add_argument(
        "--public-url",
        metavar="URL",
        help="with --tunnel none: the URL hosts reach connect-dev's proxy at, e.g. a tunnel "
        "you run yourself (default: the proxy's own, http://127.0.0.1:8000)",
    )
    add_verbose(init)
    init.set_defaults(command="init", run=run_init)


@dataclass(frozen=True)
class Answers:
    """What goes into the file; every field already checked."""

    descriptor: str = DEFAULT_DESCRIPTOR
    addon_url: str = DEFAULT_ADDON_URL
    addon_command: str = ""
    host_url: str = DEFAULT_HOST_URL
    host_user: str = DEFAULT_LOCAL_USER
    product: str = "jira"
    tunnel: str = "auto"
    ssh_target: str = ""
    public_url: str = ""

    @property
    def host_is_local(self) -> bool:
        from ..config import is_loopback_url

        return is_loopback_url(self.host_url)

    @property
    def host_name(self) -> str:
        """``local-jira`` for a host on loopback, else the site's first label and the product:
        ``your-site-jira``."""
        if self.host_is_local:
            return f"local-{self.product}"
        import ipaddress

        hostname = urlsplit(self.host_url).hostname or "dev"
        try:
            label = str(ipaddress.ip_address(hostname)).replace(".", "-").replace(":", "-")
        except ValueError:
            label = hostname.split(".")[0]
        return f"{label}-{self.product}"

    @property
    def uses_ngrok(self) -> bool:
        return self.tunnel == "ngrok" or (self.tunnel == "auto" and not self.host_is_local)


def example_text() -> str:
    """``config.example.toml``, as shipped in the package."""
    from importlib import resources

    return resources.files("connect_devloop").joinpath("config.example.toml").read_text("utf-8")


def run_init(
    args: argparse.Namespace,
    *,
    stdin: TextIO | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    from ..errors import ConfigError

    stdin = stdin or sys.stdin
    out = out or sys.stdout
    err = err or sys.stderr
    if args.example:
        given = [name for name in ("force", "config", *_ANSWER_OPTIONS) if getattr(args, name)]
        if given:
            raise ConfigError(
                f"--example prints the example and takes no other option (not --{_flag(given[0])})",
                hint="Redirect it to start from every key: connect-dev init --example > "
                "connect-dev.toml",
            )
        out.write(example_text())
        out.flush()
        return EXIT_OK
    path = _target(args.config)
    if os.path.lexists(path) and not args.force:
        raise _exists(path)
    ask = _Questions(stdin, err) if stdin.isatty() else None
    answers = _gather(args, path.parent, ask)
    text = render_config(answers)
    _check(text, path)
    _write(path, text, replace=args.force)
    for line in _report(answers, path):
        print(line, file=out)
    out.flush()
    return EXIT_OK


# --- answers ------------------------------------------------------------------------------------


class _Questions:
    """The questions on a terminal: each on stderr with its default, the answer from stdin; a
    wrong answer is said and asked again."""

    def __init__(self, stdin: TextIO, err: TextIO) -> None:
        self.stdin = stdin
        self.err = err
        self.greeted = False

    def __call__(self, question: str, default: str, check: Callable[[str], str | None]) -> str:
        from ..errors import DevloopError

        if not self.greeted:
            self.greeted = True
            self.err.write(
                "connect-dev init: a few questions; Enter keeps the [default]. Nothing secret "
                "is asked or written.\n"
            )
        while True:
            self.err.write(f"{question}{f' [{default}]' if default else ''}: ")
            self.err.flush()
            line = self.stdin.readline()
            if not line:
                self.err.write("\n")
                raise DevloopError("no answer (end of input); nothing written")
            answer = line.strip() or default
            problem = check(answer)
            if problem is None:
                return answer
            self.err.write(f"  {problem}\n")


Ask = Callable[[str, str, Callable[[str], str | None]], str]


def _gather(args: argparse.Namespace, directory: Path, ask: Ask | None) -> Answers:
    """Each answer from its flag, else asked (on a terminal), else its default."""

    def answer(flag: str, question: str, default: str, check: Callable[[str], str | None]) -> str:
        from ..errors import ConfigError

        given: str | None = getattr(args, flag)
        if given is not None:
            problem = check(given)
            if problem is not None:
                raise ConfigError(f"--{_flag(flag)} {given!r}: {problem}")
            return given
        if ask is None:
            problem = check(default)
            if problem is not None:
                raise ConfigError(
                    f"--{_flag(flag)} is needed here: {problem}", hint=_needed_hint(flag)
                )
            return default
        return ask(question, default, check)

    descriptor = answer("descriptor", "Descriptor", DEFAULT_DESCRIPTOR, _path_problem)
    document = _read_descriptor(directory / descriptor)
    base_url = document.get("baseUrl") if document else None
    addon_default = DEFAULT_ADDON_URL
    if isinstance(base_url, str) and _url_problem(base_url) is None:
        from ..config import is_loopback_url

        if is_loopback_url(base_url):
            addon_default = base_url.rstrip("/")
    addon_url = answer("addon_url", "Add-on server URL", addon_default, _url_problem)
    addon_command = answer(
        "addon_command",
        "Command that starts it (empty: you start it yourself)",
        "",
        _command_problem,
    )
    host_url = answer(
        "host_url", "Jira or Confluence URL (context path included)", DEFAULT_HOST_URL, _url_problem
    ).rstrip("/")
    from ..config import is_loopback_url

    local = is_loopback_url(host_url)
    host_user = answer(
        "host_user",
        "Admin user on it" if local else "Admin user on it (on Cloud: your Atlassian email)",
        DEFAULT_LOCAL_USER if local else "",
        _user_problem,
    )
    product = args.product or _product_of(host_url)
    ssh_default = "ssh" if args.ssh_target else "auto"
    tunnel = answer(
        "tunnel",
        "Tunnel: auto (none while every host is on loopback, else ngrok), ngrok, ssh or none",
        ssh_default,
        _tunnel_problem,
    )
    ssh_target = ""
    public_url = ""
    if tunnel == "ssh":
        ssh_target = answer(
            "ssh_target", "ssh server to tunnel through (user@host)", "", _ssh_target_problem
        )
    elif args.ssh_target is not None:
        raise _only_with("ssh-target", "ssh", tunnel)
    if tunnel == "none" and not local:
        public_url = answer(
            "public_url",
            "URL hosts reach the proxy at (a tunnel you run to port 8000)",
            "",
            _optional_url_problem,
        )
    elif args.public_url is not None:
        if tunnel != "none":
            raise _only_with("public-url", "none", tunnel)
        problem = _optional_url_problem(args.public_url)
        if problem is not None:
            from ..errors import ConfigError

            raise ConfigError(f"--public-url {args.public_url!r}: {problem}")
        public_url = args.public_url
    return Answers(
        descriptor=descriptor,
        addon_url=addon_url.rstrip("/"),
        addon_command=addon_command,
        host_url=host_url,
        host_user=host_user,
        product=product,
        tunnel=tunnel,
        ssh_target=ssh_target,
        public_url=public_url.rstrip("/"),
    )


def _read_descriptor(path: Path) -> dict[str, object] | None:
    """The descriptor's JSON, when it is there and is JSON: only to offer its baseUrl."""
    try:
        document = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def _product_of(url: str) -> str:
    path = urlsplit(url).path.rstrip("/").lower()
    return "confluence" if path in ("/wiki", "/confluence") else "jira"


def _url_problem(value: str) -> str | None:
    try:
        parts = urlsplit(value)
        hostname = parts.hostname
    except ValueError:
        hostname = None
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not hostname
        or any(c.isspace() or c in '"\\' for c in value)
    ):
        return "not an http:// or https:// URL"
    if parts.query or parts.fragment:
        return "a base URL has no ?query or #fragment"
    return None


def _optional_url_problem(value: str) -> str | None:
    return None if not value else _url_problem(value)


def _path_problem(value: str) -> str | None:
    if not value.strip():
        return "must name the descriptor file"
    if any(ord(c) < 32 for c in value):
        return "a file name has no control characters"
    return None


def _command_problem(value: str) -> str | None:
    if any(ord(c) < 32 for c in value):
        return "a command line has no control characters"
    try:
        shlex.split(value)
    except ValueError as exc:
        return f"cannot be split into words as a shell would: {exc}"
    return None


def _user_problem(value: str) -> str | None:
    if not value:
        return "a host that is not on loopback needs the name of a site admin"
    if any(c.isspace() or ord(c) < 32 for c in value):
        return "a user name has no spaces"
    return None


def _tunnel_problem(value: str) -> str | None:
    return None if value in TUNNELS else f"one of {', '.join(TUNNELS)}"


def _ssh_target_problem(value: str) -> str | None:
    if not value:
        return "the ssh tunnel needs a server: user@host, or a Host of ~/.ssh/config"
    if any(c.isspace() or ord(c) < 32 for c in value) or value.startswith("-"):
        return "not an ssh destination: user@host, or a Host of ~/.ssh/config"
    return None


def _needed_hint(flag: str) -> str | None:
    if flag == "host_user":
        return "e.g. --host-user me@example.com (on Cloud, your Atlassian account email)"
    if flag == "ssh_target":
        return "e.g. --ssh-target me@my-vps.example.com"
    return None


def _only_with(flag: str, tunnel: str, chosen: str) -> Exception:
    from ..errors import ConfigError

    return ConfigError(
        f"--{flag} goes with --tunnel {tunnel}, not {chosen}",
        hint=f"Add --tunnel {tunnel}, or leave --{flag} out.",
    )


def _flag(dest: str) -> str:
    return dest.replace("_", "-")


# --- the file -----------------------------------------------------------------------------------


def render_config(answers: Answers) -> str:
    """The commented ``connect-dev.toml`` for ``answers``; never a secret."""
    name = answers.host_name
    lines = [
        "# connect-dev.toml, written by `connect-dev init`: the dev loop of this add-on.",
        "# Every key, with what it does: `connect-dev init --example` (or docs/configuration.md).",
        "# No password or token belongs in this file: see [[hosts]] below.",
        "",
        "# The add-on descriptor, relative to this file. Each save re-installs the add-on.",
        f"descriptor = {_toml_string(answers.descriptor)}",
        "",
        "[addon]",
        "# Your add-on server, in any language: every request but the descriptor goes there.",
        f"url = {_toml_string(answers.addon_url)}",
    ]
    if answers.addon_command:
        lines += [
            "# How to start it: `connect-dev up` runs it, and stops it on quit.",
            f"command = {_toml_string(answers.addon_command)}",
        ]
    else:
        lines += [
            "# You start it yourself. Or let `connect-dev up` run it, and stop it on quit:",
            '# command = "npm start"',
        ]
    lines += [
        "",
        "[proxy]",
        "# The loopback port of connect-dev's proxy, which the tunnel exposes; 0 = any free port.",
        "port = 8000",
        "",
        "[tunnel]",
        '# How hosts reach the proxy: "auto" (no tunnel while every host is on loopback, else',
        '# ngrok), "ngrok", "ssh" (ssh -R to [tunnel.ssh] target) or "none" (public_url, else',
        "# the proxy's own URL). docs/tunnels.md has the details.",
        f"provider = {_toml_string(answers.tunnel)}",
    ]
    if answers.public_url:
        lines += [
            "# The URL hosts reach the proxy at: a tunnel you run yourself to port 8000.",
            f"public_url = {_toml_string(answers.public_url)}",
        ]
    if answers.uses_ngrok:
        lines += [
            "# The ngrok authtoken is never written here: NGROK_AUTHTOKEN in the environment, or",
            "# `connect-dev login --ngrok` (the OS keychain).",
        ]
    if answers.ssh_target:
        lines += [
            "",
            "[tunnel.ssh]",
            "# The server to tunnel through: user@host, or a Host of ~/.ssh/config. ssh runs",
            "# without prompts: use a key the server accepts (ssh-agent, or identity_file).",
            f"target = {_toml_string(answers.ssh_target)}",
        ]
    variable = f"{answers.product.upper()}_{'PASSWORD' if answers.host_is_local else 'API_TOKEN'}"
    secret = "password" if answers.host_is_local else "API token"
    admin = (
        " (admin for `connect-dev host` and a local SDK)."
        if answers.host_is_local
        else ": your Atlassian account email."
    )
    lines += [
        "",
        "# One [[hosts]] table per Jira or Confluence site to install the add-on on.",
        "[[hosts]]",
        "# Shown in the dashboard and the log; `connect-dev login` names the host by it.",
        f"name = {_toml_string(name)}",
        "# The product's base URL, context path included.",
        f"url = {_toml_string(answers.host_url)}",
        f"product = {_toml_string(answers.product)}",
        f"# A site admin{admin}",
        f"username = {_toml_string(answers.host_user)}",
        f"# The {secret} is never written here. To keep it in the OS keychain:",
        f"#   connect-dev login {shlex.quote(name)}",
        "# or name an environment variable that holds it:",
        f"# password_env = {_toml_string(variable)}",
        "# With neither, `connect-dev up` asks for it once on a terminal.",
    ]
    if not answers.host_is_local:
        lines.append(f"# An API token: {API_TOKENS_URL}")
    return "\n".join(lines) + "\n"


def _toml_string(value: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    escaped = []
    for char in value:
        if char in '"\\':
            escaped.append("\\" + char)
        elif ord(char) < 32 or ord(char) == 127:
            escaped.append(f"\\u{ord(char):04X}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def _target(explicit: str | None) -> Path:
    from ..config import CONFIG_FILE_NAME

    if explicit is None:
        return Path.cwd() / CONFIG_FILE_NAME
    path = Path(explicit)
    return path / CONFIG_FILE_NAME if path.is_dir() else path


def _exists(path: Path) -> Exception:
    from ..errors import DevloopError

    return DevloopError(
        f"{path} is already there; nothing written",
        hint="Pass --force to replace it, or --config PATH to write another file.",
    )


def _check(text: str, path: Path) -> None:
    """What ``up`` will read: the config's own parser, before anything is written."""
    from ..config import parse_config
    from ..errors import ConfigError

    try:
        parse_config(text, path)
    except ConfigError as exc:
        raise ConfigError(
            f"these answers make a connect-dev.toml that does not load: {exc.message}; nothing "
            "written",
            hint=exc.hint,
        ) from exc


def _write(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to ``path``: a new file (never over one that appeared meanwhile), or with
    ``replace`` in place of the old one at once (a temporary file renamed over it)."""
    from ..errors import DevloopError

    try:
        if not replace:
            with path.open("x", encoding="utf-8") as file:
                file.write(text)
            return
        temporary = path.with_name(f".{path.name}.init-{os.getpid()}")
        try:
            temporary.write_text(text, encoding="utf-8")
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    except FileExistsError as exc:
        raise _exists(path) from exc
    except OSError as exc:
        raise DevloopError(
            f"{path}: cannot write: {exc.strerror or exc}",
            hint="Check that the directory exists and that you may write there.",
        ) from exc


def _report(answers: Answers, path: Path) -> list[str]:
    """What was written, and what to run next, in order."""
    from ..config import CONFIG_FILE_NAME

    shown = _shown_path(path)
    config = "" if path == Path.cwd() / CONFIG_FILE_NAME else f" --config {shlex.quote(shown)}"
    lines = [f"wrote {shown}: no secret in it; every key, explained: connect-dev init --example"]
    descriptor = path.parent / answers.descriptor
    if not descriptor.is_file():
        lines.append(
            f"  note: {answers.descriptor} is not there yet: `up` installs it once it is "
            "(connect-dev validate checks it)"
        )
    # A shell snippet: the commands in order, each with why; what is not a command is a
    # comment line of its own.
    steps: list[tuple[str, str]] = []
    name = answers.host_name
    if not answers.host_is_local:
        steps.append(
            (
                f"connect-dev login{config} {shlex.quote(name)}",
                f"the API token of {answers.host_user}, into the OS keychain",
            )
        )
    if answers.uses_ngrok and not os.environ.get("NGROK_AUTHTOKEN"):
        steps.append(("connect-dev login --ngrok", "the ngrok authtoken (or set NGROK_AUTHTOKEN)"))
    if not answers.addon_command:
        steps.append(("", f"start your add-on server at {answers.addon_url}, then:"))
    if answers.host_is_local:
        steps.append(("", f"`up` asks once for the password of {answers.host_user}:"))
    steps.append((f"connect-dev up{config}", "install and watch; q or Ctrl-C: uninstall and quit"))
    width = max(len(command) for command, _ in steps)
    lines.append("next:")
    for command, why in steps:
        lines.append(f"  {command:<{width}}  # {why}" if command else f"  # {why}")
    return lines


def _shown_path(path: Path) -> str:
    """``path`` relative to the current directory when it is below it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)

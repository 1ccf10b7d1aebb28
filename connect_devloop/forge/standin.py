"""An EMULATION of Atlassian's Forge CLI (``forge``, @forge/cli 13.3.0) for the commands the
``forge`` registrar runs, used by the tests and by ``connect-dev demo --forge``. It is not
Atlassian's CLI and never talks to Atlassian: Forge's servers and the site are played by an
emulated host (``connect-dev host``; ``connect_devloop/host/forge.py``).

    python -m connect_devloop.forge.standin deploy -e development --non-interactive
    python -m connect_devloop.forge.standin install --site 127.0.0.1:2990 --product jira \\
        -e development --non-interactive [--upgrade] [--confirm-scopes]
    python -m connect_devloop.forge.standin install list --json
    python -m connect_devloop.forge.standin uninstall -s 127.0.0.1:2990 -p jira -e development

It parses the command line as the real CLI does (``standin_argv``), refuses what the real CLI
refuses, in the same order, with its messages and exit code 1 (``standin_text``), and prints its
progress lines as the real CLI does without a terminal. It never prompts: where the real CLI
would ask, it fails as the real one does without a terminal.

Environment:
    CONNECT_DEV_FORGE_EMULATOR_URL   the emulated host (``http://127.0.0.1:PORT/jira``; its
                                     origin is used); required for anything past the checks
    FORGE_EMAIL, FORGE_API_TOKEN     the login: both, or "Not logged in" (there is no keychain);
                                     the token is only checked for presence, never sent or shown
    FORGE_DISABLE_ANALYTICS          any value is the analytics choice the real CLI asks for
The manifest is ``manifest.yml`` in the current directory; ``${NAME}`` in it is resolved from
this process's environment for every command, as the real CLI does.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NoReturn

from .manifest_parts import connect_key_of, remote_base_urls, scopes_of
from .standin_argv import FORGE_CLI_VERSION, ArgvError, Invocation, OptionSpec, parse_argv
from .standin_manifest import ManifestRefused, read_manifest
from .standin_text import LABEL, Console, Text, environment_key, environment_option

__all__ = ["EMULATOR_URL_ENV", "main"]

EMULATOR_URL_ENV: Final = "CONNECT_DEV_FORGE_EMULATOR_URL"
# A slow emulated deploy (forge_deploy_delay_ms) must not time out here.
REQUEST_TIMEOUT_S: Final = 900.0
ENVIRONMENT_PATTERN: Final = re.compile(r"[a-zA-Z0-9\-_]+")
# SupportedProductsService: the products the real CLI accepts (Teamwork Graph is behind a
# feature gate it cannot reach offline).
PRODUCTS: Final = ("Jira", "Confluence", "Compass", "Bitbucket")
STANDARD_ENVIRONMENTS: Final = ("default", "staging", "production")
URL_SCHEME: Final = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
SPECIAL_SCHEMES: Final = ("http", "https", "ws", "wss", "ftp")
HELP: Final = f"""{LABEL}

Usage: python -m connect_devloop.forge.standin COMMAND [options]

Emulated commands (options as in @forge/cli {FORGE_CLI_VERSION}):
  deploy -e ENV [--non-interactive] [-f|--no-verify] [-v|--major-version N]
  install --site SITE --product jira|confluence -e ENV [--non-interactive]
          [--upgrade] [--confirm-scopes]
  install list [--json]
  uninstall -s SITE -p PRODUCT -e ENV

Environment: {EMULATOR_URL_ENV} (the emulated host), FORGE_EMAIL and FORGE_API_TOKEN (the
login), FORGE_DISABLE_ANALYTICS (the analytics choice). SITE is the host's 127.0.0.1:PORT.
"""


class Failure(Exception):
    """Ends the command as the real CLI's ``exitOnError`` does: ``Error: message``, its hint to
    rerun with --verbose, exit code 1."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ServerError(Exception):
    def __init__(self, status: int, code: str, message: str, request_id: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        invocation = parse_argv(args)
    except ArgvError as error:
        console.line(LABEL)
        console.error(error.message)
        console.info(Text.INVALID_COMMAND_HELP if error.unknown_command else Text.RERUN_VERBOSE)
        return 1
    if invocation.version:
        # Only the version on stdout, as scripts read it; the label goes to stderr.
        print(LABEL, file=sys.stderr)
        print(FORGE_CLI_VERSION)
        return 0
    if invocation.help:
        print(HELP, end="")
        return 0
    # `--json` output must stay parseable: the label goes to stderr then.
    print(LABEL, file=sys.stderr if invocation.options.get("json") else sys.stdout, flush=True)
    run = Run(invocation, os.environ, Path.cwd(), console)
    try:
        return COMMANDS[invocation.command](run)
    except (Failure, ManifestRefused) as failure:
        console.stop()
        console.error(str(failure))
        console.info(Text.RERUN_VERBOSE)
        return 1


@dataclass
class Run:
    """One command: its options, where it runs, and the checks every command makes first."""

    invocation: Invocation
    environ: Mapping[str, str]
    cwd: Path
    console: Console
    _server: ForgeServer | None = field(default=None, init=False)

    @property
    def options(self) -> dict[str, Any]:
        return self.invocation.options

    @property
    def non_interactive(self) -> bool:
        return self.options.get("nonInteractive") is True

    @property
    def server(self) -> ForgeServer:
        if self._server is None:
            url = self.environ.get(EMULATOR_URL_ENV, "")
            if not url:
                raise Failure(
                    f"{EMULATOR_URL_ENV} is not set: this Forge CLI emulation needs the emulated "
                    "host that plays Forge's servers (connect-dev host prints it)"
                )
            self._server = ForgeServer(url)
        return self._server

    def check_non_interactive(self, command: str, required: list[str]) -> None:
        # Command.actionProcessor: the flags --non-interactive needs, before anything else.
        names = [OptionSpec(flag).attribute for flag in required]
        if self.non_interactive and not all(name in self.options for name in names):
            raise Failure(Text.missing_required_option(command, required))

    def check_analytics(self) -> None:
        if self.environ.get("FORGE_DISABLE_ANALYTICS"):
            return
        if self.non_interactive:
            raise Failure(Text.MISSING_ANALYTICS)
        self.prompt(Text.ANALYTICS_PROMPT)

    def prompt(self, text: str | None = None) -> NoReturn:
        """Where the real CLI asks a question, which it cannot without a terminal."""
        if text is not None:
            self.console.info(text)
            self.console.line()
        raise Failure(Text.PROMPT_WITHOUT_TTY)

    def app(self) -> tuple[str, dict[str, Any] | None]:
        """``requireAppId``: the app id and the resolved manifest (``None`` when
        ``--app-id-override`` stands in for it)."""
        override = self.options.get("appIdOverride")
        if isinstance(override, str):
            app_id = (
                override if override.startswith("ari:") else f"ari:cloud:ecosystem::app/{override}"
            )
            return app_id, None
        manifest = read_manifest(self.cwd / "manifest.yml", self.environ, self.console)
        return str(manifest["app"]["id"]), manifest

    def environment(self, *, required_with_override: bool = False) -> str:
        value = self.options.get("environment")
        if not value:
            if required_with_override and self.options.get("appIdOverride"):
                raise Failure(Text.ENVIRONMENT_REQUIRED_WITH_OVERRIDE)
            # The app's owner (every developer, on the emulated Forge) gets the default one.
            self.login()
            return "default"
        if not isinstance(value, str) or not ENVIRONMENT_PATTERN.fullmatch(value):
            raise Failure(Text.INVALID_ENVIRONMENT)
        return environment_key(value)

    def context(self) -> tuple[Site | None, str | None]:
        """``validateContext``: the --site and --product values, checked as the real CLI does."""
        site, product = self.options.get("site"), self.options.get("product")
        display: str | None = None
        if product is not None:
            if product is True:
                raise Failure(Text.MISSING_PRODUCT_VALUE)
            display = _product_display_name(str(product))
            if display not in PRODUCTS:
                raise Failure(Text.INVALID_PRODUCT)
        found: Site | None = None
        if site:
            if site is True:
                raise Failure(Text.MISSING_SITE_VALUE)
            found = Site.parse(str(site))
        return found, display

    def login(self) -> None:
        # Both variables, or the keychain, which the emulation does not have.
        if not (self.environ.get("FORGE_EMAIL") and self.environ.get("FORGE_API_TOKEN")):
            raise Failure(Text.NOT_LOGGED_IN)
        try:
            # Only the e-mail travels: the token never leaves this process.
            self.server.post("login", {"email": self.environ["FORGE_EMAIL"]})
        except ServerError as error:
            if error.status == 401:
                raise Failure(Text.INVALID_TOKEN_IN_ENV) from error
            raise Failure(error.message) from error


@dataclass(frozen=True)
class Site:
    """A --site value as ``SupportedProductsService.validateSite`` reads it: a URL whose path is
    ``/``, with ``https://`` put in front when the value alone is not a URL."""

    url: str
    host: str

    @classmethod
    def parse(cls, value: str) -> Site:
        for candidate in (value, f"https://{value}"):
            if not URL_SCHEME.match(candidate):
                continue
            parts = urllib.parse.urlsplit(candidate)
            scheme = parts.scheme.lower()
            if scheme in SPECIAL_SCHEMES and not parts.netloc:
                continue
            host = parts.netloc.lower()
            return cls(f"{scheme}://{host}/" if host else candidate, host)
        raise Failure(Text.INVALID_SITE)


class ForgeServer:
    """The emulated host's Forge API (``/_emulator/forge``), over plain HTTP on loopback."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Failure(f"{EMULATOR_URL_ENV}={url!r} is not an http(s) URL")
        self.base = f"{parts.scheme}://{parts.netloc}/_emulator/forge"
        # The emulated host is local: a proxy from the environment must not be asked.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def get(self, action: str, **query: str) -> dict[str, Any]:
        found = {name: value for name, value in query.items() if value}
        return self._send("GET", f"{action}?{urllib.parse.urlencode(found)}", None)

    def post(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._send("POST", action, body)

    def _send(self, method: str, action: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self.base}/{action}"
        request = urllib.request.Request(
            url,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "forge-cli-emulation"},
            method=method,
        )
        try:
            with self._opener.open(request, timeout=REQUEST_TIMEOUT_S) as response:
                answer = json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            answer = _json_or_empty(error.read())
            problem = answer.get("error")
            if not isinstance(problem, dict):
                problem = {}
            raise ServerError(
                error.code,
                str(problem.get("code") or f"HTTP_{error.code}"),
                str(problem.get("message") or error.reason),
                str(answer.get("request_id") or "unknown"),
            ) from error
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise Failure(f"request to {url} failed, reason: {reason}") from error
        return answer if isinstance(answer, dict) else {}


# --- the commands -------------------------------------------------------------------------------


def deploy(run: Run) -> int:
    options, console = run.options, run.console
    _refuse_unemulated(options, "tag", "approve", "skipRollout")
    run.check_non_interactive("deploy", [])
    run.check_analytics()
    app_id, manifest = run.app()
    assert manifest is not None
    environment = run.environment()
    run.login()
    major = _major_version(options.get("majorVersion"))
    details = _environment(run, app_id, environment)
    environment_type = str(details["type"])
    if not details["exists"] and environment not in STANDARD_ENVIRONMENTS:
        if not run.non_interactive:
            run.prompt()
        console.info(Text.environment_created(environment))
        console.line()
    app_name = str(connect_key_of(manifest) or app_id.rsplit("/", 1)[-1])
    console.info(Text.deploy_start(environment, environment_type))
    verify = options.get("verify", True)
    if verify:
        console.info(Text.LINT_RUNNING)
        console.info(Text.LINT_CLEAN)
        latest = details.get("latest") or {}
        previous_key, key = latest.get("connect_key"), connect_key_of(manifest)
        if previous_key and key and key != previous_key:
            # The real CLI asks even with --non-interactive, and fails without a terminal.
            console.warn(Text.connect_key_change(environment, previous_key, key))
            run.prompt()
        if major is not None:
            console.warn(Text.major_version_warning(major))
            if not run.non_interactive:
                run.prompt()
    console.start(Text.deploy_progress(app_name, environment, environment_type))
    console.info("Packaging app files")
    console.info("Uploading app")
    body = {"app_id": app_id, "environment": environment, "manifest": manifest}
    try:
        result = run.server.post("deploy", {**body, "major_version": major})
    except ServerError as error:
        raise Failure(error.message) from error
    console.succeed("Deployed\n")
    console.info(Text.deployed(app_name, environment, environment_type))
    added = result.get("added_scopes") or result.get("added_egress")
    if verify and result.get("is_major_bump") and result.get("installations") and added:
        console.line()
        console.warn(Text.OUTDATED_INSTALLATIONS)
    return 0


def install(run: Run) -> int:
    options, console = run.options, run.console
    _refuse_unemulated(options, "license", "licenseModes", "usersWithAccess", "majorVersion")
    run.check_non_interactive("install", ["--site", "--product", "--environment"])
    run.check_analytics()
    app_id, manifest = run.app()
    environment = run.environment(required_with_override=True)
    site, product = run.context()
    run.login()
    upgrade = _upgrade_target(options.get("upgrade"))
    details = _environment(run, app_id, environment)
    latest: dict[str, Any] | None = details.get("latest")
    previous: dict[str, Any] | None = None
    if upgrade:
        if site is None or product is None:
            run.prompt()  # the real CLI asks which installation to upgrade
        found = _installations(run, app_id, environment, site, product)
        if not found:
            raise Failure(Text.INVALID_INSTALLATION_CONTEXT)
        previous = found[0]
        console.info(Text.UPGRADE_BANNER)
    else:
        if product is None or site is None:
            run.prompt()  # the real CLI asks for the product, then the site
        console.info(Text.INSTALL_BANNER)
    if latest is None:
        # The real CLI says so and ends without an error: exit 0.
        console.error(Text.no_deployment(environment), pad=False)
        return 0
    _show_permissions(run, environment, latest, previous, manifest, upgrade=upgrade)
    if not options.get("confirmScopes") and not run.non_interactive:
        run.prompt()
    environment_type = str(details["type"])
    if upgrade:
        console.start(Text.upgrade_progress(environment, environment_type))
    else:
        console.start(Text.install_progress(environment, environment_type, product))
    body = {
        "app_id": app_id,
        "environment": environment,
        "site": site.host,
        "product": _resource_owner(product),
        "upgrade": upgrade,
    }
    try:
        result = run.server.post("install", body)
    except ServerError as error:
        console.stop()
        console.error(_install_error(error, site, product))
        if not upgrade:
            console.info(Text.failed_all(site.url, environment))
        raise Failure(Text.partial_installation([product])) from error
    if result.get("already_updated"):
        console.succeed(Text.ALREADY_LATEST)
        console.info(Text.at_latest(environment, product, site.host))
        return 0
    console.succeed("Upgrade complete!" if upgrade else f"Install in {product} complete!")
    console.line()
    if upgrade:
        console.info(Text.upgraded(environment, environment_type, product, site.host))
    else:
        console.info(Text.installed(environment, environment_type, product, site.host))
    return 0


def install_list(run: Run) -> int:
    run.check_analytics()
    app_id, _ = run.app()
    run.login()
    rows = [_list_row(i) for i in _installations(run, app_id, None, None, None)]
    if run.options.get("json"):
        # ui.table with json: JSON.stringify(rows, null, 2), and nothing else.
        print(json.dumps(rows, indent=2, ensure_ascii=False), flush=True)
        return 0
    if not rows:
        run.console.info(Text.NO_INSTALLATIONS)
        return 0
    run.console.info(Text.LIST_BANNER)
    columns = [
        ("id", "Installation ID"),
        ("environment", "Environment"),
        ("site", "Site"),
        ("product", "Atlassian apps"),
        ("appVersion", "App version"),
        ("status", "Status"),
    ]
    run.console.info(_table(columns, rows))
    return 0


def uninstall(run: Run) -> int:
    options, console = run.options, run.console
    _refuse_unemulated(options, "installationId", "batch")
    run.check_analytics()
    site, product = run.context()
    environment = run.environment()
    app_id, _ = run.app()
    run.login()
    if site is None or product is None:
        if not _installations(run, app_id, environment, None, None):
            console.info(Text.NO_INSTALLATIONS)
            return 0
        run.prompt()  # the real CLI asks which installation to remove
    found = _installations(run, app_id, environment, site, product)
    if not found:
        raise Failure(Text.INVALID_INSTALLATION_CONTEXT)
    console.info(Text.UNINSTALLING)
    console.info(Text.CTRL_C)
    console.line()
    console.start(Text.UNINSTALLING)
    body = {
        "app_id": app_id,
        "environment": environment,
        "site": site.host,
        "product": _resource_owner(product),
    }
    try:
        result = run.server.post("uninstall", body)
    except ServerError as error:
        raise Failure(error.message) from error
    console.succeed("Uninstalled\n\n")
    installation = result.get("installation") or {}
    console.info(Text.uninstalled(product, str(installation.get("site", site.host)), environment))
    return 0


COMMANDS: Final[dict[str, Callable[[Run], int]]] = {
    "deploy": deploy,
    "install": install,
    "install list": install_list,
    "uninstall": uninstall,
}


def _environment(run: Run, app_id: str, environment: str) -> dict[str, Any]:
    try:
        return run.server.get("environment", app_id=app_id, environment=environment)
    except ServerError as error:
        if error.code == "APP_NOT_FOUND":
            raise Failure(Text.APP_NOT_FOUND) from error
        raise Failure(error.message) from error


def _installations(
    run: Run, app_id: str, environment: str | None, site: Site | None, product: str | None
) -> list[dict[str, Any]]:
    query = {
        "app_id": app_id,
        "environment": environment or "",
        "site": site.host if site else "",
        "product": _resource_owner(product) if product else "",
    }
    try:
        answer = run.server.get("installations", **query)
    except ServerError as error:
        if error.code == "APP_NOT_FOUND":
            raise Failure(Text.APP_NOT_FOUND) from error
        raise Failure(_install_error(error, site, product)) from error
    found = answer.get("installations")
    return [i for i in found if isinstance(i, dict)] if isinstance(found, list) else []


def _install_error(error: ServerError, site: Site | None, product: str | None) -> str:
    """The real CLI's words for what the (emulated) servers refused."""
    url = site.url if site else ""
    if error.code == "INVALID_SITE":
        return Text.invalid_atlassian_site(url)
    if error.code == "PRODUCT_NOT_ACTIVATED":
        return Text.activation_missing(url, product or "")
    if error.code == "APP_ALREADY_INSTALLED":
        return Text.ALREADY_INSTALLED
    if error.code == "INSTALLATION_NOT_FOUND":
        return Text.INVALID_INSTALLATION_CONTEXT
    return Text.with_request_id(error.message, error.request_id)


def _show_permissions(
    run: Run,
    environment: str,
    latest: dict[str, Any],
    previous: dict[str, Any] | None,
    manifest: dict[str, Any] | None,
    *,
    upgrade: bool,
) -> None:
    """What InstallView.promptForPermissionsConfirmation prints before installing."""
    scopes, egress = list(latest.get("scopes") or []), list(latest.get("egress") or [])
    had_scopes = set(previous.get("scopes") or []) if previous else set()
    had_egress = set(previous.get("egress") or []) if previous else set()
    if new_scopes := [s for s in scopes if s not in had_scopes]:
        run.console.info(Text.scopes(new_scopes, upgrade=upgrade))
    if new_egress := [e for e in egress if e not in had_egress]:
        run.console.info(Text.egress(new_egress, upgrade=upgrade))
    if environment == "default" and manifest is not None:
        local = (scopes_of(manifest), sorted(set(remote_base_urls(manifest).values())))
        if local != (sorted(scopes), sorted(egress)):
            run.console.warn(Text.permissions_mismatch(environment, upgrade=upgrade))


def _list_row(installation: dict[str, Any]) -> dict[str, str]:
    """One row of ``forge install list --json``, built as register-installation-commands.js
    builds it (with one version per installation: no separate permissions version)."""
    version = str(installation.get("version") or "1.0.0")
    major = version.split(".", 1)[0]
    is_latest = installation.get("is_latest") is True
    return {
        "id": str(installation.get("id")),
        "environment": environment_option(str(installation.get("environment"))),
        "site": str(installation.get("site")),
        "product": _product_display_name(str(installation.get("product"))),
        "majorVersion": f"{major} {'(Latest)' if is_latest else '(Out-of-date)'}",
        "appVersion": major,
        # semver.lt(permissions version, compute version) is false when both are one version.
        "status": "Up-to-date" if is_latest else "Outdated app",
    }


def _table(columns: list[tuple[str, str]], rows: list[dict[str, str]]) -> str:
    # cli-table3's default box: a line between every two rows.
    cells = [[head for _, head in columns], *([row[key] for key, _ in columns] for row in rows)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]

    def rule(left: str, middle: str, right: str) -> str:
        return left + middle.join("\u2500" * (w + 2) for w in widths) + right

    def line(values: list[str]) -> str:
        return (
            "\u2502"
            + "\u2502".join(f" {v:<{w}} " for v, w in zip(values, widths, strict=True))
            + "\u2502"
        )

    out = [rule("\u250c", "\u252c", "\u2510")]
    for index, values in enumerate(cells):
        if index:
            out.append(rule("\u251c", "\u253c", "\u2524"))
        out.append(line(values))
    out.append(rule("\u2514", "\u2534", "\u2518"))
    return "\n".join(out)


def _refuse_unemulated(options: dict[str, Any], *names: str) -> None:
    for name in names:
        if options.get(name) not in (None, False):
            raise Failure(f"the Forge CLI emulation does not emulate the {name} option")


def _major_version(value: object) -> int | None:
    # parseMajorVersion: a bare -v/--major-version is refused too (it is "true" then).
    if value is None:
        return None
    if not isinstance(value, str) or not value.isdigit() or int(value) < 2:
        raise Failure(Text.INVALID_MAJOR_VERSION)
    return int(value)


def _upgrade_target(value: object) -> bool:
    if value is None or value is False:
        return False
    if value is True or value == "all":
        return True
    if value == "code":
        raise Failure("the Forge CLI emulation does not emulate --upgrade code")
    raise Failure(Text.INVALID_UPGRADE_TARGET)


def _product_display_name(product: str) -> str:
    # productDisplayName: the resource owner in capital case ("jira" -> "Jira").
    special = {"townsquare": "Atlas", "graph": "Teamwork Graph"}
    if product.lower() in special:
        return special[product.lower()]
    words = re.split(r"[-_\s]+|(?<=[a-z])(?=[A-Z])", product)
    return " ".join(w[:1].upper() + w[1:].lower() for w in words if w)


def _resource_owner(product: str) -> str:
    return {"Atlas": "townsquare", "Teamwork Graph": "graph"}.get(product, product.lower())


def _json_or_empty(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


if __name__ == "__main__":
    raise SystemExit(main())

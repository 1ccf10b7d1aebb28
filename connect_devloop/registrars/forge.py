"""The Forge backend: a Connect app registered on Forge, deployed and installed with the Forge CLI.

Where Cloud no longer installs descriptors (FORGE.md §1), the same save → installed loop runs
through ``manifest.yml``. One attempt, driven by the coalescing worker (``registrar.py``):

- ``prepare``: the manifest's Connect parts are written again from the saved descriptor
  (``forge.convert``: nothing else in the file is touched) and checked offline as
  ``@forge/manifest`` would, with this run's public URL and app key as its variables. The
  revision is a digest of the manifest as ``forge deploy`` will resolve it, so a new tunnel URL
  is a new revision and an unchanged one deploys nothing. Nothing has reached Forge yet.
- ``install``: ``forge install list --json`` says whether the site has the app (asked until an
  install of this run succeeded: from then on the run knows, and a save goes straight to the
  deploy); then, past the point of no return (``commit``: the ledger entry is on disk),
  ``forge deploy`` and ``forge install`` (``--upgrade`` when it is installed). A running deploy
  is never cancelled: the worker waits for it and deploys the newest revision once after it.
- ``uninstall``: ``forge uninstall``, bounded; with ``on_exit = "keep"`` the worker leaves the
  app installed and the ledger says at which revision, so the next ``up`` deploys nothing when
  nothing changed.

Each step is a ``forge_step`` event (started, done with its duration, failed); the CLI's lines
go to the debug log (``forge.cli``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from urllib.parse import urlsplit

from ..config import Config, ForgeConfig, HostConfig
from ..errors import DevloopError, ForgeError
from ..events import Event, ForgeStep, Warning
from ..files import InputFileError, decode_utf8, read_input_file
from ..forge.cli import CliRun, ForgeCli, explain
from ..forge.convert import update_manifest
from ..forge.manifest import (
    APP_KEY_VARIABLE,
    BASE_URL_VARIABLE,
    PLACEHOLDER_APP_ID,
    ManifestError,
    check_manifest,
    resolve_variables,
)
from ..forge.manifest_yaml import write_atomically
from ..ledger import LedgerEntry, new_entry
from .base import Commit, Installed, Target

__all__ = ["EMULATOR_URL_ENV", "ForgeBackend", "create_backend"]

logger = logging.getLogger(__name__)

# The Forge CLI emulation (forge/standin.py) finds its emulated site here; the real CLI ignores it.
EMULATOR_URL_ENV = "CONNECT_DEV_FORGE_EMULATOR_URL"
# What the manifest's base URL variable is at an uninstall after the tunnel closed: every
# command that reads the manifest needs its variables, and an uninstall does not use this one.
CLOSED_TUNNEL_URL = "https://tunnel-closed.connect-dev.invalid"
# What `forge uninstall` says when the app cannot be installed there (@forge/cli-shared 13.3.0,
# out/ui/text.js): no installation; no such site (a wrong `site`, whose install failed too); the
# product not on the site. Nothing is left to remove: the ledger entry goes.
NO_INSTALLATION = "Could not find an installation"
NOT_INSTALLED_THERE = (
    NO_INSTALLATION,
    "doesn't belong to an Atlassian site",
    "is not activated on",
)
# How `forge install --upgrade` introduces the URLs the new version adds (its egress).
UPGRADE_ADDS_URLS = "be upgraded and additionally exchange data with the following urls:"
LoginEnv = Callable[[], dict[str, str]]


def create_backend(
    host: HostConfig,
    forge: ForgeConfig,
    *,
    config: Config,
    emit: Callable[[Event], None],
) -> ForgeBackend:
    """The supervisor's factory (``supervisor._forge_backend``)."""
    del config  # everything this backend needs of it is in ``forge`` and ``host``
    return ForgeBackend(host, forge, emit=emit)


class ForgeBackend:
    kind = "forge"
    interruptible = False  # a running deploy is waited for, never cancelled

    def __init__(
        self,
        host: HostConfig,
        forge: ForgeConfig,
        *,
        emit: Callable[[Event], None],
        login_env: LoginEnv | None = None,
    ) -> None:
        self.host = host
        self.forge = forge
        self._emit = emit
        self._login_env = login_env or _login_env_from_environment_or_keychain
        self._secrets: tuple[str, ...] = ()
        self._last_output: float | None = None
        self._deployed_base_url: str | None = None
        # The site has the app in this environment: an install of this run succeeded there (and
        # no uninstall came since). Saves then skip `forge install list`, which takes seconds.
        self._installed_here = False
        self._installed_key: str | None = None  # app.connect.key of that install
        self._last_public_url: str | None = None
        self._written: bytes | None = None  # the manifest as this backend last wrote it
        self.cli = ForgeCli(
            forge.command,
            forge.manifest.parent,
            secrets=lambda: self._secrets,
            on_output=self._note_output,
        )

    def __repr__(self) -> str:
        return f"ForgeBackend({self.host.name!r}, site={self.host.site!r})"

    @property
    def keep_on_exit(self) -> bool:
        return self.forge.on_exit == "keep"

    @property
    def last_reply_at(self) -> float | None:
        # A CLI that is still running is alive: a deploy may print nothing for a minute.
        return time.monotonic() if self.cli.running is not None else self._last_output

    def _note_output(self) -> None:
        self._last_output = time.monotonic()

    @property
    def site(self) -> str:
        assert self.host.site, "config.py requires a site for a forge host"
        return self.host.site

    # --- prepare ------------------------------------------------------------------------------

    async def prepare(self, target: Target) -> Target:
        started = self._step_started("validate")
        try:
            text = self._write_connect_parts(target)
            variables = self._variables(target.public_url, target.key)
            errors = [
                problem
                for problem in check_manifest(text, env=variables, file=str(self.forge.manifest))
                if problem.severity == "error"
            ]
            if errors:
                count = len(errors)
                raise ForgeError(
                    f"{errors[0].format(str(self.forge.manifest))}"
                    + (f" (and {count - 1} more)" if count > 1 else ""),
                    "Run `connect-dev validate` to see every problem; nothing was deployed.",
                )
            if PLACEHOLDER_APP_ID in text:
                raise ForgeError(
                    f"{self.forge.manifest}: app.id is the placeholder: the app is not "
                    "registered on Forge yet",
                    f"Run `forge register` in {self.forge.manifest.parent} (it writes app.id "
                    "into manifest.yml), then save again.",
                )
            resolved = resolve_variables(text, variables, file=str(self.forge.manifest))
        except ManifestError as exc:
            self._step_failed("validate", started)
            raise ForgeError(exc.message, exc.hint) from exc
        except DevloopError:
            self._step_failed("validate", started)
            raise
        self._step_done("validate", started)
        revision = hashlib.sha256(resolved.encode()).hexdigest()[:12]
        return replace(target, revision=revision)

    def _write_connect_parts(self, target: Target) -> str:
        """manifest.yml with the Connect parts of ``target``'s descriptor; written only when
        they changed (the watcher would otherwise see a save of its own)."""
        if target.descriptor is None:
            raise ForgeError(
                "no descriptor revision to deploy", "Save atlassian-connect.json and try again."
            )
        path = self.forge.manifest
        existing: str | None
        try:
            existing = decode_utf8(read_input_file(path))
        except InputFileError as exc:
            if not exc.missing:
                raise ForgeError(
                    f"{path}: {exc.reason}", "Check the [forge] manifest path."
                ) from exc
            existing = None
        conversion = update_manifest(
            existing, target.descriptor.document, self.host.product, file=str(path)
        )
        if conversion.changed:
            self._written = conversion.text.encode()
            try:
                write_atomically(path, conversion.text)
            except OSError as exc:
                raise ForgeError(
                    f"{path}: cannot write the manifest: {exc.strerror}",
                    f"Make {path.parent} writable by you.",
                ) from exc
        return conversion.text

    def wrote(self, saved: bytes) -> bool:
        """True when ``saved`` is the manifest as this backend wrote it: the supervisor's
        manifest watch does not deploy again for a write of ours."""
        return saved == self._written

    def _variables(self, public_url: str, key: str) -> dict[str, str]:
        self._last_public_url = public_url
        return {BASE_URL_VARIABLE: public_url.rstrip("/"), APP_KEY_VARIABLE: key}

    # --- install ------------------------------------------------------------------------------

    def ledger_entry(self, target: Target) -> LedgerEntry:
        return new_entry(
            self.host.name,
            self.host.base_url,
            "",
            target.key,
            registrar=self.kind,
            site=self.site,
            product=self.host.product,
            environment=self.forge.environment,
            revision=target.revision,
        )

    async def install(self, target: Target, commit: Commit) -> Installed:
        env = self._environment(self._variables(target.public_url, target.key))
        known = self._installed_here
        installed = None if known else await self._installation(env)
        outdated = installed is not None and installed.get("majorVersion", "").endswith(
            "(Out-of-date)"
        )
        upgrade = known or installed is not None
        await commit()  # past this, Forge may have our deploy: the ledger has the entry
        base_url = target.public_url.rstrip("/")
        await self._run_step(
            "deploy",
            ["deploy", "-e", self.forge.environment, "--non-interactive"],
            env,
            self.forge.deploy_timeout,
        )
        moved = self._deployed_base_url not in (None, base_url) or outdated
        self._deployed_base_url = base_url
        args = [
            "install",
            *("--site", self.site),
            *("--product", self.host.product),
            *("-e", self.forge.environment),
            "--non-interactive",
        ]
        first = [*args, "--upgrade"] if upgrade else args
        try:
            run = await self._run_step("install", first, env, self.forge.install_timeout)
        except ForgeError as exc:
            if not (known and NO_INSTALLATION in exc.message):
                raise
            # Uninstalled behind this run's back since its own install: install it afresh.
            self._installed_here = False
            upgrade = False
            run = await self._run_step("install", args, env, self.forge.install_timeout)
        self._installed_here, self._installed_key = True, target.key
        # A run after a restart with a new tunnel URL has deployed nothing before: the upgrade
        # itself says that the installation had another baseUrl.
        if moved or (upgrade and _upgrade_adds_url(run, base_url)):
            self._say_new_major_version(base_url)
        return Installed(key=target.key)

    async def _installation(self, env: Mapping[str, str]) -> dict[str, str] | None:
        """This site's installation in this environment (``forge install list --json``)."""
        run = await self.cli.run(
            ["install", "list", "--json"], env, time_limit=self.forge.install_timeout
        )
        if run.code != 0:
            raise explain("install list", run, self.cli)
        for row in _json_rows(run):
            if (
                _site_name(str(row.get("site", ""))) == _site_name(self.site)
                and str(row.get("product", "")).lower() == self.host.product
                and str(row.get("environment", "")) == self.forge.environment
            ):
                return {name: str(value) for name, value in row.items()}
        return None

    def _say_new_major_version(self, base_url: str) -> None:
        self._emit(
            Warning(
                message=f"{self.host.name}: the remote's baseUrl is now {base_url}: Forge makes "
                "that a new major version, which the site takes through `forge install "
                "--upgrade` (done); on a production site an admin would have to approve it",
                hint="Use a stable public hostname (an ngrok domain: [tunnel.ngrok] domain, or "
                "your own ssh host) so that a restart does not make a new major version.",
            )
        )

    # --- uninstall ----------------------------------------------------------------------------

    async def uninstall(self, entry: LedgerEntry) -> bool:
        site = entry.site or self.site
        product = entry.product or self.host.product
        environment = entry.environment or self.forge.environment
        if (
            self._installed_here
            and entry.key != self._installed_key
            and (site, product, environment)
            == (self.site, self.host.product, self.forge.environment)
        ):
            # The entry of the app's old Connect key (the worker removes it after the key
            # changed): the app has one installation per site and environment, which the
            # upgrade has just moved to the new key. `forge uninstall` would remove that.
            return False
        public_url = self._last_public_url or CLOSED_TUNNEL_URL
        env = self._environment(self._variables(public_url, entry.key))
        args = ["uninstall", "-s", site, "-p", product, "-e", environment]
        started = self._step_started("uninstall")
        self._installed_here = False  # whatever the outcome: `forge install list` says next
        run = await self.cli.run(args, env, time_limit=self.forge.uninstall_timeout)
        if run.code == 0:
            self._step_done("uninstall", started)
            return True
        if any(text in run.output for text in NOT_INSTALLED_THERE):
            self._step_done("uninstall", started)
            return False
        self._step_failed("uninstall", started)
        raise explain("uninstall", run, self.cli)

    def kept_revision(self, entry: LedgerEntry) -> str | None:
        if (entry.site, entry.environment) != (self.site, self.forge.environment):
            return None  # installed by an earlier config: a leftover to remove
        return entry.revision if entry.confirmed else ""

    # --- the CLI ------------------------------------------------------------------------------

    def _environment(self, variables: Mapping[str, str]) -> dict[str, str]:
        """The CLI's environment: the login, the manifest's variables, and for a loopback
        site the emulated Forge it stands for (forge/standin.py)."""
        login = self._login_env()
        self._secrets = tuple(value for name, value in login.items() if "TOKEN" in name)
        env = {**login, **variables}
        if _is_loopback(self.site):
            env.setdefault(EMULATOR_URL_ENV, f"http://{self.site}")
        return env

    async def _run_step(
        self, step: str, args: list[str], env: Mapping[str, str], time_limit: float
    ) -> CliRun:
        started = self._step_started(step)
        try:
            run = await self.cli.run(args, env, time_limit=time_limit)
        except BaseException:
            self._step_failed(step, started)
            raise
        if run.code != 0 or _says_error(run):
            self._step_failed(step, started)
            raise explain(step, run, self.cli)
        self._step_done(step, started)
        return run

    def _step_started(self, step: str) -> float:
        self._emit(ForgeStep(host=self.host.name, step=step, state="started"))
        return time.monotonic()

    def _step_done(self, step: str, started: float) -> None:
        self._emit(
            ForgeStep(host=self.host.name, step=step, state="done", duration_ms=_ms(started))
        )

    def _step_failed(self, step: str, started: float) -> None:
        self._emit(
            ForgeStep(host=self.host.name, step=step, state="failed", duration_ms=_ms(started))
        )


def _login_env_from_environment_or_keychain() -> dict[str, str]:
    from ..forge.login import find_forge_login, forge_login_env

    login = find_forge_login()
    if login is None:
        raise ForgeError(
            "not logged in to Forge: FORGE_EMAIL and FORGE_API_TOKEN are not set, and the "
            "keychain has no Forge login",
            "Run `connect-dev login --forge` (your Atlassian email and an API token from "
            "https://id.atlassian.com/manage-profile/security/api-tokens), or set both "
            "variables.",
        )
    return forge_login_env(login)


def _json_rows(run: CliRun) -> list[dict[str, object]]:
    """The rows of ``install list --json``. Other lines may come before the JSON (on Node 20
    the CLI's version warning; the emulation's label, on stderr, which is merged): the JSON is
    the first line that opens a list and parses to the end."""
    lines = list(run.lines)
    for index, line in enumerate(lines):
        if line.strip() not in ("[", "[]") and not line.startswith("[{"):
            continue
        try:
            rows = json.loads("\n".join(lines[index:]))
        except ValueError:
            continue
        if isinstance(rows, list):
            return [row for row in rows if isinstance(row, dict)]
    if "[" in run.output:
        logger.debug("forge install list --json: no JSON list in: %s", run.output[-500:])
    return []  # "The app is not installed anywhere."


def _upgrade_adds_url(run: CliRun, base_url: str) -> bool:
    """Whether ``forge install --upgrade`` listed ``base_url`` among the URLs the upgrade adds
    (@forge/cli 13.3.0's InstallView: "Your app will be upgraded and additionally exchange data
    with the following urls:", then a "- URL" line each): the installation had another one."""
    wanted = {base_url, urlsplit(base_url).netloc}
    listing = False
    for line in run.lines:
        if line.endswith(UPGRADE_ADDS_URLS):
            listing = True
        elif listing and line.startswith("- "):
            if line.removeprefix("- ").strip().rstrip("/") in wanted:
                return True
        else:
            listing = False
    return False


def _says_error(run: CliRun) -> bool:
    # `forge install` with nothing deployed prints an error and still exits 0 (13.3.0).
    return any(line.startswith("Error: ") for line in run.lines)


def _site_name(site: str) -> str:
    name = site.strip().lower().removeprefix("https://").removeprefix("http://")
    return name.rstrip("/")


def _is_loopback(site: str) -> bool:
    host = site.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "localhost", "::1")


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)

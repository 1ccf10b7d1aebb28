"""Startup order, the watch loop, and teardown of one `connect-dev up` run.

Order on start: take the project lock → clean what a crashed run left (reason ``recovery``) →
load the descriptor → start the proxy → open the tunnel (then keep it: tunnel/keeper.py
probes it, reopens it, and re-installs when its URL changes) → start the add-on server with
``[addon] command`` and wait until it answers (bounded by ``ready_timeout``), or else probe
``[addon] url`` once → install on every host concurrently, each install checked first against
the public URL (``ready`` once each has an outcome) → watch the descriptor (and the add-on's
``restart_on`` files). On stop (the caller sets ``stop``): stop watching → stop keeping the
tunnel → uninstall on every host concurrently, each bounded → stop the add-on (after the
uninstalls: it answers their ``uninstalled`` callbacks) → close the tunnel → close the proxy →
``stopped``. Nothing here prints or handles signals; ``cli.py`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp

from . import descriptor as descriptors
from .addon_process import AddonProbe, AddonProcess, stop_leftover_addon
from .config import Config, ForgeConfig, HostConfig, parse_config_bytes
from .credentials import PasswordSource, ResolvedSource, resolve_password
from .errors import ConfigError, DescriptorError, DevloopError, LedgerError, Problem
from .events import (
    ConfigChanged,
    ConfigInvalid,
    ConfigReloaded,
    DeregistrationFailed,
    DescriptorInvalid,
    DescriptorLoaded,
    Event,
    EventBus,
    Ready,
    RegistrationFailed,
    Stopped,
    Warning,
)
from .files import InputFileError, read_input_file
from .ledger import Ledger, LedgerEntry, ProjectLock
from .proxy import Inspector, Proxy
from .proxy.capture import Capture
from .registrar import DEFAULT_SETTLE_SECONDS, DEFAULT_SILENCE_SECONDS, HostRegistrar, Target
from .registrars import RegistrarBackend, UpmBackend
from .secret import Secret
from .state import State, reduce
from .tasks import keep_running, report_crash
from .traffic.control import ControlServer
from .traffic.replay import Signer
from .traffic.service import TrafficService
from .traffic.view import ViewContext
from .tunnel import Tunnel, TunnelKeeper, create_tunnel, is_probe_path, stop_leftover_tunnel
from .upm import UpmClient
from .watcher import Unreadable, watch_file

__all__ = ["Supervisor", "run_down"]

logger = logging.getLogger(__name__)

DEFAULT_TEARDOWN_SECONDS = 10.0
# An invalid read of the descriptor is reported only if no other change follows within this
# time (a save caught half written by the watcher, which acts on the first change it sees).
INVALID_CONFIRM_SECONDS = 0.05
# How often `ready` looks again at hosts still installing (for one that fell silent).
_READY_RECHECK_SECONDS = 0.25
# A save of connect-dev.toml is read again this long after the watcher saw it: a file caught
# half written may be valid TOML that lacks hosts, and removing a host uninstalls it.
CONFIG_SETTLE_SECONDS = 0.1
# What a [[hosts]] entry is installed with: a change of any of these installs it again.
_HOST_KEYS = ("url", "username", "password_env", "password", "product", "registrar", "site",
              "keys_url")  # fmt: skip


class Supervisor:
    def __init__(
        self,
        config: Config,
        bus: EventBus,
        *,
        settle: float = DEFAULT_SETTLE_SECONDS,
        teardown_timeout: float = DEFAULT_TEARDOWN_SECONDS,
        password_sources: Sequence[PasswordSource] | None = None,
        tunnel: Tunnel | None = None,
        inspector: Inspector | None = None,
        ngrok_authtoken_lookup: Callable[[], str | None] | None = None,
        silence: float = DEFAULT_SILENCE_SECONDS,
        signer: Signer | None = None,
    ) -> None:
        self.config = config
        self.bus = bus
        self.state = State.initial([host.name for host in config.hosts])
        self._settle = settle
        self._silence = silence
        self._teardown_timeout = teardown_timeout
        self._password_sources = password_sources
        self._tunnel = tunnel
        self._ngrok_authtoken_lookup = ngrok_authtoken_lookup
        self._keeper: TunnelKeeper | None = None
        self._inspector = inspector
        self._signer = signer or _no_signer
        # The traffic inspector (docs/inspector.md): what the proxy captured, for the
        # dashboard and, over the control socket, `connect-dev requests` and `replay`.
        self.traffic: TrafficService | None = None
        self._control: ControlServer | None = None
        self._revision: descriptors.Revision | None = None
        self._last_seen: bytes | None = None  # the descriptor's bytes as last read, valid or not
        self._pending_invalid: asyncio.TimerHandle | None = None
        self._public_url = ""
        self._registrars: list[HostRegistrar] = []
        self.proxy: Proxy | None = None
        self.addon: AddonProcess | None = None  # with [addon] command, once started
        self._addon_probe: AddonProbe | None = None  # without it
        self._addon_tasks: set[asyncio.Task[None]] = set()
        # Config reloads: the settings `up` started with (what needs a restart is measured
        # against them), the file's bytes as last handled, and what new registrars need.
        self._started_config = config
        self._config_seen: bytes | None = None
        self._restart_needed: list[str] = []
        self._session: aiohttp.ClientSession | None = None
        self._ledger: Ledger | None = None
        # Registrars of hosts removed from the config whose uninstall failed: the teardown
        # tries again.
        self._retired: list[HostRegistrar] = []
        bus.subscribe(self._track_state)

    def _track_state(self, event: Event) -> None:
        self.state = reduce(self.state, event)

    def _emit(self, event: Event) -> None:
        self.bus.emit(event)

    @property
    def public_url(self) -> str:
        return self._public_url

    async def run(self, stop: asyncio.Event) -> int:
        """Run until ``stop`` is set; return the exit code (0: clean teardown)."""
        lock = ProjectLock(self.config.ledger_path.parent / "lock")
        lock.acquire()
        try:
            async with _upm_session() as session:
                return await self._run_locked(session, stop)
        finally:
            lock.release()

    async def _run_locked(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> int:
        ledger = self._ledger = Ledger(self.config.ledger_path)
        self._session = session
        with contextlib.suppress(InputFileError):
            self._config_seen = read_input_file(self.config.path)
        self._registrars = [
            _registrar(
                self.config,
                host,
                session,
                ledger,
                self._emit,
                self._settle,
                self._password_sources,
                preflight=self._preflight,
                explain_failure=self._explain_install_failure,
                callbacks_reported=self._callbacks_reported,
                silence=self._silence,
            )
            for host in self.config.hosts
        ]
        for message in self.config.warnings:
            self._emit(Warning(message=message))
        self._revision = self._load_descriptor()
        inspector_settings = self.config.inspector
        capture = (
            Capture(keep=inspector_settings.keep, body_limit=inspector_settings.max_body)
            if inspector_settings.capture
            else None
        )
        self.proxy = Proxy(
            self.config.addon_url,
            self._emit,
            port=self.config.proxy_port,
            inspector=self._inspector,
            capture=capture,
            # The tunnel keeper's probes are not the add-on's traffic: not in the log, nor
            # in the capture.
            unreported=is_probe_path,
        )
        tunnel = self._tunnel or create_tunnel(
            self.config, emit=self._emit, ngrok_authtoken_lookup=self._ngrok_authtoken_lookup
        )
        keeper = self._keeper = TunnelKeeper(
            tunnel,
            self._emit,
            publish=self._publish_url,
            reopened=self._tunnel_reopened,
            interval=self.config.tunnel.health_interval,
            timeout=self.config.tunnel.health_timeout,
        )
        watch_stop = asyncio.Event()
        watch_task: asyncio.Task[None] | None = None
        manifest_task: asyncio.Task[None] | None = None
        config_task: asyncio.Task[None] | None = None
        try:
            try:
                await self.proxy.start()
            except ConfigError as exc:
                raise self.config.error("proxy.port", exc.message, exc.hint) from exc
            # Publishes the descriptor for the public URL, then reports tunnel_opened.
            await keeper.open(self.proxy.url)
            keeper.start()
            if capture is not None:
                await self._open_control(capture, tunnel)
            await self._start_addon(watch_stop, stop)
            if self.config.hosts and self._revision is None:
                self._emit(Warning(message="nothing installed until the descriptor is valid"))
            watch_task = asyncio.create_task(
                keep_running("descriptor watcher", lambda: self._watch(watch_stop), self._emit),
                name="watch descriptor",
            )
            if self.config.forge is not None and self._forge_registrars():
                manifest_task = asyncio.create_task(
                    keep_running(
                        "manifest watcher",
                        lambda: self._watch_manifest(watch_stop),
                        self._emit,
                    ),
                    name="watch manifest",
                )
            # After the proxy is up, so the add-on hears the `uninstalled` callbacks of what a
            # crashed run left behind (when the public URL is still the same). Each host
            # cleans its own leftovers before its first install: a host that does not answer
            # holds up no other.
            if not stop.is_set():  # (quitting while the add-on started: nothing to install)
                recover = bool(_read_leftovers(ledger, self._registrars, self._emit))
                for registrar in self._registrars:
                    registrar.start(recover=recover)
                    if self._revision is not None:
                        registrar.request(self._target(self._revision), "startup")
                # Emulated sites' verdicts on the app's REST calls, as rest_call events.
                from .rest_verdicts import RestVerdictWatch

                verdicts = RestVerdictWatch(self.config.hosts, session, self._emit)
                self._background("REST verdict watch", verdicts.run)
                # A config built in code (no file behind it) has nothing to reload.
                if self._config_seen is not None:
                    config_task = asyncio.create_task(
                        keep_running(
                            "config watcher", lambda: self._watch_config(watch_stop), self._emit
                        ),
                        name="watch config",
                    )
                ready_task = asyncio.create_task(
                    keep_running("readiness check", self._announce_ready, self._emit), name="ready"
                )
                await stop.wait()
                await _cancel(ready_task)
        finally:
            watch_stop.set()
            if watch_task is not None:
                await _cancel(watch_task)
            if manifest_task is not None:
                await _cancel(manifest_task)
            if config_task is not None:
                await _cancel(config_task)
            for task in list(self._addon_tasks):
                await _cancel(task)
            self._cancel_pending_invalid()
            clean = await self._teardown(keeper)
            if self._control is not None:
                await self._control.close()
        return 0 if clean else 1

    async def _open_control(self, capture: Capture, tunnel: Tunnel) -> None:
        """The traffic inspector's control socket; without it the dev loop still runs."""
        proxy = self.proxy
        assert proxy is not None
        self.traffic = TrafficService(
            capture,
            proxy_url=lambda: proxy.url,
            context=lambda: ViewContext(self._public_url, self.config.addon_url),
            signer=self._signer,
            inspector_url=lambda: str(getattr(tunnel, "inspector_url", "") or ""),
        )
        control = ControlServer(self.config.ledger_path.parent, self.traffic)
        try:
            await control.start()
        except DevloopError as exc:
            await control.close()
            self._emit(Warning(message=exc.message, hint=exc.hint))
            return
        self._control = control

    async def _start_addon(self, watch_stop: asyncio.Event, stop: asyncio.Event) -> None:
        """With ``[addon] command``: start the add-on for the public URL, watch its
        ``restart_on`` files, and wait until it answers (at most ``ready_timeout``, or until
        ``stop``). Without: probe ``[addon] url`` once now (a server that is not running is
        reported before an install fails on it), then every few seconds."""
        settings = self.config.addon
        if not settings.managed:
            probe = self._addon_probe = AddonProbe(self.config, self._emit)
            await probe.check()
            self._background("add-on probe", probe.run)
            return
        addon = self.addon = AddonProcess(self.config, self._emit)
        await addon.start(self._public_url)
        if settings.restart_on:
            self._background("add-on file watcher", lambda: addon.watch(watch_stop))
        answered = asyncio.ensure_future(addon.wait_answering(settings.ready_timeout))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((answered, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            answered.cancel()
            stopping.cancel()

    def _background(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """A task of the add-on's, cancelled when the run stops."""
        task = asyncio.create_task(keep_running(name, run, self._emit), name=name)
        self._addon_tasks.add(task)
        task.add_done_callback(self._addon_tasks.discard)

    def _addon_answering(self) -> bool | None:
        if self.addon is not None:
            return self.addon.answering
        if self._addon_probe is not None:
            return self._addon_probe.answering
        return None

    async def _announce_ready(self) -> None:
        """``ready`` once every host has an outcome, or has not answered at all for the silence
        bound (it is named in ``waiting``; its install goes on in the background)."""
        pending = {
            asyncio.ensure_future(registrar.wait_idle()): registrar
            for registrar in self._registrars
        }
        try:
            while pending:
                done, _ = await asyncio.wait(
                    pending, timeout=_READY_RECHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                for finished in done:
                    del pending[finished]
                if all(_is_silent(registrar, self._silence) for registrar in pending.values()):
                    break
        finally:
            for waiter in pending:
                waiter.cancel()
        current = self._target(self._revision) if self._revision is not None else None
        self._emit(
            Ready(
                public_url=self._public_url,
                installed=sum(
                    1 for r in self._registrars if current is not None and r.installed == current
                ),
                hosts=len(self._registrars),
                waiting=[registrar.host.name for registrar in pending.values()],
                addon_answering=self._addon_answering(),
            )
        )

    async def _teardown(self, keeper: TunnelKeeper) -> bool:
        await keeper.stop()  # nothing reopens the tunnel while the hosts uninstall through it
        closing = [*self._registrars, *self._retired]
        results = await asyncio.gather(
            *(registrar.close(self._close_bound(registrar)) for registrar in closing),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                logger.error("teardown failed", exc_info=result)
        try:
            # After the uninstalls: the add-on answers their `uninstalled` callbacks.
            await self._stop_addon()
            await keeper.close()  # after the uninstalls: their callbacks go through the tunnel
        finally:
            if self.proxy is not None:
                await self.proxy.close()
            self._emit(Stopped())
        try:
            left = Ledger(self.config.ledger_path).entries()
        except LedgerError:
            return False
        # What a registrar keeps installed on exit on purpose (Forge's on_exit = "keep") is
        # not left behind: the next `up` takes it over, `down` removes it.
        return not [e for e in left if not any(r.keeps(e) for r in self._registrars)]

    async def _stop_addon(self) -> None:
        try:
            if self.addon is not None:
                await self.addon.stop()
        except Exception:  # the tunnel and the proxy must still close
            logger.error("stopping the add-on failed", exc_info=True)
        if self._addon_probe is not None:
            await self._addon_probe.close()

    def _close_bound(self, registrar: HostRegistrar) -> float:
        """How long a host's teardown may take: a Forge uninstall has its own, longer bound."""
        forge = self.config.forge
        if registrar.host.registrar == "forge" and forge is not None:
            return max(self._teardown_timeout, forge.uninstall_timeout)
        return self._teardown_timeout

    def _load_descriptor(self) -> descriptors.Revision | None:
        path = self.config.descriptor_path
        try:
            revision = descriptors.load(path)
        except DescriptorError as exc:
            self._report_invalid(exc)
            return None
        self._last_seen = revision.raw
        self._report_loaded(revision)
        return revision

    def _report_loaded(self, revision: descriptors.Revision) -> None:
        self._emit(DescriptorLoaded(key=revision.key, digest=revision.digest, path=revision.path))
        for problem in revision.warnings:
            self._emit(Warning(message=problem.format(revision.path)))

    def _report_invalid(self, error: DescriptorError) -> None:
        kept = self._revision.digest if self._revision is not None else ""
        self._emit(
            DescriptorInvalid(
                errors=[p.to_dict() for p in error.problems], path=error.file, kept_digest=kept
            )
        )

    def _explain_install_failure(self, error: DevloopError, since: float) -> DevloopError:
        # The proxy knows why the add-on gave no answer to the host's installed callback.
        return self.proxy.explain_install_failure(error, since) if self.proxy else error

    async def _callbacks_reported(self) -> None:
        # The host's lifecycle callbacks came before its answer: log them first.
        if self.proxy is not None:
            await self.proxy.callbacks_reported()

    def _publish_url(self, url: str) -> None:
        """The tunnel (re)opened at ``url``: serve the descriptor rendered for it."""
        self._public_url = url
        if self.proxy is not None:
            self.proxy.publish(self._revision, url)

    def _tunnel_reopened(self, old_url: str, new_url: str) -> None:
        if new_url != old_url and self.addon is not None:
            # The add-on was given the old URL: restart it with the new one, and install once
            # it answers (its `installed` callback must reach it).
            self._background("add-on restart", lambda: self._restart_addon_for(new_url))
        elif new_url != old_url:
            self.reinstall(reason="tunnel_changed", force=False)
        else:
            # Same URL: only hosts whose install failed meanwhile are installed again.
            self.reinstall(reason="tunnel_recovered", force=False)

    async def _restart_addon_for(self, url: str) -> None:
        addon = self.addon
        assert addon is not None
        addon.set_base_url(url)
        addon.restart("tunnel_changed", f"the public URL is now {url}")
        await addon.wait_answering(self.config.addon.ready_timeout)
        self.reinstall(reason="tunnel_changed", force=False)

    async def _preflight(self, target: Target) -> None:
        """Before each install: the public descriptor URL must serve this proxy's descriptor."""
        if self._keeper is not None:
            await self._keeper.preflight(target.public_url)

    def _target(self, revision: descriptors.Revision) -> Target:
        return Target(
            key=revision.key,
            digest=revision.digest,
            public_url=self._public_url,
            descriptor=revision,
        )

    async def _watch(self, stop: asyncio.Event) -> None:
        path = self.config.descriptor_path
        async for saved in watch_file(path, stop_event=stop, initial=self._last_seen):
            if isinstance(saved, Unreadable):
                self._on_unreadable(saved.reason)
            else:
                self._on_saved(saved)

    def _forge_registrars(self) -> list[HostRegistrar]:
        return [r for r in self._registrars if r.backend.kind == "forge"]

    async def _watch_manifest(self, stop: asyncio.Event) -> None:
        """A save of manifest.yml by the user (app.id after `forge register`, Forge modules)
        deploys again to the forge hosts; the registrar's own writes of its Connect parts are
        not saves to act on."""
        assert self.config.forge is not None
        path = self.config.forge.manifest
        initial: bytes | None = None
        with contextlib.suppress(InputFileError):
            initial = read_input_file(path)
        async for saved in watch_file(path, stop_event=stop, initial=initial):
            if isinstance(saved, Unreadable):
                continue  # the next install writes it again from the descriptor
            if any(_wrote(r.backend, saved) for r in self._forge_registrars()):
                continue
            if self._revision is None:
                continue
            target = self._target(self._revision)
            for registrar in self._forge_registrars():
                registrar.request(target, "manifest_changed", force=False)

    def _on_unreadable(self, reason: str) -> None:
        """The descriptor path has no readable file now; the last good revision stays (the
        event's ``kept_digest`` names it, and every view says it stays installed)."""
        self._cancel_pending_invalid()
        self._last_seen = None  # the same bytes coming back are a save to report
        self._report_invalid(
            DescriptorError(
                str(self.config.descriptor_path),
                [Problem("$", reason)],
                hint="Restore the file (or fix `descriptor` in connect-dev.toml and restart); "
                "the next good save installs.",
            )
        )

    def _on_saved(self, raw: bytes, *, confirm: bool = True) -> None:
        """A new version of the descriptor's bytes: report it, serve it and install it if valid;
        an invalid one is reported and the last good revision stays served and installed.
        ``_last_seen`` is set once the save is handled: a watch restarted after a crash here
        reads the same bytes again and retries them."""
        self._cancel_pending_invalid()
        path = self.config.descriptor_path
        try:
            revision = descriptors.parse(raw, path=str(path))
        except DescriptorError as exc:
            self._last_seen = raw
            if confirm:
                # The watcher acts on the first change it sees; an editor that truncates,
                # then writes, can show it half written. Said only if nothing follows soon.
                self._pending_invalid = asyncio.get_running_loop().call_later(
                    INVALID_CONFIRM_SECONDS, self._report_invalid, exc
                )
            else:
                self._report_invalid(exc)
            return
        except Exception as exc:
            self._last_seen = raw
            # A validator bug must cost this save, not the watch: report it as the save's
            # problem (and as an error), keep the last good revision, go on watching.
            report_crash("descriptor check", exc, self._emit, then="The watch goes on")
            self._report_invalid(
                DescriptorError(
                    str(path),
                    [Problem("$", f"could not be checked: {type(exc).__name__}: {exc}")],
                    hint="This is a connect-devloop bug; the last good revision stays "
                    "installed. Please report it with the descriptor that caused it.",
                )
            )
            return
        changed = self._revision is None or revision.digest != self._revision.digest
        self._revision = revision
        if self.proxy is not None:
            self.proxy.publish(revision, self._public_url)
        self._report_loaded(revision)
        if changed:
            self.reinstall(reason="descriptor_changed", force=False)
        self._last_seen = raw

    def validate_now(self) -> None:
        """Re-read the descriptor and report it (the dashboard's `v`); installs only if changed."""
        try:
            raw = read_input_file(self.config.descriptor_path)
        except InputFileError as exc:
            self._on_unreadable("file was removed" if exc.missing else exc.reason)
            return
        self._on_saved(raw, confirm=False)

    def _cancel_pending_invalid(self) -> None:
        if self._pending_invalid is not None:
            self._pending_invalid.cancel()
            self._pending_invalid = None

    async def uninstall(self, host: str) -> bool:
        """Uninstall from one host now (the dashboard's `d`). A later save or `reinstall`
        installs it again."""
        for registrar in self._registrars:
            if registrar.host.name == host:
                return await registrar.uninstall_all(reason="manual")
        return False

    def reinstall(
        self, host: str | None = None, *, reason: str = "manual", force: bool = True
    ) -> None:
        """Ask one host (or all) to install the current revision."""
        if self._revision is None:
            return
        target = self._target(self._revision)
        for registrar in self._registrars:
            if host is None or registrar.host.name == host:
                registrar.request(target, reason, force=force)

    # --- connect-dev.toml saved while `up` runs ---------------------------------------------

    async def _watch_config(self, stop: asyncio.Event) -> None:
        """Each save of connect-dev.toml is read again (after a short settle) and applied;
        one that cannot be used is reported and the running config stays."""
        path = self.config.path
        async for saved in watch_file(path, stop_event=stop, initial=self._config_seen):
            if isinstance(saved, Unreadable):
                self._config_seen = None  # the same bytes coming back are a save to apply
                self._report_config_invalid(
                    ConfigError(
                        saved.reason,
                        hint="Restore the file; the running config stays until a valid save.",
                        file=str(path),
                    )
                )
                continue
            await asyncio.sleep(CONFIG_SETTLE_SECONDS)
            try:
                raw = read_input_file(path)
            except InputFileError:
                continue  # gone again: the watcher reports it
            if raw == self._config_seen:
                continue  # a second save with what was already handled
            self._config_seen = raw
            try:
                config = parse_config_bytes(raw, path)
            except ConfigError as exc:
                self._report_config_invalid(exc)
                continue
            await self._apply_config(config)

    def _report_config_invalid(self, error: ConfigError) -> None:
        self._emit(
            ConfigInvalid(
                file=error.file or str(self.config.path),
                line=error.line,
                key=error.key or "",
                message=error.message,
                hint=error.hint,
            )
        )

    async def _apply_config(self, new: Config) -> None:
        """Apply a valid save: settings that need a restart are reported (and the running
        ones stay), hosts are added, removed and changed as the file now says."""
        old = self.config
        started = self._started_config
        needs_restart = _restart_keys(started, new)
        # Only [[hosts]] change while running; everything else stays as `up` started.
        self.config = dataclasses.replace(
            new,
            descriptor_path=started.descriptor_path,
            addon_url=started.addon_url,
            addon=started.addon,
            proxy_port=started.proxy_port,
            tunnel=started.tunnel,
            forge=started.forge,
        )
        for message in new.warnings:
            if message not in old.warnings:
                self._emit(Warning(message=message))
        running = {registrar.host.name: registrar for registrar in self._registrars}
        wanted = {host.name: host for host in new.hosts}
        added = [name for name in wanted if name not in running]
        removed = [name for name in running if name not in wanted]
        changed = [
            name
            for name in wanted
            if name in running and _host_changes(running[name].host, wanted[name])
        ]
        applied = [
            f"hosts[{name}].{key}"
            for name in changed
            for key in _host_changes(running[name].host, wanted[name])
        ]
        if applied or needs_restart or needs_restart != self._restart_needed:
            self._emit(ConfigChanged(applied=applied, needs_restart=needs_restart))
        if needs_restart and needs_restart != self._restart_needed:
            self._emit(
                Warning(
                    message=f"{new.path.name}: {', '.join(needs_restart)} "
                    f"{'takes' if len(needs_restart) == 1 else 'take'} effect only when "
                    "`connect-dev up` is started again; the running settings stay",
                    hint="Stop it (Ctrl-C) and start it again to use them.",
                )
            )
        self._restart_needed = needs_restart
        # Away first, concurrently: a changed URL is uninstalled from the old one before the
        # new one installs; a URL that stays keeps what it has (the new install replaces it).
        await asyncio.gather(
            *(self._retire(running[name], "removed", uninstall=True) for name in removed),
            *(
                self._retire(
                    running[name],
                    "config_changed",
                    uninstall=running[name].host.base_url != wanted[name].base_url,
                )
                for name in changed
            ),
        )
        fresh = {name: self._new_registrar(wanted[name]) for name in (*added, *changed)}
        kept = {name: r for name, r in running.items() if name not in removed + changed}
        by_name = {**kept, **{n: r for n, r in fresh.items() if r is not None}}
        self._registrars = [by_name[host.name] for host in new.hosts if host.name in by_name]
        for registrar in fresh.values():
            if registrar is None:
                continue
            registrar.start()
            if self._revision is not None:
                registrar.request(self._target(self._revision), "config_changed")
        self._emit(ConfigReloaded(added=added, removed=removed, changed=changed))

    async def _retire(self, registrar: HostRegistrar, reason: str, *, uninstall: bool) -> None:
        """Stop ``registrar`` (its host left the config or changed); with ``uninstall``, first
        remove from its host (its URL) what the ledger lists there. It leaves
        ``self._registrars`` only once done: a teardown meanwhile still uninstalls it, and
        so does the teardown when the uninstall fails now."""
        bound = self._close_bound(registrar)
        done = False
        try:
            async with asyncio.timeout(bound):
                await registrar.retire()
                done = await registrar.uninstall_all(reason) if uninstall else True
        except TimeoutError:
            await registrar.retire(wait=False)
            self._emit(
                DeregistrationFailed(
                    host=registrar.host.name,
                    error=f"uninstall did not finish within {bound:g} s",
                    hint="The ledger keeps the entry: the teardown tries again, "
                    "`connect-dev down` after it.",
                )
            )
        if not done:
            self._retired.append(registrar)

    def _new_registrar(self, host: HostConfig) -> HostRegistrar | None:
        """The install worker of a host added or changed by a reload, as at startup, except
        that nobody is asked for a password: a host without one fails its install with the
        usual "no password" message."""
        assert self._session is not None
        assert self._ledger is not None
        try:
            return _registrar(
                self.config,
                host,
                self._session,
                self._ledger,
                self._emit,
                self._settle,
                _reload_sources(self._password_sources),
                preflight=self._preflight,
                explain_failure=self._explain_install_failure,
                callbacks_reported=self._callbacks_reported,
                silence=self._silence,
            )
        except DevloopError as exc:  # a Forge host in a build without the Forge registrar
            self._emit(
                RegistrationFailed(
                    host=host.name, error=exc.message, hint=exc.hint, registrar=host.registrar
                )
            )
            return None


def _registrar(
    config: Config,
    host: HostConfig,
    session: aiohttp.ClientSession,
    ledger: Ledger,
    emit: Callable[[Event], None],
    settle: float,
    sources: Sequence[PasswordSource] | None,
    *,
    preflight: Callable[[Target], Awaitable[None]] | None = None,
    explain_failure: Callable[[DevloopError, float], DevloopError] | None = None,
    callbacks_reported: Callable[[], Awaitable[None]] | None = None,
    silence: float = DEFAULT_SILENCE_SECONDS,
) -> HostRegistrar:
    """The install worker of ``host`` with the backend of its ``registrar`` kind. Raises
    ``DevloopError`` when that kind cannot be used at all (a Forge host in a build without
    the Forge registrar): startup stops there."""
    backend: RegistrarBackend
    if host.registrar == "forge":
        backend = _forge_backend(config, host, emit)
    else:
        try:
            password = resolve_password(host, sources)
        except DevloopError as exc:
            return HostRegistrar(
                host, UpmBackend(host, None, unavailable=exc), ledger, emit, settle=settle
            )
        backend = UpmBackend(host, UpmClient(session, host.base_url, host.username, password))
    return HostRegistrar(
        host,
        backend,
        ledger,
        emit,
        settle=settle,
        preflight=preflight,
        explain_failure=explain_failure,
        callbacks_reported=callbacks_reported,
        silence=silence,
    )


def _host_changes(old: HostConfig, new: HostConfig) -> list[str]:
    """The keys of a [[hosts]] entry that differ (its line and name do not count)."""
    return [key for key in _HOST_KEYS if getattr(old, key) != getattr(new, key)]


def _restart_keys(running: Config, new: Config) -> list[str]:
    """Dotted keys outside [[hosts]] whose saved value differs from the one ``up`` runs
    with: they take effect only after a restart."""
    keys: list[str] = []
    if new.descriptor_path != running.descriptor_path:
        keys.append("descriptor")
    if new.addon_url != running.addon_url:
        keys.append("addon.url")
    keys += _differing("addon", running.addon, new.addon)
    if new.proxy_port != running.proxy_port:
        keys.append("proxy.port")
    tunnel = _differing("tunnel", running.tunnel, new.tunnel)
    # provider = "auto" resolves by the hosts: a host that is not local now wants ngrok.
    if "tunnel.provider" not in tunnel and new.tunnel_provider != running.tunnel_provider:
        tunnel.insert(0, "tunnel.provider")
    keys += tunnel
    if (running.forge is None) != (new.forge is None):
        keys.append("forge")
    elif running.forge is not None and new.forge is not None:
        keys += _differing("forge", running.forge, new.forge)
    return keys


def _differing(table: str, old: object, new: object) -> list[str]:
    return [
        f"{table}.{field.name}"
        for field in dataclasses.fields(old)  # type: ignore[arg-type]
        if getattr(old, field.name) != getattr(new, field.name)
    ]


def _reload_sources(
    sources: Sequence[PasswordSource] | None,
) -> list[PasswordSource] | None:
    """The password sources for a host a reload adds or changes: what the config now says
    (environment, keychain, inline) before what was found or typed at startup, so a changed
    password is the one used; never a prompt."""
    if sources is None:
        return None
    return [
        *(s for s in sources if not isinstance(s, ResolvedSource)),
        *(s for s in sources if isinstance(s, ResolvedSource)),
    ]


def _forge_backend(
    config: Config, host: HostConfig, emit: Callable[[Event], None]
) -> RegistrarBackend:
    """``registrars.forge.create_backend``, imported only when a host needs it."""
    module = f"{__package__}.registrars.forge"
    try:
        forge = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise ConfigError(
            "registrar 'forge' is not available in this build",
            hint="Install a connect-devloop with the Forge registrar, or set registrar = "
            '"upm" (the default) for this host.',
            file=str(config.path),
            line=config.key_lines.get(f"hosts[{config.hosts.index(host)}].registrar"),
            key=f"hosts[{config.hosts.index(host)}].registrar",
        ) from exc
    # config.py sets [forge] whenever a host uses it; a Config built by hand may not have.
    forge_config = config.forge or ForgeConfig(manifest=config.project_dir / "manifest.yml")
    create_backend: Callable[..., RegistrarBackend] = forge.create_backend
    return create_backend(host, forge_config, config=config, emit=emit)


def _wrote(backend: RegistrarBackend, saved: bytes) -> bool:
    """True when ``saved`` is what the backend itself last wrote (the forge backend writes the
    manifest's Connect parts)."""
    wrote = getattr(backend, "wrote", None)
    return callable(wrote) and bool(wrote(saved))


def _is_silent(registrar: HostRegistrar, bound: float) -> bool:
    silent = registrar.silent_for()
    return silent is not None and silent >= bound


def _read_leftovers(
    ledger: Ledger, registrars: Sequence[HostRegistrar], emit: Callable[[Event], None]
) -> list[LedgerEntry] | None:
    """What an earlier run left in the ledger; entries for hosts no longer configured are
    reported (nobody can remove those). None when the ledger cannot be read: then nothing is
    recovered and the reason is reported."""
    try:
        entries = ledger.entries()
    except LedgerError as exc:
        emit(Warning(message=exc.message, hint=exc.hint))
        return None
    known = {registrar.host.base_url for registrar in registrars}
    for entry in entries:
        if entry.url not in known:
            emit(_unknown_host_failure(entry.host, entry.key, entry.url, ledger))
    return entries


def _unknown_host_failure(host: str, key: str, url: str, ledger: Ledger) -> DeregistrationFailed:
    return DeregistrationFailed(
        host=host,
        key=key,
        error=f"{url} is in the ledger but no longer in connect-dev.toml",
        hint="Add the host back to connect-dev.toml and run `connect-dev down`, or "
        f"uninstall {key} by hand (Manage apps) and delete {ledger.path}.",
    )


async def _recover(
    ledger: Ledger, registrars: Sequence[HostRegistrar], emit: Callable[[Event], None]
) -> bool:
    """Uninstall what an earlier run left in the ledger. True when nothing is left."""
    entries = _read_leftovers(ledger, registrars, emit)
    if entries is None:
        return False
    known = {registrar.host.base_url for registrar in registrars}
    affected = [r for r in registrars if ledger.entries_for(r.host.base_url)]
    results = await asyncio.gather(*(r.uninstall_all(reason="recovery") for r in affected))
    return all(results) and all(entry.url in known for entry in entries)


async def _no_signer(claims: Mapping[str, Any]) -> tuple[str, Secret]:
    del claims
    raise DevloopError("this run inspects no Connect JWTs, so it knows no tenant's secret")


async def run_down(
    config: Config, bus: EventBus, *, password_sources: Sequence[PasswordSource] | None = None
) -> tuple[int, int]:
    """`connect-dev down`: uninstall whatever the ledger lists. Returns (removed, left)."""
    lock = ProjectLock(config.ledger_path.parent / "lock")
    ledger = Ledger(config.ledger_path)
    with lock.held():
        before = len(ledger.entries())
        async with _upm_session() as session:
            registrars = [
                _registrar(config, host, session, ledger, bus.emit, 0.0, password_sources)
                for host in config.hosts
            ]
            await _recover(ledger, registrars, bus.emit)
        left = len(ledger.entries())
        # A tunnel process (ngrok agent, ssh) a killed `up` left running is stopped too, and
        # so is the add-on it ran ([addon] command).
        await asyncio.to_thread(stop_leftover_tunnel, config)
        await asyncio.to_thread(stop_leftover_addon, config)
    return before - left, left


@contextlib.asynccontextmanager
async def _upm_session() -> AsyncIterator[aiohttp.ClientSession]:
    # UPM answers JSON to scripts; cookies would let one host's session leak into another's.
    session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
    try:
        yield session
    finally:
        await session.close()


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait for it. An exception it ended with is logged, not swallowed
    (its ``error`` event was already reported by ``keep_running``)."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # shown with -v; no traceback on the user's screen
        logger.debug("%s ended with an error", task.get_name(), exc_info=True)

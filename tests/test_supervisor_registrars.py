"""The supervisor builds each host's registrar by kind: UPM, or Forge through
``registrars.forge.create_backend`` (stood in for here by a scripted backend)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from connect_devloop.config import Config, ForgeConfig, HostConfig, load_config
from connect_devloop.errors import ConfigError
from connect_devloop.events import EventBus, Registered
from connect_devloop.ledger import Ledger
from connect_devloop.supervisor import Supervisor, run_down

from .conftest import EventLog
from .e2e import running_up, write_config
from .test_registrar_backends import ScriptedBackend

FORGE_MODULE = "connect_devloop.registrars.forge"
# Named and placed as test_registrar_backends.HOST, whose ledger entries the backend writes.
FORGE_HOST = '[[hosts]]\nname = "cloud"\nregistrar = "forge"\nsite = "acme.atlassian.net"\n'
FORGE_HOST += 'product = "jira"\n'


class FakeForge:
    """Stands in for ``registrars/forge.py``: records what the factory passed."""

    def __init__(self) -> None:
        self.calls: list[tuple[HostConfig, ForgeConfig, Config, Any]] = []
        self.backends: list[ScriptedBackend] = []

    def create_backend(
        self, host: HostConfig, forge: ForgeConfig, *, config: Config, emit: Any
    ) -> ScriptedBackend:
        self.calls.append((host, forge, config, emit))
        backend = ScriptedBackend(config.ledger_path, keep_on_exit=forge.on_exit == "keep")
        self.backends.append(backend)
        return backend


@pytest.fixture
def forge(monkeypatch: pytest.MonkeyPatch) -> FakeForge:
    fake = FakeForge()
    monkeypatch.setitem(
        sys.modules, FORGE_MODULE, SimpleNamespace(create_backend=fake.create_backend)
    )
    return fake


def forge_config(project: Path, on_exit: str = "keep") -> Path:
    path = write_config(project, "http://127.0.0.1:9", [FORGE_HOST])
    path.write_text(path.read_text() + f'[forge]\non_exit = "{on_exit}"\n', encoding="utf-8")
    return path


async def test_a_forge_host_fails_at_start_when_the_build_has_no_forge_registrar(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, FORGE_MODULE, None)  # as if registrars/forge.py were absent
    config_path = forge_config(project)
    supervisor = Supervisor(load_config(config_path), EventBus())

    with pytest.raises(ConfigError) as caught:
        await supervisor.run(asyncio.Event())

    error = caught.value
    assert error.message == "registrar 'forge' is not available in this build"
    assert (error.file, error.line, error.key) == (str(config_path), 10, "hosts[0].registrar")
    assert error.hint == (
        "Install a connect-devloop with the Forge registrar, or set registrar = "
        '"upm" (the default) for this host.'
    )


async def test_the_factory_hands_the_forge_backend_its_host_config_and_emit(
    project: Path, forge: FakeForge
) -> None:
    async with running_up(forge_config(project)) as up:
        [(host, forge_settings, config, emit)] = forge.calls
        assert (host.name, host.registrar, host.site) == ("cloud", "forge", "acme.atlassian.net")
        assert forge_settings == config.forge
        assert forge_settings.manifest == project / "manifest.yml"
        assert config.path == project / "connect-dev.toml"
        registering = up.events.of("registering")
        assert [e.registrar for e in registering] == ["forge"]  # type: ignore[attr-defined]
        # emit reaches the bus: what the backend reports is in the log.
        emit(Registered(host="cloud", key="probe", duration_ms=0, registrar="forge"))
        assert up.events.of("registered", key="probe")
        # The target carries the descriptor revision it was made from.
        [backend] = forge.backends
        [installed] = backend.installs
        assert installed.descriptor is not None
        assert installed.descriptor.key == installed.key == "test-addon"
        await up.shutdown()


async def test_keep_leaves_the_install_and_the_next_up_deploys_nothing_until_down(
    project: Path, forge: FakeForge
) -> None:
    config_path = forge_config(project, on_exit="keep")
    async with running_up(config_path) as up:
        assert await up.shutdown() == 0  # a kept install is not something left behind
    assert up.events.names()[-3:] == ["kept", "tunnel_closed", "stopped"]
    [entry] = Ledger(project / ".connect-dev" / "ledger.json").entries()
    assert (entry.registrar, entry.confirmed) == ("forge", True)

    async with running_up(config_path) as up:
        [registered] = up.events.of("registered")
        assert isinstance(registered, Registered)
        assert registered.unchanged
        assert forge.backends[-1].installs == []
        await up.shutdown()

    events = EventLog()
    bus = EventBus()
    bus.subscribe(events)
    removed, left = await run_down(load_config(config_path), bus)
    assert (removed, left) == (1, 0)
    assert forge.backends[-1].uninstalls == ["test-addon"]
    assert events.names() == ["deregistered"]


async def test_uninstall_on_exit_removes_the_forge_install(project: Path, forge: FakeForge) -> None:
    async with running_up(forge_config(project, on_exit="uninstall")) as up:
        assert await up.shutdown() == 0
    assert forge.backends[0].uninstalls == ["test-addon"]
    assert up.events.of("kept") == []
    assert Ledger(project / ".connect-dev" / "ledger.json").entries() == []

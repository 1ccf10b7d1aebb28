"""Saving connect-dev.toml while a real `connect-dev up` runs: hosts added, removed and changed
are installed and uninstalled, judged by the emulated hosts' own records; an invalid save and a
setting that needs a restart are reported and change nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from connect_devloop.host import run_host
from connect_devloop.ledger import Ledger

from .e2e import connect_dev_up, host_toml, recording_addon, write_config
from .keyrings import subprocess_keyring_env


def save_config(path: Path, text: str) -> None:
    """An editor's safe write: a temporary file renamed over the config."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def config_text(addon_url: str, hosts: list[str], *, port: int = 0) -> str:
    return (
        'descriptor = "atlassian-connect.json"\n'
        f'[addon]\nurl = "{addon_url}"\n'
        f"[proxy]\nport = {port}\n"
        '[tunnel]\nprovider = "none"\n' + "".join(hosts)
    )


def ledger_urls(project: Path) -> list[str]:
    return sorted(entry.url for entry in Ledger(project / ".connect-dev" / "ledger.json").entries())


@pytest.mark.timeout(120)
async def test_hosts_added_removed_and_changed_while_up_runs(project: Path, tmp_path: Path) -> None:
    async with (
        recording_addon() as addon,
        run_host() as one,
        run_host() as two,
        run_host() as three,
        run_host() as four,
    ):
        hosts = [host_toml("one", one.base_url), host_toml("two", two.base_url)]
        config = write_config(project, addon.url, hosts)
        env = subprocess_keyring_env(tmp_path / "keyring.json")
        async with connect_dev_up(config, env) as up:
            ready = await up.wait_event("ready")
            assert ready["installed"] == 2
            assert len(one.record.installs) == len(two.record.installs) == 1

            # A host added is installed, and only it.
            save_config(
                config, config_text(addon.url, [*hosts, host_toml("three", three.base_url)])
            )
            reloaded = await up.wait_event("config_reloaded")
            assert reloaded["added"] == ["three"]
            assert reloaded["removed"] == reloaded["changed"] == []
            await up.wait_event("registered", host="three")
            assert [i.key for i in three.record.installs] == ["test-addon"]
            assert "test-addon" in three.record.plugins
            registering = up.events("registering")
            assert [(e["host"], e["reason"]) for e in registering[2:]] == [
                ("three", "config_changed")
            ]
            assert len(one.record.installs) == len(two.record.installs) == 1

            # A host removed is uninstalled there, and leaves the ledger.
            hosts = [host_toml("two", two.base_url), host_toml("three", three.base_url)]
            save_config(config, config_text(addon.url, hosts))
            reloaded = await up.wait_event("config_reloaded", removed=["one"])
            assert reloaded["added"] == reloaded["changed"] == []
            assert [u.key for u in one.record.uninstalls] == ["test-addon"]
            assert one.record.plugins == {}
            gone = up.events("deregistered")
            assert [(e["host"], e["reason"]) for e in gone] == [("one", "removed")]
            assert ledger_urls(project) == sorted([two.base_url, three.base_url])

            # A URL changed: uninstalled from the old host, installed on the new one.
            hosts = [host_toml("two", four.base_url), host_toml("three", three.base_url)]
            save_config(config, config_text(addon.url, hosts))
            reloaded = await up.wait_event("config_reloaded", changed=["two"])
            assert reloaded["added"] == reloaded["removed"] == []
            changed = up.events("config_changed")[-1]
            assert changed["applied"] == ["hosts[two].url"]
            assert changed["needs_restart"] == []
            assert [u.key for u in two.record.uninstalls] == ["test-addon"]
            assert two.record.plugins == {}
            await up.wait_event_count("registered", 4)
            await four.wait_for(lambda record: len(record.installs) == 1, timeout=10)
            assert "test-addon" in four.record.plugins
            assert [(e["host"], e["reason"]) for e in up.events("deregistered")][-1] == (
                "two",
                "config_changed",
            )
            assert ledger_urls(project) == sorted([four.base_url, three.base_url])
            # Nothing else was touched.
            assert len(three.record.installs) == 1
            assert three.record.uninstalls == []

            stderr = await up.stop()
        assert up.process.returncode == 0, stderr
        # The teardown uninstalls from the hosts the config names now.
        for host in (three, four):
            assert [u.key for u in host.record.uninstalls] == ["test-addon"]
        assert len(two.record.uninstalls) == 1
        assert ledger_urls(project) == []


@pytest.mark.timeout(120)
async def test_invalid_save_and_restart_settings_change_nothing(
    project: Path, tmp_path: Path
) -> None:
    async with recording_addon() as addon, run_host() as one, run_host() as two:
        hosts = [host_toml("one", one.base_url)]
        config = write_config(project, addon.url, hosts)
        env = subprocess_keyring_env(tmp_path / "keyring.json")
        async with connect_dev_up(config, env) as up:
            await up.wait_event("ready")

            # Not TOML: the line is named; nothing is installed or removed.
            broken = config_text(addon.url, [*hosts, host_toml("two", two.base_url)])
            save_config(config, broken + "[[hosts]\n")
            invalid = await up.wait_event("config_invalid")
            assert invalid["file"] == str(config)
            assert invalid["line"] == broken.count("\n") + 1
            assert invalid["message"].startswith("not valid TOML")

            # An unknown key: its line and dotted key, with the hint.
            lines = config_text(addon.url, hosts).splitlines()
            port_line = lines.index("port = 0") + 1
            lines.insert(port_line, "prot = 1")
            save_config(config, "\n".join(lines) + "\n")
            invalid = await up.wait_event("config_invalid", key="proxy.prot")
            assert invalid["line"] == port_line + 1
            assert invalid["message"] == "unknown key"
            assert invalid["hint"] == "did you mean 'port'?"
            assert up.events("config_reloaded") == []
            assert up.events("config_changed") == []

            # The proxy port needs a restart: said, and the hosts stay as they are.
            save_config(config, config_text(addon.url, hosts, port=18765))
            changed = await up.wait_event("config_changed")
            assert changed == {**changed, "applied": [], "needs_restart": ["proxy.port"]}
            warning = [w for w in up.events("warning") if "proxy.port" in w["message"]]
            assert warning
            assert "started again" in warning[0]["message"]
            reloaded = await up.wait_event("config_reloaded")
            assert reloaded["added"] == reloaded["removed"] == reloaded["changed"] == []

            # Back to the running port: nothing needs a restart any more.
            save_config(config, config_text(addon.url, hosts))
            await up.wait_event("config_changed", needs_restart=[])

            assert len(one.record.installs) == 1
            assert one.record.uninstalls == []
            assert two.record.installs == []
            assert [e["host"] for e in up.events("registering")] == ["one"]
            stderr = await up.stop()
        assert up.process.returncode == 0, stderr

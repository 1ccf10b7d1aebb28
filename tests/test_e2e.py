"""The whole loop in-process: real emulated hosts, real proxy, real file saves.

Assertions are on the emulated host's own record of what it installed (with what descriptor
content) and uninstalled, not on our events alone.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import aiohttp

from connect_devloop.host import run_host
from connect_devloop.ledger import Ledger
from connect_devloop.render import format_event

from .conftest import descriptor_text
from .e2e import host_toml, recording_addon, running_up, save, write_config


async def test_startup_installs_on_three_hosts_with_different_context_paths(
    project: Path,
) -> None:
    async with (
        recording_addon() as addon,
        run_host(context_path="/jira") as jira,
        run_host(context_path="/wiki", product="confluence") as wiki,
        run_host(context_path="") as bare,
    ):
        config = write_config(
            project,
            addon.url,
            [
                host_toml("jira", jira.base_url),
                host_toml("wiki", wiki.base_url, product="confluence"),
                host_toml("bare", bare.base_url),
            ],
        )
        async with running_up(config) as up:
            public_url = up.supervisor.public_url
            assert sorted(e.host for e in up.events.of("registered")) == [  # type: ignore[attr-defined]
                "bare",
                "jira",
                "wiki",
            ]
            for host in (jira, wiki, bare):
                assert len(host.record.installs) == 1
                install = host.record.installs[0]
                assert install.key == "test-addon"
                assert install.plugin_uri == f"{public_url}/atlassian-connect.json"
                assert install.descriptor["baseUrl"] == public_url
                assert "test-addon" in host.record.plugins
            assert [e.name for e in up.events.events if e.name != "request"][:3] == [
                "descriptor_loaded",
                "tunnel_opened",
                "registering",
            ]
            assert len(Ledger(project / ".connect-dev" / "ledger.json").entries()) == 3
            code = await up.shutdown()
        assert code == 0
        for host in (jira, wiki, bare):
            assert [u.key for u in host.record.uninstalls] == ["test-addon"]
            assert host.record.plugins == {}
        assert [path for path, _ in addon.callbacks].count("/uninstalled") == 3
        assert Ledger(project / ".connect-dev" / "ledger.json").entries() == []
        names = [e.name for e in up.events.events if e.name != "request"]
        assert names[-2:] == ["tunnel_closed", "stopped"]
        assert names.count("deregistered") == 3


async def test_one_host_with_a_wrong_password_does_not_stop_the_others(project: Path) -> None:
    async with (
        recording_addon() as addon,
        run_host() as good,
        run_host() as bad,
    ):
        config = write_config(
            project,
            addon.url,
            [
                host_toml("good", good.base_url),
                host_toml("bad", bad.base_url, password="wrong-password-123"),
            ],
        )
        async with running_up(config) as up:
            failed = up.events.of("registration_failed")
            assert [e.host for e in failed] == ["bad"]  # type: ignore[attr-defined]
            error, hint = failed[0].error, failed[0].hint  # type: ignore[attr-defined]
            assert error.startswith(f"{bad.base_url} rejected the login of 'admin'")
            assert "HTTP 401" in error
            assert hint.startswith("Local SDK hosts (atlas-run) use admin/admin")
            assert [e.host for e in up.events.of("registered")] == ["good"]  # type: ignore[attr-defined]
            assert len(good.record.installs) == 1
            assert bad.record.installs == []
            assert up.events.of("ready")
        text = "\n".join(str(e.to_dict()) for e in up.events.events)
        assert "wrong-password-123" not in text


async def test_save_reinstalls_with_the_new_content(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            save(project / "atlassian-connect.json", descriptor_text(name="Renamed add-on"))
            await jira.wait_for(lambda record: len(record.installs) >= 2, timeout=10)
            assert jira.record.installs[-1].descriptor["name"] == "Renamed add-on"
            registering = up.events.of("registering")
            assert [e.reason for e in registering] == ["startup", "descriptor_changed"]  # type: ignore[attr-defined]


async def test_burst_of_twenty_saves_installs_the_last_one_with_few_posts(project: Path) -> None:
    async with (
        recording_addon() as addon,
        run_host() as jira,
        run_host(context_path="/wiki", product="confluence") as wiki,
    ):
        config = write_config(
            project,
            addon.url,
            [
                host_toml("jira", jira.base_url),
                host_toml("wiki", wiki.base_url, product="confluence"),
            ],
        )
        async with running_up(config) as up:
            posts_before = {h: len(h.record.install_posts) for h in (jira, wiki)}
            path = project / "atlassian-connect.json"
            for n in range(1, 21):
                save(path, descriptor_text(name=f"save {n}"))
                await asyncio.sleep(0.05)
            for host in (jira, wiki):
                await host.wait_for(
                    lambda r: bool(r.installs) and r.installs[-1].descriptor["name"] == "save 20",
                    timeout=10,
                )
            await asyncio.sleep(0.5)  # nothing more may follow
            for host in (jira, wiki):
                posts = len(host.record.install_posts) - posts_before[host]
                assert 1 <= posts <= 3, f"{posts} install POSTs for a burst of 20 saves"
                assert host.record.installs[-1].descriptor["name"] == "save 20"
            assert up.supervisor.state.hosts["jira"].state == "installed"


async def test_safe_write_save_is_installed(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config):
            temp = project / ".atlassian-connect.json~tmp"
            temp.write_text(descriptor_text(name="safe write"), encoding="utf-8")
            os.replace(temp, project / "atlassian-connect.json")
            await jira.wait_for(lambda r: len(r.installs) >= 2, timeout=10)
            assert jira.record.installs[-1].descriptor["name"] == "safe write"


async def test_invalid_save_keeps_the_last_good_revision_and_a_valid_save_recovers(
    project: Path,
) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            path = project / "atlassian-connect.json"
            save(path, '{\n  "key": "test-addon",\n  "name": "broken",\n}\n')
            invalid = await up.events.wait_event("descriptor_invalid")
            assert (invalid.errors[0]["line"], invalid.errors[0]["column"]) == (3, 19)  # type: ignore[attr-defined]
            assert (
                invalid.errors[0]["message"]  # type: ignore[attr-defined]
                == "invalid JSON: Illegal trailing comma before end of object"
            )
            save(path, descriptor_text(key="bad key!"))
            second = await up.events.wait_event("descriptor_invalid", count=2)
            assert second.errors[0]["path"] == "$.key"  # type: ignore[attr-defined]
            await asyncio.sleep(0.4)
            assert len(jira.record.install_posts) == 1, "an invalid descriptor was installed"
            proxy = up.supervisor.proxy
            assert proxy is not None
            assert proxy.descriptor is not None
            assert b'"name": "Test add-on"' in proxy.descriptor
            save(path, descriptor_text(name="fixed"))
            await jira.wait_for(lambda r: len(r.installs) >= 2, timeout=10)
            assert jira.record.installs[-1].descriptor["name"] == "fixed"


async def test_dev_mode_off_gives_the_documented_hint(project: Path) -> None:
    async with recording_addon() as addon, run_host(dev_mode=False) as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            failed = up.events.of("registration_failed")
            assert len(failed) == 1
            assert "development mode" in failed[0].error.lower()  # type: ignore[attr-defined]
            assert "Enable development mode" in (failed[0].hint or "")  # type: ignore[attr-defined]
            assert jira.record.installs == []


async def test_rejected_install_callback_names_the_status_and_the_handler(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        addon.installed_status = 500
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up:
            failed = up.events.of("registration_failed")
            assert len(failed) == 1
            assert "500" in failed[0].error  # type: ignore[attr-defined]
            assert "lifecycle.installed" in (failed[0].hint or "")  # type: ignore[attr-defined]
            assert jira.record.installs == []
            assert [path for path, _ in addon.callbacks] == ["/installed"]


async def test_an_add_on_disabled_on_the_host_is_reported_as_disabled(project: Path) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = write_config(project, addon.url, [host_toml("jira", jira.base_url)])
        async with running_up(config) as up, aiohttp.ClientSession() as session:
            auth = {"Authorization": "Basic " + base64.b64encode(b"admin:admin").decode()}
            async with session.put(
                f"{jira.base_url}/rest/plugins/1.0/test-addon-key",
                json={"enabled": False},
                headers={**auth, "Content-Type": "application/vnd.atl.plugins.plugin+json"},
            ) as response:
                assert response.status == 200, await response.text()
            save(project / "atlassian-connect.json", descriptor_text(name="while disabled"))
            second = await up.events.wait_event("registered", count=2)
            assert second.enabled is False  # type: ignore[attr-defined]
            assert format_event(second).endswith(
                "but it is DISABLED on the host (enable it in Manage apps)"
            )
            assert up.supervisor.state.hosts["jira"].enabled is False

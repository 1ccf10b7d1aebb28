"""provider = "ngrok": pyngrok driven for real against the stand-in agent (fake_ngrok_agent.py).

No test may download anything: pyngrok's installer is replaced by one that fails the test, and
every tunnel is pointed at the stand-in.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from connect_devloop.config import NgrokConfig
from connect_devloop.errors import TunnelError
from connect_devloop.events import Event
from connect_devloop.host import run_host
from connect_devloop.tunnel import NgrokTunnel
from connect_devloop.tunnel.leftover import ProcessFile

from .conftest import descriptor_text
from .e2e import host_toml, recording_addon, running_up, save
from .servers import serve, text_app
from .tunnels import AgentRecord, alive, free_port, tunnel_config, wait_dead, write_agent

TOKEN = "2abcDEFghiJKLmno_1234567890secret"


@pytest.fixture(autouse=True)
def no_download(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Fails the test if pyngrok tries to download the agent."""
    from pyngrok import installer

    calls: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        raise AssertionError(f"pyngrok tried to download ngrok: {args} {kwargs}")

    monkeypatch.setattr(installer, "install_ngrok", refuse)
    monkeypatch.setattr(installer, "_download_file", refuse)
    return calls


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AgentRecord:
    path = tmp_path / "agent-record.jsonl"
    monkeypatch.setenv("FAKE_NGROK_RECORD", str(path))
    monkeypatch.delenv("FAKE_NGROK_MODE", raising=False)
    return AgentRecord(path)


@pytest.fixture
def agent(tmp_path: Path, record: AgentRecord) -> Path:
    return write_agent(tmp_path / "agent-bin")


@pytest.fixture
async def addon() -> AsyncIterator[str]:
    async with serve(text_app()) as url:
        yield url


def tunnel(agent: Path | None, **options: Any) -> NgrokTunnel:
    environ = options.pop("environ", {"NGROK_AUTHTOKEN": TOKEN, "PATH": ""})
    settings = NgrokConfig(path=agent, **options.pop("settings", {}))
    return NgrokTunnel(settings, environ=environ, **options)


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


# --- the tunnel alone ---------------------------------------------------------------------------


async def test_open_gives_a_public_url_that_reaches_the_addon(
    agent: Path, record: AgentRecord, addon: str
) -> None:
    ngrok = tunnel(agent)
    url = await ngrok.open(addon)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert await get(f"{url}/hello?x=1") == (200, "add-on saw /hello?x=1")
        [start] = record.starts()
        assert start["pid"] == ngrok.pid
        argv = start["argv"]
        assert argv[:4] == ["start", "--none", "--log", "stdout"]
        config = Path(argv[argv.index("--config") + 1])
        # The token is in a private config (0600 in a 0700 directory), not on the command line.
        assert TOKEN not in " ".join(argv)
        assert start["authtoken_from"] == "config"
        assert start["config_authtoken"] == TOKEN
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        assert stat.S_IMODE(config.parent.stat().st_mode) == 0o700
        assert config.parent.name.startswith("connect-dev-ngrok-")
        [endpoint] = record.endpoints()
        assert endpoint["upstream"]["url"] == addon
        assert endpoint["public_url"] == url
        assert ngrok.exited() is None
    finally:
        pid = ngrok.pid
        await ngrok.close()
    assert pid is not None
    assert wait_dead(pid), "the agent must be stopped and reaped"
    assert not config.exists()
    assert not config.parent.exists()
    assert ngrok.pid is None
    await ngrok.close()  # twice is fine


async def test_the_agents_web_inspector_is_reported_on_loopback(
    agent: Path, record: AgentRecord, addon: str
) -> None:
    seen: list[Event] = []
    ngrok = tunnel(agent, emit=seen.append)
    assert ngrok.inspector_url == ""
    await ngrok.open(addon)
    try:
        pid = ngrok.pid
        assert pid is not None
        # The address the agent announced ("starting web service addr=…"), which serves the UI.
        assert ngrok.inspector_url == f"http://{record.api(pid)}"
        assert ngrok.inspector_url.startswith("http://127.0.0.1:")
        status, page = await get(ngrok.inspector_url)
        assert (status, "ngrok - Inspect" in page) == (200, True)
        # The private config leaves web_addr at ngrok's default (loopback).
        argv = record.starts()[0]["argv"]
        assert "web_addr" not in Path(argv[argv.index("--config") + 1]).read_text()
        assert seen == [], "nothing to warn about on loopback"
    finally:
        await ngrok.close()
    assert ngrok.inspector_url == ""


async def test_a_web_addr_from_the_users_config_is_the_inspector_url(
    agent: Path, record: AgentRecord, addon: str, tmp_path: Path
) -> None:
    web_addr = f"127.0.0.1:{free_port()}"
    user_config = tmp_path / "my-ngrok.yml"
    user_config.write_text(f'version: "3"\nagent:\n  authtoken: {TOKEN}\n  web_addr: {web_addr}\n')
    seen: list[Event] = []
    ngrok = tunnel(
        agent, environ={"PATH": ""}, settings={"config_path": user_config}, emit=seen.append
    )
    await ngrok.open(addon)
    try:
        assert ngrok.inspector_url == f"http://{web_addr}"
        assert seen == []
    finally:
        await ngrok.close()


def test_an_inspector_beyond_loopback_is_warned_about_once(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from connect_devloop.tunnel.ngrok import _on_loopback

    for host in ("127.0.0.1", "127.0.0.2", "[::1]", "localhost"):
        assert _on_loopback(f"http://{host}:4040"), host
    for host in ("0.0.0.0", "192.168.1.5", "example.com", ""):
        assert not _on_loopback(f"http://{host}:4040"), host
    seen: list[Event] = []
    ngrok = tunnel(None, settings={"config_path": tmp_path / "ngrok.yml"}, emit=seen.append)
    # What a user's web_addr: 0.0.0.0:4040 makes pyngrok learn (not bound here: tests stay on
    # loopback).
    ngrok._agent = SimpleNamespace(api_url="http://0.0.0.0:4040")
    ngrok._warn_if_exposed()
    ngrok._warn_if_exposed()  # on the next reopen: said once is enough
    ngrok._agent = None
    assert [(e.message, e.hint) for e in seen] == [  # type: ignore[attr-defined]
        (
            "the ngrok agent's web inspector listens beyond loopback, at http://0.0.0.0:4040: "
            "anyone who reaches it sees every request through the tunnel and can replay it",
            f"Set web_addr: 127.0.0.1:4040 in {tmp_path / 'ngrok.yml'}.",
        )
    ]


async def test_region_and_reserved_domain_reach_the_agent(
    agent: Path, record: AgentRecord, addon: str
) -> None:
    port = free_port()
    # The stand-in binds a requested 127.0.0.1:PORT "domain": a URL that survives restarts.
    ngrok = tunnel(agent, settings={"region": "eu", "domain": f"127.0.0.1:{port}"})
    url = await ngrok.open(addon)
    await ngrok.close()
    assert url == f"http://127.0.0.1:{port}"
    argv = record.starts()[0]["argv"]
    assert argv[argv.index("--region") + 1] == "eu"
    assert record.endpoints()[0]["public_url"] == url
    url_again = await ngrok.open(addon)
    await ngrok.close()
    assert url_again == url


async def test_an_agent_start_error_becomes_one_message_without_the_token(
    agent: Path,
    record: AgentRecord,
    addon: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("FAKE_NGROK_MODE", "error")  # the agent prints ERR_NGROK_105, token and all
    ngrok = tunnel(agent)
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert caught.value.message == (
        "the ngrok agent failed to start: authentication failed: The authtoken you specified "
        "does not look like a proper ngrok tunnel authtoken. (ERR_NGROK_105)"
    )
    assert caught.value.hint == (
        "Check the authtoken in NGROK_AUTHTOKEN (or your ngrok config): copy it again from "
        "https://dashboard.ngrok.com/get-started/your-authtoken."
    )
    assert TOKEN not in caplog.text
    assert "Your authtoken: ***" in caplog.text  # the agent's line, logged redacted
    [start] = record.starts()
    assert wait_dead(start["pid"])
    assert ngrok.pid is None


async def test_without_an_authtoken_it_says_where_to_put_one(
    agent: Path, record: AgentRecord, addon: str, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    ngrok = tunnel(agent, environ={"PATH": "", "HOME": str(home)})
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert caught.value.message == "ngrok needs an authtoken and none was found"
    assert caught.value.hint == (
        "Copy yours from https://dashboard.ngrok.com/get-started/your-authtoken and export "
        "NGROK_AUTHTOKEN=…, or set [tunnel.ngrok] config_path to your ngrok.yml."
    )
    assert record.starts() == [], "the agent is not started without a token"
    # With an ngrok config in its usual place, the hint points at it.
    user_config = home / ".config" / "ngrok" / "ngrok.yml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text(f'version: "3"\nagent:\n  authtoken: {TOKEN}\n')
    ngrok = tunnel(agent, environ={"PATH": "", "HOME": str(home)}, authtoken_lookup=lambda: None)
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert caught.value.hint == (
        "Copy yours from https://dashboard.ngrok.com/get-started/your-authtoken and export "
        "NGROK_AUTHTOKEN=…, or keep it in the keychain (`connect-dev login --ngrok`), or set "
        "[tunnel.ngrok] config_path = "
        f'"{user_config}" to use the ngrok config that has it.'
    )


async def test_the_authtoken_lookup_seam_is_asked_when_the_variable_is_unset(
    agent: Path, record: AgentRecord, addon: str
) -> None:
    asked: list[bool] = []

    def keychain() -> str:
        asked.append(True)
        return "from-the-keychain-123"

    ngrok = tunnel(agent, environ={"PATH": ""}, authtoken_lookup=keychain)
    await ngrok.open(addon)
    await ngrok.close()
    assert asked == [True]
    assert record.starts()[0]["config_authtoken"] == "from-the-keychain-123"
    # The environment variable wins; the lookup is then not asked.
    ngrok = tunnel(agent, environ={"PATH": "", "MY_TOKEN": TOKEN}, authtoken_lookup=keychain)
    ngrok._settings = NgrokConfig(path=agent, authtoken_env="MY_TOKEN")
    await ngrok.open(addon)
    await ngrok.close()
    assert asked == [True]
    assert record.starts()[1]["config_authtoken"] == TOKEN


async def test_the_users_own_ngrok_config_is_used_only_when_set(
    agent: Path, record: AgentRecord, addon: str, tmp_path: Path
) -> None:
    user_config = tmp_path / "my-ngrok.yml"
    user_config.write_text(f'version: "3"\nagent:\n  authtoken: {TOKEN}\n')
    before = user_config.read_text()
    ngrok = tunnel(agent, environ={"PATH": ""}, settings={"config_path": user_config})
    await ngrok.open(addon)
    await ngrok.close()
    argv = record.starts()[0]["argv"]
    assert argv[argv.index("--config") + 1] == str(user_config)
    assert record.starts()[0]["authtoken_from"] == "config"
    assert user_config.read_text() == before, "connect-dev never writes the user's config"
    missing = tunnel(agent, environ={"PATH": ""}, settings={"config_path": tmp_path / "nope.yml"})
    with pytest.raises(TunnelError) as caught:
        await missing.open(addon)
    assert caught.value.message == f"the ngrok config {tmp_path / 'nope.yml'} does not exist"


async def test_a_missing_agent_is_reported_and_nothing_is_downloaded(
    tmp_path: Path,
    addon: str,
    monkeypatch: pytest.MonkeyPatch,
    no_download: list[tuple[Any, ...]],
) -> None:
    from pyngrok import conf

    monkeypatch.setattr(conf, "DEFAULT_NGROK_PATH", str(tmp_path / "nothing" / "ngrok"))
    # pyngrok's own `ngrok` command is a Python script that downloads the agent: not an agent.
    scripts = tmp_path / "venv-bin"
    scripts.mkdir()
    (scripts / "ngrok").write_text(
        "#!/usr/bin/python3\nimport re\nimport sys\nfrom pyngrok.ngrok import main\n"
    )
    (scripts / "ngrok").chmod(0o755)
    ngrok = tunnel(None, environ={"NGROK_AUTHTOKEN": TOKEN, "PATH": str(scripts)})
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert caught.value.message == (
        "the ngrok agent is not installed (pyngrok would download it from ngrok.com; "
        "connect-dev does not download programs unless asked)"
    )
    assert caught.value.hint == (
        "Install ngrok (https://ngrok.com/download) so that `ngrok` is on PATH, or set "
        "[tunnel.ngrok] path to the agent binary, or set [tunnel.ngrok] download = true to let "
        "pyngrok fetch it."
    )
    assert no_download == []
    ngrok = tunnel(tmp_path / "missing" / "ngrok")
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert caught.value.message == (
        f"the ngrok agent is not at {tmp_path / 'missing' / 'ngrok'} ([tunnel.ngrok] path)"
    )
    assert no_download == []


async def test_an_agent_on_path_is_found(
    agent: Path, record: AgentRecord, addon: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyngrok import conf

    monkeypatch.setattr(conf, "DEFAULT_NGROK_PATH", str(tmp_path / "nothing" / "ngrok"))
    ngrok = tunnel(None, environ={"NGROK_AUTHTOKEN": TOKEN, "PATH": f"/nonexistent:{agent.parent}"})
    url = await ngrok.open(addon)
    await ngrok.close()
    assert url.startswith("http://127.0.0.1:")
    assert len(record.starts()) == 1


async def test_download_when_asked_warns_first_and_a_failure_is_one_clear_message(
    tmp_path: Path, addon: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyngrok import conf, installer
    from pyngrok.exception import PyngrokNgrokInstallError

    target = tmp_path / "ngrok-home" / "ngrok"
    monkeypatch.setattr(conf, "DEFAULT_NGROK_PATH", str(target))
    attempts: list[str] = []

    def offline_install(path: str, ngrok_version: str = "3", **kwargs: Any) -> None:
        # What pyngrok raises on these machines (no route to ngrok's CDN); nothing is fetched.
        attempts.append(path)
        raise PyngrokNgrokInstallError(
            "An error occurred while downloading ngrok from https://bin.ngrok.com/c/bNyj1mQVY4c/"
            "ngrok-v3-stable-linux-amd64.tgz: <urlopen error [Errno -3] Temporary failure in "
            "name resolution>"
        )

    monkeypatch.setattr(installer, "install_ngrok", offline_install)
    seen: list[Event] = []
    ngrok = tunnel(None, settings={"download": True}, emit=seen.append)
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert [(e.name, e.message) for e in seen] == [  # type: ignore[attr-defined]
        (
            "warning",
            f"the ngrok agent is not installed: downloading it from ngrok.com to {target} "
            "([tunnel.ngrok] download = true)",
        )
    ]
    assert attempts == [str(target)]
    assert caught.value.message == (
        "downloading the ngrok agent failed: An error occurred while downloading ngrok from "
        "https://bin.ngrok.com/c/bNyj1mQVY4c/ngrok-v3-stable-linux-amd64.tgz: <urlopen error "
        "[Errno -3] Temporary failure in name resolution>"
    )
    assert caught.value.hint == (
        "Install ngrok yourself (https://ngrok.com/download) so that `ngrok` is on PATH, or set "
        "[tunnel.ngrok] path to the agent binary."
    )


async def test_a_silent_agent_times_out_and_is_stopped(
    agent: Path, record: AgentRecord, addon: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NGROK_MODE", "silent")
    ngrok = tunnel(agent, startup_timeout=1.5)
    with pytest.raises(TunnelError) as caught:
        await ngrok.open(addon)
    assert caught.value.message == f"the ngrok agent ({agent}) did not start within 1.5 s"
    [start] = record.starts()
    assert wait_dead(start["pid"])


async def test_an_agent_that_exits_silently_is_reported(
    agent: Path, record: AgentRecord, addon: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_NGROK_MODE", "exit")
    with pytest.raises(TunnelError) as caught:
        await tunnel(agent).open(addon)
    assert caught.value.message == f"the ngrok agent ({agent}) stopped before it was ready"


async def test_a_killed_agent_is_reported_and_the_tunnel_reopens(
    agent: Path, record: AgentRecord, addon: str
) -> None:
    ngrok = tunnel(agent)
    first = await ngrok.open(addon)
    pid = ngrok.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for _ in range(100):
        if ngrok.exited() is not None:
            break
        await asyncio.sleep(0.02)
    assert ngrok.exited() == f"the ngrok agent (pid {pid}) was killed (signal 9)"
    await ngrok.close()
    second = await ngrok.open(addon)
    assert second != first
    assert await get(f"{second}/again") == (200, "add-on saw /again")
    await ngrok.close()


async def start_agent(agent: Path, config: Path, *extra: str) -> asyncio.subprocess.Process:
    """An agent started by someone else (the user, or an earlier run), as its own session."""
    config.write_text(f'version: "3"\nagent:\n  authtoken: {TOKEN}\n')
    return await asyncio.create_subprocess_exec(
        *(str(agent), "start", "--none", "--log", "stdout", "--config", str(config), *extra),
        stdout=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
    await asyncio.wait_for(process.wait(), 5)


async def test_close_stops_only_the_agent_it_started(
    agent: Path, record: AgentRecord, addon: str, tmp_path: Path
) -> None:
    # Another ngrok the user runs (say `ngrok http 3000` in another terminal).
    theirs = await start_agent(agent, tmp_path / "theirs.yml")
    try:
        ngrok = tunnel(agent)
        await ngrok.open(addon)
        ours = ngrok.pid
        assert ours is not None
        await ngrok.close()
        assert wait_dead(ours)
        assert theirs.returncode is None, "the user's own agent must keep running"
        assert alive(theirs.pid)
    finally:
        await stop(theirs)


async def test_an_agent_left_by_a_crashed_run_is_stopped_first(
    agent: Path, record: AgentRecord, addon: str, tmp_path: Path
) -> None:
    left = await start_agent(agent, tmp_path / "left.yml")
    unrelated = await start_agent(agent, tmp_path / "unrelated.yml", "--region", "eu")
    try:
        await asyncio.sleep(0.3)  # it runs, as after `kill -9 connect-dev`
        leftovers = ProcessFile(tmp_path / ".connect-dev" / "tunnel.json")
        leftovers.record(left.pid)
        left_record = leftovers.path.read_text()
        assert alive(left.pid)
        ngrok = tunnel(agent, leftovers=leftovers)
        await ngrok.open(addon)
        # It ran until told to stop (SIGTERM, which the stand-in handles), then exited.
        assert await asyncio.wait_for(left.wait(), 5) == 0
        data = leftovers.path.read_text()
        assert str(ngrok.pid) in data
        assert TOKEN not in data
        await ngrok.close()
        assert not leftovers.path.exists()
        # The pid of the record now runs another command line (pid reuse): left alone.
        leftovers.path.write_text(left_record.replace(str(left.pid), str(unrelated.pid)))
        assert leftovers.stop_leftover() is None
        assert not leftovers.path.exists()
        assert alive(unrelated.pid)
    finally:
        await stop(left)
        await stop(unrelated)


# --- the whole loop -----------------------------------------------------------------------------


def ngrok_project(project: Path, agent: Path, addon_url: str, host_url: str, **kw: Any) -> Path:
    domain = kw.pop("domain", None)
    table = f'[tunnel.ngrok]\npath = "{agent}"\n' + (f'domain = "{domain}"\n' if domain else "")
    return tunnel_config(
        project, addon_url, [host_toml("jira", host_url)], provider="ngrok", tunnel=table, **kw
    )


async def wait_for_agent_exit(record: AgentRecord, count: int) -> None:
    for _ in range(500):
        if len(record.starts()) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{count} agent starts expected, saw {len(record.starts())}")


async def test_the_host_installs_through_the_tunnel_and_a_new_url_reinstalls(
    project: Path, agent: Path, record: AgentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    async with recording_addon() as addon, run_host() as jira:
        config = ngrok_project(project, agent, addon.url, jira.base_url)
        async with running_up(config) as up:
            first_url = up.supervisor.public_url
            [opened] = up.events.of("tunnel_opened")
            assert (opened.url, opened.provider) == (first_url, "ngrok")  # type: ignore[attr-defined]
            first_api = record.api(record.starts()[0]["pid"])
            assert opened.inspector_url == f"http://{first_api}"  # type: ignore[attr-defined]
            assert up.supervisor.state.tunnel_inspector_url == f"http://{first_api}"
            assert first_url == record.endpoints()[0]["public_url"]
            [install] = jira.record.installs
            assert install.plugin_uri == f"{first_url}/atlassian-connect.json"
            assert install.descriptor["baseUrl"] == first_url
            assert [path for path, _ in addon.callbacks] == ["/installed"]  # through the tunnel

            os.kill(record.starts()[0]["pid"], signal.SIGKILL)  # the agent dies mid-run
            await jira.wait_for(lambda r: len(r.installs) >= 2, timeout=15)
            second_url = up.supervisor.public_url
            assert second_url != first_url
            assert jira.record.installs[1].descriptor["baseUrl"] == second_url
            assert jira.record.installs[1].plugin_uri == f"{second_url}/atlassian-connect.json"
            # The new agent's inspector (another port) replaces the dead one's.
            reopened = up.events.of("tunnel_opened")[1]
            second_api = record.api(record.starts()[1]["pid"])
            assert reopened.inspector_url == f"http://{second_api}" != f"http://{first_api}"  # type: ignore[attr-defined]
            closed = up.events.of("tunnel_closed")
            assert [(e.provider, e.reason) for e in closed] == [("ngrok", "exited")]  # type: ignore[attr-defined]
            registering = up.events.of("registering")
            assert [e.reason for e in registering] == ["startup", "tunnel_changed"]  # type: ignore[attr-defined]
            agent_pid = record.starts()[1]["pid"]
            assert alive(agent_pid)
        assert [path for path, _ in addon.callbacks] == ["/installed", "/installed", "/uninstalled"]
        assert jira.record.plugins == {}
        assert wait_dead(agent_pid), "teardown stops the agent it started"
        names = [e.name for e in up.events.events if e.name in ("tunnel_closed", "deregistered")]
        assert names == ["tunnel_closed", "deregistered", "tunnel_closed"]
        assert not (project / ".connect-dev" / "tunnel.json").exists()
        # Probes are not the add-on's traffic: none of them is in the request log.
        assert all("connect-dev-probe" not in e.path for e in up.events.of("request"))  # type: ignore[attr-defined]


async def test_a_stable_url_after_a_drop_reinstalls_nothing(
    project: Path, agent: Path, record: AgentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    port = free_port()
    async with recording_addon() as addon, run_host() as jira:
        config = ngrok_project(project, agent, addon.url, jira.base_url, domain=f"127.0.0.1:{port}")
        async with running_up(config) as up:
            assert up.supervisor.public_url == f"http://127.0.0.1:{port}"
            os.kill(record.starts()[0]["pid"], signal.SIGKILL)
            await up.events.wait_event("tunnel_opened", count=2, timeout=15)
            await asyncio.sleep(0.5)
            assert up.supervisor.public_url == f"http://127.0.0.1:{port}"
            assert len(jira.record.install_posts) == 1
            assert [e.reason for e in up.events.of("registering")] == ["startup"]  # type: ignore[attr-defined]


async def test_an_install_is_refused_while_the_tunnel_does_not_reach_the_proxy(
    project: Path, agent: Path, record: AgentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    async with recording_addon() as addon, run_host() as jira:
        # Probes are rare here, so the pre-install check is what finds the broken tunnel.
        config = ngrok_project(project, agent, addon.url, jira.base_url, health_interval=60)
        async with running_up(config) as up:
            first_url = up.supervisor.public_url
            posts = len(jira.record.install_posts)
            # The agent still runs, but its endpoint is gone: the public URL answers nothing.
            start = record.starts()[0]
            endpoint = record.endpoints()[0]
            async with aiohttp.ClientSession() as session:
                api = f"http://{record.api(start['pid'])}{endpoint['uri']}"
                async with session.delete(api) as response:
                    assert response.status == 204
            save(project / "atlassian-connect.json", descriptor_text(name="while broken"))
            failed = await up.events.wait_event("registration_failed", timeout=10)
            assert failed.host == "jira"  # type: ignore[attr-defined]
            assert failed.error == (  # type: ignore[attr-defined]
                "the tunnel (ngrok) does not reach the proxy: "
                f"GET {first_url}/atlassian-connect.json: connection refused"
            )
            assert len(jira.record.install_posts) == posts, "the host must not be called"
            # The keeper probes at once, reopens, and the new URL is installed.
            await jira.wait_for(
                lambda r: bool(r.installs) and r.installs[-1].descriptor["name"] == "while broken",
                timeout=15,
            )
            assert jira.record.installs[-1].descriptor["baseUrl"] == up.supervisor.public_url
            assert up.supervisor.public_url != first_url
            reasons = [e.reason for e in up.events.of("registering")]  # type: ignore[attr-defined]
            assert reasons == ["startup", "descriptor_changed", "tunnel_changed"]
            [closed] = up.events.of("tunnel_closed")
            assert closed.reason == "unreachable"  # type: ignore[attr-defined]


async def test_an_agent_that_cannot_start_stops_up_with_the_message(
    project: Path, agent: Path, record: AgentRecord, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    monkeypatch.setenv("FAKE_NGROK_MODE", "error")
    async with recording_addon() as addon, run_host() as jira:
        config = ngrok_project(project, agent, addon.url, jira.base_url)
        with pytest.raises(TunnelError) as caught:
            async with running_up(config, wait_ready=False) as up:
                await up.task
        assert "ERR_NGROK_105" in caught.value.message
        assert jira.record.install_posts == []

"""provider = "ssh": a real ``ssh -R`` to a real sshd on 127.0.0.1 (tests/tunnels.py).

Skipped, with the reason, only where sshd is not installed (.ci/run installs it).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from connect_devloop.config import SshConfig, load_config
from connect_devloop.errors import ConfigError, TunnelError
from connect_devloop.host import run_host
from connect_devloop.tunnel import SshTunnel, create_tunnel

from .e2e import host_toml, recording_addon, running_up
from .servers import serve, text_app
from .tunnels import Sshd, alive, free_port, make_key, running_sshd, tunnel_config, wait_dead


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture
async def addon() -> AsyncIterator[str]:
    async with serve(text_app()) as url:
        yield url


def settings(sshd: Sshd, **changes: object) -> SshConfig:
    values: dict[str, object] = {
        "target": "root@127.0.0.1",
        "port": sshd.port,
        "identity_file": sshd.client_key,
        "options": tuple(sshd.options),
        **changes,
    }
    return SshConfig(**values)  # type: ignore[arg-type]


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


# --- the command line (no server needed) -------------------------------------------------------


def test_command_for_a_port_the_server_allocates() -> None:
    tunnel = SshTunnel(
        SshConfig(
            target="me@vps.example.com",
            port=2222,
            identity_file=Path("/home/me/.ssh/id_ed25519"),
            options=("StrictHostKeyChecking=accept-new",),
        )
    )
    assert tunnel.command("http://127.0.0.1:8000") == [
        "ssh",
        "-T",
        "-N",
        "-o",
        "BatchMode=yes",
        "-o",
        "ExitOnForwardFailure=yes",
        "-o",
        "ServerAliveInterval=15",
        "-o",
        "ServerAliveCountMax=3",
        "-o",
        "ConnectTimeout=15",
        "-o",
        "LogLevel=INFO",
        "-p",
        "2222",
        "-i",
        "/home/me/.ssh/id_ed25519",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-R",
        "0:127.0.0.1:8000",
        "me@vps.example.com",
    ]


def test_command_for_a_fixed_port_a_bind_address_and_a_service_that_prints_the_url() -> None:
    fixed = SshTunnel(SshConfig(target="vps", remote_port=8080, remote_bind="0.0.0.0"))
    argv = fixed.command("http://127.0.0.1:8000")
    assert "-v" in argv  # ssh reports a fixed port's forward only at debug level
    assert "-N" in argv
    assert argv[-3:] == ["-R", "0.0.0.0:8080:127.0.0.1:8000", "vps"]
    service = SshTunnel(
        SshConfig(target="nokey@localhost.run", remote_port=80, url_pattern=r"https://\S+")
    )
    argv = service.command("http://127.0.0.1:8000")
    assert "-N" not in argv  # the service prints the URL in a session
    assert argv[-3:] == ["-R", "80:127.0.0.1:8000", "nokey@localhost.run"]


async def test_a_missing_ssh_is_reported(tmp_path: Path) -> None:
    tunnel = SshTunnel(SshConfig(target="me@vps", path=str(tmp_path / "no-ssh")))
    with pytest.raises(TunnelError) as caught:
        await tunnel.open("http://127.0.0.1:8000")
    assert caught.value.message == f"ssh was not found ({str(tmp_path / 'no-ssh')!r})"
    assert caught.value.hint == (
        "Install the OpenSSH client (e.g. apt-get install openssh-client) or set "
        "[tunnel.ssh] path to it."
    )


async def test_a_missing_identity_file_is_reported(tmp_path: Path) -> None:
    tunnel = SshTunnel(SshConfig(target="me@vps", identity_file=tmp_path / "id_missing"))
    with pytest.raises(TunnelError) as caught:
        await tunnel.open("http://127.0.0.1:8000")
    assert caught.value.message == f"the ssh identity file {tmp_path / 'id_missing'} does not exist"


def test_provider_ssh_without_a_target_is_a_config_error(project: Path) -> None:
    path = project / "connect-dev.toml"
    path.write_text('[tunnel]\nprovider = "ssh"\n')
    with pytest.raises(ConfigError) as caught:
        create_tunnel(load_config(path))
    assert str(caught.value) == (
        f"{path}:2: tunnel.provider: provider ssh needs [tunnel.ssh] target: the server to "
        "tunnel through"
    )


# --- against sshd -------------------------------------------------------------------------------


async def test_a_request_through_the_tunnel_reaches_the_addon(sshd: Sshd, addon: str) -> None:
    tunnel = SshTunnel(settings(sshd))
    url = await tunnel.open(addon)
    try:
        assert url.startswith("http://127.0.0.1:")
        assert url != addon
        assert await get(f"{url}/through?ssh=1") == (200, "add-on saw /through?ssh=1")
        assert tunnel.exited() is None
    finally:
        pid = tunnel.pid
        await tunnel.close()
    assert pid is not None
    assert wait_dead(pid)
    await tunnel.close()


async def test_a_fixed_remote_port_and_a_url_template(sshd: Sshd, addon: str) -> None:
    port = free_port()
    first = SshTunnel(settings(sshd, remote_port=port), "http://127.0.0.1:{port}/")
    url = await first.open(addon)
    try:
        assert url == f"http://127.0.0.1:{port}"
        assert await get(f"{url}/fixed") == (200, "add-on saw /fixed")
        # A second tunnel asking for the same port: the server refuses (exit 255).
        second = SshTunnel(settings(sshd, remote_port=port))
        with pytest.raises(TunnelError) as caught:
            await second.open(addon)
        assert caught.value.message == (
            f"the ssh server 127.0.0.1 refused to forward port {port}: the port is taken there, "
            "or forwarding is not allowed"
        )
        assert caught.value.hint is not None
        assert caught.value.hint.startswith("Set [tunnel.ssh] remote_port = 0")
        assert second.pid is None
    finally:
        await first.close()


async def test_a_refused_login_is_explained(sshd: Sshd, addon: str, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger_key"
    make_key(stranger)
    tunnel = SshTunnel(settings(sshd, identity_file=stranger))
    with pytest.raises(TunnelError) as caught:
        await tunnel.open(addon)
    assert caught.value.message == (
        "the ssh server 127.0.0.1 refused the login of root@127.0.0.1 (Permission denied, "
        "tried: publickey)"
    )
    assert caught.value.hint is not None
    assert caught.value.hint.startswith(
        "connect-dev runs ssh with BatchMode=yes, so it never asks for a password"
    )


async def test_nothing_listening_is_explained(sshd: Sshd, addon: str) -> None:
    port = free_port()
    tunnel = SshTunnel(settings(sshd, port=port))
    with pytest.raises(TunnelError) as caught:
        await tunnel.open(addon)
    assert caught.value.message == (
        f"cannot connect to the ssh server 127.0.0.1 port {port}: Connection refused"
    )


async def test_an_unknown_host_key_is_explained(sshd: Sshd, addon: str, tmp_path: Path) -> None:
    tunnel = SshTunnel(settings(sshd, options=(f"UserKnownHostsFile={tmp_path / 'empty'}",)))
    with pytest.raises(TunnelError) as caught:
        await tunnel.open(addon)
    assert caught.value.message == (
        "the ssh host key of 127.0.0.1 is not known, and BatchMode cannot ask to accept it"
    )
    assert caught.value.hint == (
        f"Connect once by hand (`ssh -p {sshd.port} root@127.0.0.1`) to accept it, or add "
        'options = ["StrictHostKeyChecking=accept-new"] to [tunnel.ssh].'
    )


async def test_a_changed_host_key_is_explained(sshd: Sshd, addon: str, tmp_path: Path) -> None:
    other = tmp_path / "other_host_key"
    make_key(other)
    known = tmp_path / "known_hosts"
    public = other.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{sshd.port} {public[0]} {public[1]}\n")
    tunnel = SshTunnel(settings(sshd, options=(f"UserKnownHostsFile={known}",)))
    with pytest.raises(TunnelError) as caught:
        await tunnel.open(addon)
    assert caught.value.message == (
        "the ssh host key of 127.0.0.1 has CHANGED since you last connected"
    )


async def test_a_service_that_prints_the_url(addon: str, tmp_path: Path) -> None:
    # Like a public ssh tunnel service: the server tells the client its URL in the session.
    port = free_port()
    force = f'ForceCommand echo "Forwarding HTTP traffic from http://127.0.0.1:{port}"; sleep 600\n'
    with running_sshd(tmp_path / "service", extra_config=force) as service:
        tunnel = SshTunnel(
            settings(
                service, remote_port=port, url_pattern=r"Forwarding HTTP traffic from (?P<url>\S+)"
            )
        )
        url = await tunnel.open(addon)
        try:
            assert url == f"http://127.0.0.1:{port}"
            assert await get(f"{url}/svc") == (200, "add-on saw /svc")
        finally:
            await tunnel.close()


async def test_the_host_installs_through_ssh_and_a_killed_ssh_is_healed(
    project: Path, sshd: Sshd
) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = tunnel_config(
            project,
            addon.url,
            [host_toml("jira", jira.base_url)],
            provider="ssh",
            tunnel=sshd.toml(),
        )
        async with running_up(config) as up:
            first_url = up.supervisor.public_url
            assert [(e.url, e.provider) for e in up.events.of("tunnel_opened")] == [  # type: ignore[attr-defined]
                (first_url, "ssh")
            ]
            [install] = jira.record.installs
            assert install.plugin_uri == f"{first_url}/atlassian-connect.json"
            assert install.descriptor["baseUrl"] == first_url
            assert [path for path, _ in addon.callbacks] == ["/installed"]

            recorded = json.loads((project / ".connect-dev" / "tunnel.json").read_text())
            os.kill(recorded["pid"], signal.SIGKILL)
            await jira.wait_for(lambda r: len(r.installs) >= 2, timeout=20)
            second_url = up.supervisor.public_url
            assert second_url != first_url
            assert jira.record.installs[1].descriptor["baseUrl"] == second_url
            closed = up.events.of("tunnel_closed")
            assert [(e.provider, e.reason) for e in closed] == [("ssh", "exited")]  # type: ignore[attr-defined]
            [warning] = up.events.of("warning")
            assert warning.message == (  # type: ignore[attr-defined]
                "the tunnel (ssh) dropped: ssh to root@127.0.0.1 was killed (signal 9); "
                "reopening it"
            )
            assert [e.reason for e in up.events.of("registering")] == [  # type: ignore[attr-defined]
                "startup",
                "tunnel_changed",
            ]
            ssh_pid = json.loads((project / ".connect-dev" / "tunnel.json").read_text())["pid"]
            assert ssh_pid != recorded["pid"]
            assert alive(ssh_pid)
        # Uninstalled through the tunnel, then the tunnel closed and ssh stopped.
        assert [path for path, _ in addon.callbacks] == ["/installed", "/installed", "/uninstalled"]
        assert jira.record.plugins == {}
        assert wait_dead(ssh_pid)
        assert not (project / ".connect-dev" / "tunnel.json").exists()


async def test_up_fails_with_the_ssh_message_when_the_tunnel_cannot_open(
    project: Path, sshd: Sshd, tmp_path: Path
) -> None:
    async with recording_addon() as addon, run_host() as jira:
        config = tunnel_config(
            project,
            addon.url,
            [host_toml("jira", jira.base_url)],
            provider="ssh",
            tunnel=sshd.toml(port=free_port()),
        )
        with pytest.raises(TunnelError) as caught:
            async with running_up(config, wait_ready=False) as up:
                await asyncio.wait_for(up.task, 20)
        assert caught.value.message.startswith("cannot connect to the ssh server 127.0.0.1 port ")
        assert jira.record.install_posts == []

"""[tunnel], [tunnel.ngrok] and [tunnel.ssh]: every key, its default, and its errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connect_devloop.config import (
    _SCHEMA,
    CONFIG_FILE_NAME,
    NgrokConfig,
    SshConfig,
    TunnelConfig,
    load_config,
    parse_config,
)
from connect_devloop.errors import ConfigError, TunnelError
from connect_devloop.tunnel import NgrokTunnel, SshTunnel, StaticTunnel, create_tunnel

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "project" / CONFIG_FILE_NAME


def error(text: str, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, path)
    return caught.value


def test_defaults(config_path: Path) -> None:
    assert parse_config("", config_path).tunnel == TunnelConfig(
        provider="auto",
        public_url=None,
        health_interval=5.0,
        health_timeout=5.0,
        ngrok=NgrokConfig(
            authtoken_env="NGROK_AUTHTOKEN",
            domain=None,
            region=None,
            path=None,
            config_path=None,
            download=False,
        ),
        ssh=SshConfig(
            target=None,
            port=0,
            identity_file=None,
            remote_port=0,
            remote_bind=None,
            url_pattern=None,
            options=(),
            path="ssh",
        ),
    )


def test_every_key(config_path: Path) -> None:
    text = """\
[tunnel]
provider = "ssh"
public_url = "https://{port}.tunnel.example.net/"
health_interval = 2
health_timeout = 1.5

[tunnel.ngrok]
authtoken_env = "MY_NGROK_TOKEN"
domain = "https://my-addon.ngrok.app/"
region = "eu"
path = "bin/ngrok"
config_path = "~/ngrok.yml"
download = true

[tunnel.ssh]
target = "me@vps.example.com"
port = 2222
identity_file = "keys/id_ed25519"
remote_port = 8080
remote_bind = "0.0.0.0"
url_pattern = "https://(?P<url>\\\\S+)"
options = ["StrictHostKeyChecking=accept-new", "Compression=yes"]
path = "/usr/bin/ssh"
"""
    project = config_path.parent
    assert parse_config(text, config_path).tunnel == TunnelConfig(
        provider="ssh",
        public_url="https://{port}.tunnel.example.net",
        health_interval=2.0,
        health_timeout=1.5,
        ngrok=NgrokConfig(
            authtoken_env="MY_NGROK_TOKEN",
            domain="my-addon.ngrok.app",
            region="eu",
            path=(project / "bin" / "ngrok").resolve(),
            config_path=(Path.home() / "ngrok.yml").resolve(),
            download=True,
        ),
        ssh=SshConfig(
            target="me@vps.example.com",
            port=2222,
            identity_file=(project / "keys" / "id_ed25519").resolve(),
            remote_port=8080,
            remote_bind="0.0.0.0",
            url_pattern="https://(?P<url>\\S+)",
            options=("StrictHostKeyChecking=accept-new", "Compression=yes"),
            path="/usr/bin/ssh",
        ),
    )


@pytest.mark.parametrize(
    ("text", "line", "key", "message", "hint"),
    [
        (
            "[tunnel]\nregion = 'eu'\n",
            2,
            "tunnel.region",
            "unknown key",
            "region belongs in [tunnel.ngrok]",
        ),
        (
            "[tunnel.ssh]\ndomain = 'x'\n",
            2,
            "tunnel.ssh.domain",
            "unknown key",
            "domain belongs in [tunnel.ngrok]",
        ),
        (
            "[tunnel.ngrok]\nautohtoken_env = 'X'\n",
            2,
            "tunnel.ngrok.autohtoken_env",
            "unknown key",
            "did you mean 'authtoken_env'?",
        ),
        (
            "[tunnel.ssh]\ntarget = 'a@b'\nremote-port = 1\n",
            3,
            "tunnel.ssh.remote-port",
            "unknown key",
            "did you mean 'remote_port'?",
        ),
        (
            "[tunnel]\nngrok = 'yes'\n",
            2,
            "tunnel.ngrok",
            "must be a table: write [tunnel.ngrok] on its own line",
            None,
        ),
        (
            "[tunnel]\nhealth_interval = 'often'\n",
            2,
            "tunnel.health_interval",
            "must be a number, not a string",
            "e.g. health_interval = 5.0",
        ),
        (
            "[tunnel]\nhealth_interval = -1\n",
            2,
            "tunnel.health_interval",
            "must be 0 (no probes) or more seconds",
            None,
        ),
        (
            "[tunnel]\nhealth_timeout = 0\n",
            2,
            "tunnel.health_timeout",
            "must be more than 0 seconds",
            None,
        ),
        (
            "[tunnel.ngrok]\ndownload = 'yes'\n",
            2,
            "tunnel.ngrok.download",
            "must be a boolean, not a string",
            "e.g. download = true",
        ),
        (
            "[tunnel.ngrok]\nauthtoken_env = '2abc-token'\n",
            2,
            "tunnel.ngrok.authtoken_env",
            "the value (10 characters) is not an environment variable name",
            "Name the variable (e.g. NGROK_AUTHTOKEN), not the authtoken itself.",
        ),
        (
            "[tunnel.ngrok]\ndomain = 'my-addon.ngrok.app/path'\n",
            2,
            "tunnel.ngrok.domain",
            "'my-addon.ngrok.app/path' is not a domain name",
            'Write the reserved domain alone, e.g. domain = "my-addon.ngrok.app".',
        ),
        (
            "[tunnel.ssh]\nport = 70000\n",
            2,
            "tunnel.ssh.port",
            "70000 is not a port number (0-65535; 0 = default)",
            None,
        ),
        (
            "[tunnel.ssh]\ntarget = '-oProxyCommand=x'\n",
            2,
            "tunnel.ssh.target",
            "'-oProxyCommand=x' is not an ssh destination",
            'e.g. target = "me@my-vps.example.com" (options go in options = [...]).',
        ),
        (
            "[tunnel.ssh]\noptions = ['-v']\n",
            2,
            "tunnel.ssh.options",
            "'-v' is not an ssh option of the form Key=Value",
            'e.g. options = ["StrictHostKeyChecking=accept-new"] (each is passed as -o).',
        ),
        (
            "[tunnel.ssh]\noptions = 'BatchMode=yes'\n",
            2,
            "tunnel.ssh.options",
            "must be an array of strings, not a string",
            'e.g. options = ["text"]',
        ),
        (
            "[tunnel.ssh]\nurl_pattern = 'https://('\n",
            2,
            "tunnel.ssh.url_pattern",
            "not a regular expression: missing ), unterminated subpattern at position 8",
            None,
        ),
        (
            "[tunnel]\nprovider = 'ssh'\npublic_url = 'https://{subdomain}.example.net'\n",
            3,
            "tunnel.public_url",
            "'https://{subdomain}.example.net' is not a URL template: 'subdomain'",
            "Only {host} and {port} are filled in (provider ssh), e.g. "
            '"https://{port}.tunnel.example.net".',
        ),
        (
            "[tunnel]\nprovider = 'none'\npublic_url = 'https://{port}.example.net'\n",
            3,
            "tunnel.public_url",
            "{host} and {port} are filled in only with provider ssh",
            "With provider none, write the URL hosts use to reach the proxy.",
        ),
        (
            "[tunnel]\nprovider = 'ngrok'\npublic_url = 'https://mine.example.net'\n",
            3,
            "tunnel.public_url",
            "is not used with provider ngrok: ngrok gives the URL",
            'For a tunnel you run yourself at this URL, set provider = "none"; for a fixed '
            "ngrok URL, set [tunnel.ngrok] domain to your reserved domain.",
        ),
    ],
)
def test_errors_name_the_line_and_the_key(
    config_path: Path, text: str, line: int, key: str, message: str, hint: str | None
) -> None:
    caught = error(text, config_path)
    assert (caught.line, caught.key, caught.message, caught.hint) == (line, key, message, hint)


def test_auto_with_a_remote_host_and_a_public_url_asks_for_provider_none(
    config_path: Path,
) -> None:
    text = (
        "[tunnel]\npublic_url = 'https://mine.example.net'\n"
        "[[hosts]]\nurl = 'https://example.atlassian.net'\nusername = 'me@example.com'\n"
    )
    assert error(text, config_path).message == (
        "is not used with provider ngrok: ngrok gives the URL"
    )


def test_create_tunnel_builds_the_configured_provider(config_path: Path) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text('[tunnel]\nprovider = "ssh"\n[tunnel.ssh]\ntarget = "me@vps"\n')
    ssh = create_tunnel(load_config(config_path))
    assert isinstance(ssh, SshTunnel)
    assert ssh.command("http://127.0.0.1:8000")[-1] == "me@vps"
    config_path.write_text('[tunnel]\nprovider = "ngrok"\n')
    assert isinstance(create_tunnel(load_config(config_path)), NgrokTunnel)
    config_path.write_text('[tunnel]\nprovider = "none"\npublic_url = "https://x.example"\n')
    static = create_tunnel(load_config(config_path))
    assert isinstance(static, StaticTunnel)
    assert static.configured


async def test_auto_picking_ngrok_says_why_in_its_hints(config_path: Path) -> None:
    config_path.parent.mkdir(parents=True)
    config_path.write_text(
        "[[hosts]]\nname = 'cloud'\nurl = 'https://example.atlassian.net'\n"
        "username = 'me@example.com'\n[tunnel.ngrok]\nauthtoken_env = 'UNSET_FOR_THIS_TEST'\n"
    )
    tunnel = create_tunnel(load_config(config_path))
    assert isinstance(tunnel, NgrokTunnel)
    with pytest.raises(TunnelError) as caught:
        await tunnel.open("http://127.0.0.1:1")
    assert str(caught.value) == "ngrok needs an authtoken and none was found"
    assert (caught.value.hint or "").endswith(
        ' (ngrok was chosen by provider = "auto" because cloud is not on loopback.)'
    )


def test_config_example_documents_every_tunnel_key() -> None:
    example = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    config = load_config(ROOT / "config.example.toml")
    assert config.tunnel.health_interval == 5.0
    for table in ("tunnel", "tunnel.ngrok", "tunnel.ssh"):
        section = example.split(f"[{table}]\n", 1)[1].split("\n[", 1)[0]
        for key, kind in _SCHEMA[table].items():
            if kind == "table":
                assert f"[{table}.{key}]" in example
                continue
            assert re.search(rf"^(# )?{key} = ", section, re.MULTILINE), f"{table}.{key}"

"""config.py for Connect on Forge: the [forge] table and hosts with registrar = "forge"."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connect_devloop.config import CONFIG_FILE_NAME, Config, ForgeConfig, HostConfig, parse_config
from connect_devloop.errors import ConfigError

FORGE_HOST = """\
[[hosts]]
name = "cloud-dev"
registrar = "forge"
site = "your-site.atlassian.net"
product = "jira"
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / CONFIG_FILE_NAME


def parse(text: str, path: Path) -> Config:
    return parse_config(textwrap.dedent(text), path)


def config_error(text: str, path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse(text, path)
    return info.value


def forge_host(*lines: str) -> str:
    return '[[hosts]]\nregistrar = "forge"\n' + "".join(f"{line}\n" for line in lines)


def test_a_forge_host_without_a_forge_table_uses_the_defaults(config_path: Path) -> None:
    config = parse(FORGE_HOST, config_path)

    assert config.forge == ForgeConfig(manifest=config_path.parent / "manifest.yml")
    assert config.forge.environment == "development"
    assert config.forge.command == ("forge",)
    assert config.forge.on_exit == "keep"
    assert (
        config.forge.deploy_timeout,
        config.forge.install_timeout,
        config.forge.uninstall_timeout,
    ) == (600.0, 300.0, 120.0)
    assert config.hosts == (
        HostConfig(
            name="cloud-dev",
            url="https://your-site.atlassian.net",
            product="jira",
            username="",
            line=1,
            registrar="forge",
            site="your-site.atlassian.net",
        ),
    )
    # Not on loopback: "auto" opens an ngrok tunnel for it, as for any Cloud host.
    assert config.tunnel_provider == "ngrok"


def test_without_forge_there_is_no_forge_config(config_path: Path) -> None:
    config = parse('[[hosts]]\nurl = "http://localhost:2990/jira"\nusername = "a"\n', config_path)
    assert config.forge is None
    assert config.hosts[0].registrar == "upm"
    assert config.hosts[0].site is None


def test_every_forge_key(config_path: Path) -> None:
    config = parse(
        """\
        [forge]
        manifest = "forge/manifest.yml"
        environment = "staging"
        command = "npx --yes @forge/cli"
        on_exit = "uninstall"
        deploy_timeout = 900
        install_timeout = 60.5
        uninstall_timeout = 30

        [[hosts]]
        registrar = "forge"
        site = "acme.atlassian.net"
        product = "confluence"
        keys_url = "https://keys.example.com/"

        [[hosts]]
        name = "emulated"
        registrar = "forge"
        site = "127.0.0.1:2990"
        product = "jira"
        """,
        config_path,
    )

    assert config.forge == ForgeConfig(
        manifest=config_path.parent / "forge" / "manifest.yml",
        environment="staging",
        command=("npx", "--yes", "@forge/cli"),
        on_exit="uninstall",
        deploy_timeout=900.0,
        install_timeout=60.5,
        uninstall_timeout=30.0,
    )
    cloud, emulated = config.hosts
    assert (cloud.name, cloud.url, cloud.base_url) == (
        "acme.atlassian.net",
        "https://acme.atlassian.net/wiki",
        "https://acme.atlassian.net/wiki",
    )
    assert cloud.keys_url == "https://keys.example.com"
    assert (emulated.url, emulated.site, emulated.is_local) == (
        "http://127.0.0.1:2990",
        "127.0.0.1:2990",
        True,
    )


def test_command_as_a_list_is_taken_word_for_word(config_path: Path) -> None:
    config = parse('[forge]\ncommand = ["/opt/forge cli/forge", "--verbose"]\n', config_path)
    assert config.forge is not None
    assert config.forge.command == ("/opt/forge cli/forge", "--verbose")


def test_a_forge_table_alone_is_read_and_checked(config_path: Path) -> None:
    config = parse('[forge]\nenvironment = "dev-alice"\n', config_path)
    assert config.forge is not None
    assert config.forge.environment == "dev-alice"


@pytest.mark.parametrize(
    ("text", "line", "key", "message", "hint"),
    [
        (
            '[forge]\nmanifst = "m.yml"\n',
            2,
            "forge.manifst",
            "unknown key",
            "did you mean 'manifest'?",
        ),
        (
            '[forge]\nsite = "x.atlassian.net"\n',
            2,
            "forge.site",
            "unknown key",
            "site belongs in the [[hosts]] entry of each Forge host",
        ),
        (
            '[forge]\non_exit = "uninstal"\n',
            2,
            "forge.on_exit",
            "'uninstal' is not one of keep, uninstall",
            "did you mean 'uninstall'?",
        ),
        (
            '[forge]\nenvironment = "-e"\n',
            2,
            "forge.environment",
            "'-e' is not a Forge environment name",
            'e.g. environment = "development" (or staging, production, or one of '
            "`forge environments list`).",
        ),
        (
            '[forge]\ncommand = "forge \\"x"\n',
            2,
            "forge.command",
            "'forge \"x' cannot be split into words: No closing quotation",
            'e.g. command = "npx forge", or command = ["npx", "forge"]',
        ),
        (
            "[forge]\ncommand = []\n",
            2,
            "forge.command",
            "must name the Forge CLI",
            'e.g. command = "forge" (the default: forge on PATH)',
        ),
        (
            "[forge]\ncommand = 1\n",
            2,
            "forge.command",
            "must be a string or an array of strings, not an integer",
            'e.g. command = "npx forge", or command = ["npx", "forge"]',
        ),
        (
            '[forge]\ncommand = ["npx", 1]\n',
            2,
            "forge.command",
            "an integer is not a word of a command: each must be a string",
            'e.g. command = "npx forge", or command = ["npx", "forge"]',
        ),
        (
            "[forge]\ndeploy_timeout = 0\n",
            2,
            "forge.deploy_timeout",
            "must be more than 0 seconds",
            "e.g. deploy_timeout = 600",
        ),
        (
            '[forge]\nmanifest = ""\n',
            2,
            "forge.manifest",
            "must not be empty",
            'e.g. manifest = "manifest.yml"',
        ),
        (
            "forge = 1\n",
            1,
            "forge",
            "must be a table: write [forge] on its own line",
            None,
        ),
    ],
)
def test_forge_table_errors(
    config_path: Path, text: str, line: int, key: str, message: str, hint: str | None
) -> None:
    error = config_error(text, config_path)
    assert (error.file, error.line, error.key, error.message, error.hint) == (
        str(config_path),
        line,
        key,
        message,
        hint,
    )


SITE_HINT = 'Write the host name of the site alone, e.g. site = "your-site.atlassian.net".'
CLI_LOGIN = (
    "Remove it: `connect-dev login --forge` keeps the login, or set FORGE_EMAIL and "
    "FORGE_API_TOKEN in the environment."
)


@pytest.mark.parametrize(
    ("text", "line", "key", "message", "hint"),
    [
        (
            forge_host('url = "https://x.atlassian.net"', 'site = "x.atlassian.net"'),
            3,
            "hosts[0].url",
            'is not used with registrar = "forge": a Forge host is named by its site, not a URL',
            'Remove url; write the site\'s host name, e.g. site = "your-site.atlassian.net".',
        ),
        (
            forge_host('site = "x.atlassian.net"', 'username = "me@example.com"'),
            4,
            "hosts[0].username",
            'is not used with registrar = "forge": the Forge CLI logs in by itself',
            CLI_LOGIN,
        ),
        (
            forge_host('site = "x.atlassian.net"', 'password_env = "TOKEN"'),
            4,
            "hosts[0].password_env",
            'is not used with registrar = "forge": the Forge CLI logs in by itself',
            CLI_LOGIN,
        ),
        (
            forge_host('site = "x.atlassian.net"', 'password = "admin"'),
            4,
            "hosts[0].password",
            'is not used with registrar = "forge": the Forge CLI logs in by itself',
            CLI_LOGIN,
        ),
        (
            forge_host('product = "jira"'),
            1,
            "hosts[0].site",
            "is required for a Forge host: the site to install on",
            'e.g. site = "your-site.atlassian.net"',
        ),
        (
            forge_host('site = "x.atlassian.net"'),
            1,
            "hosts[0].product",
            "is required for a Forge host",
            'product = "jira" or product = "confluence"',
        ),
        (
            forge_host('site = "x.atlassian.net"', 'product = "jria"'),
            4,
            "hosts[0].product",
            "'jria' is not one of jira, confluence",
            "did you mean 'jira'?",
        ),
        (
            forge_host('site = "https://x.atlassian.net"', 'product = "jira"'),
            3,
            "hosts[0].site",
            "'https://x.atlassian.net' is not a site: write it without 'https://'",
            SITE_HINT,
        ),
        (
            forge_host('site = "x.atlassian.net/wiki"', 'product = "confluence"'),
            3,
            "hosts[0].site",
            "'x.atlassian.net/wiki' is not a site: it has a path",
            f'{SITE_HINT} Confluence is product = "confluence", without /wiki.',
        ),
        (
            forge_host('site = "my site"', 'product = "jira"'),
            3,
            "hosts[0].site",
            "'my site' is not a site: it is empty or has a space",
            SITE_HINT,
        ),
        (
            forge_host('site = "under_score!.example"', 'product = "jira"'),
            3,
            "hosts[0].site",
            "'under_score!.example' is not a host name",
            SITE_HINT,
        ),
        (
            forge_host('site = "localhost:99999"', 'product = "jira"'),
            3,
            "hosts[0].site",
            "'localhost:99999' is not a site: Port out of range 0-65535",
            SITE_HINT,
        ),
        (
            forge_host('site = "me@x.atlassian.net"', 'product = "jira"'),
            3,
            "hosts[0].site",
            "the site has a user name in it (before the '@')",
            SITE_HINT,
        ),
        (
            '[[hosts]]\nregistrar = "forj"\n',
            2,
            "hosts[0].registrar",
            "'forj' is not one of upm, forge",
            "did you mean 'forge'?",
        ),
        (
            '[[hosts]]\nurl = "https://x.atlassian.net"\nusername = "me"\n'
            'site = "x.atlassian.net"\n',
            4,
            "hosts[0].site",
            'is only used with registrar = "forge": a UPM host is named by its url',
            'To install through the Forge CLI, add registrar = "forge" (and remove url, '
            "username and the password); else remove site.",
        ),
        (
            forge_host('site = "x.atlassian.net"', 'product = "jira"', 'environment = "dev"'),
            5,
            "hosts[0].environment",
            "unknown key",
            "environment belongs in [forge] (one setting for every Forge host)",
        ),
        (
            FORGE_HOST + FORGE_HOST,
            7,
            "hosts[1].name",
            "'cloud-dev' is already the name of hosts[0]",
            "Give each [[hosts]] entry its own name.",
        ),
    ],
)
def test_forge_host_errors(
    config_path: Path, text: str, line: int, key: str, message: str, hint: str | None
) -> None:
    error = config_error(text, config_path)
    assert (error.file, error.line, error.key, error.message, error.hint) == (
        str(config_path),
        line,
        key,
        message,
        hint,
    )
    assert str(error) == f"{config_path}:{line}: {key}: {message}"


def test_the_example_config_documents_every_forge_key() -> None:
    example = (Path(__file__).parent.parent / "config.example.toml").read_text(encoding="utf-8")
    for key in (
        "[forge]",
        "manifest",
        "environment",
        "command",
        "on_exit",
        "deploy_timeout",
        "install_timeout",
        "uninstall_timeout",
        'registrar = "forge"',
        "site",
    ):
        assert key in example, key

"""config.py: every key of connect-dev.toml, defaults, and errors that name file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from connect_devloop.config import (
    CONFIG_FILE_NAME,
    Config,
    HostConfig,
    TunnelConfig,
    find_config,
    is_loopback_url,
    load_config,
    parse_config,
)
from connect_devloop.errors import ConfigError, DevloopError
from connect_devloop.secret import Secret

TOP_KEYS = "descriptor, addon, proxy, inspector, tunnel, forge, hosts"
HOST_KEYS = "name, url, product, username, password_env, password, keys_url, registrar, site"
INLINE_WARNING = (
    "host {name!r} has an inline password but is not on loopback; prefer password_env "
    "(or the keychain) so the token is not kept in a file"
)

FULL = """\
descriptor = "addon/atlassian-connect.json"

[addon]
url = "http://127.0.0.1:5000/"

[proxy]
port = 8123

[tunnel]
provider = "ssh"
public_url = "https://dev.example.com"

[[hosts]]
name = "dev-jira"
url = "https://example.atlassian.net/"
product = "jira"
username = "me@example.com"
password_env = "JIRA_API_TOKEN"

[[hosts]]
name = "local-confluence"
url = "http://localhost:1990/confluence"
product = "confluence"
username = "admin"
password = "admin"
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


def host_block(*lines: str, url: str = "https://example.atlassian.net") -> str:
    body = "\n".join(lines)
    return f'[[hosts]]\nurl = "{url}"\nusername = "me@example.com"\n{body}\n'


# --- a whole config and the defaults ------------------------------------------------------------


def test_defaults(config_path: Path) -> None:
    config = parse("", config_path)

    assert config == Config(
        path=config_path,
        descriptor_path=(config_path.parent / "atlassian-connect.json").resolve(),
        addon_url="http://localhost:3000",
        proxy_port=8000,
        tunnel=TunnelConfig(provider="auto", public_url=None),
        hosts=(),
        warnings=(),
    )
    assert config.project_dir == config_path.parent
    assert config.ledger_path == config_path.parent / ".connect-dev" / "ledger.json"
    # No host at all is "all hosts are local": no tunnel is needed.
    assert config.tunnel_provider == "none"


def test_every_key(config_path: Path) -> None:
    config = parse(FULL, config_path)

    assert config.path == config_path
    assert config.descriptor_path == (config_path.parent / "addon/atlassian-connect.json").resolve()
    assert config.addon_url == "http://127.0.0.1:5000"
    assert config.proxy_port == 8123
    assert config.tunnel == TunnelConfig(provider="ssh", public_url="https://dev.example.com")
    assert config.tunnel_provider == "ssh"
    assert config.hosts == (
        HostConfig(
            name="dev-jira",
            url="https://example.atlassian.net",
            product="jira",
            username="me@example.com",
            password_env="JIRA_API_TOKEN",
            password=None,
            line=13,
        ),
        HostConfig(
            name="local-confluence",
            url="http://localhost:1990/confluence",
            product="confluence",
            username="admin",
            password_env=None,
            password=Secret("admin"),
            line=20,
        ),
    )
    assert config.warnings == ()


def test_empty_tables_give_defaults(config_path: Path) -> None:
    config = parse("[addon]\n[proxy]\n[tunnel]\n", config_path)
    assert config.addon_url == "http://localhost:3000"
    assert config.proxy_port == 8000
    assert config.tunnel == TunnelConfig()


@pytest.mark.parametrize(
    ("value", "relative"),
    [
        ("atlassian-connect.json", "atlassian-connect.json"),
        ("../shared/descriptor.json", "../shared/descriptor.json"),
        ("./a/./b.json", "a/b.json"),
    ],
)
def test_descriptor_is_relative_to_the_config_file(
    tmp_path: Path, value: str, relative: str
) -> None:
    path = tmp_path / "project" / CONFIG_FILE_NAME
    config = parse(f'descriptor = "{value}"\n', path)
    assert config.descriptor_path == (tmp_path / "project" / relative).resolve()


def test_descriptor_absolute_path(config_path: Path, tmp_path: Path) -> None:
    absolute = tmp_path / "elsewhere" / "d.json"
    config = parse(f'descriptor = "{absolute}"\n', config_path)
    assert config.descriptor_path == absolute.resolve()


def test_empty_public_url_means_none(config_path: Path) -> None:
    config = parse('[tunnel]\nprovider = "none"\npublic_url = ""\n', config_path)
    assert config.tunnel == TunnelConfig(provider="none", public_url=None)


# --- unknown keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "hint"),
    [
        (
            'descriptor = "a.json"\ndescriptr = "b.json"\n',
            2,
            "descriptr",
            "did you mean 'descriptor'?",
        ),
        ('descriptor = "a.json"\nbogus = 1\n', 2, "bogus", f"Known keys here: {TOP_KEYS}."),
        ("[addon]\nurll = 'http://x'\n", 2, "addon.urll", "did you mean 'url'?"),
        (
            "[addon]\nhost = 'x'\n",
            2,
            "addon.host",
            "Known keys here: url, command, cwd, env, restart_on, ready_path, ready_timeout, "
            "stop_timeout.",
        ),
        ("[proxy]\n\nprot = 1\n", 3, "proxy.prot", "did you mean 'port'?"),
        ("[proxy]\nbind = '0.0.0.0'\n", 2, "proxy.bind", "Known keys here: port."),
        ("[tunnel]\nprovidr = 'ngrok'\n", 2, "tunnel.providr", "did you mean 'provider'?"),
        ("[tunnel]\npublic-url = 'x'\n", 2, "tunnel.public-url", "did you mean 'public_url'?"),
        ("[tunnel]\nregion = 'eu'\n", 2, "tunnel.region", "region belongs in [tunnel.ngrok]"),
    ],
)
def test_unknown_key(config_path: Path, text: str, line: int, key: str, hint: str) -> None:
    error = config_error(text, config_path)

    assert (error.file, error.line, error.key, error.message) == (
        str(config_path),
        line,
        key,
        "unknown key",
    )
    assert error.hint == hint
    assert str(error) == f"{config_path}:{line}: {key}: unknown key"


def test_unknown_key_in_the_second_host(config_path: Path) -> None:
    text = """\
        descriptor = "atlassian-connect.json"

        [[hosts]]
        name = "one"
        url = "http://localhost:2990/jira"
        username = "admin"
        password = "admin"

        [[hosts]]
        name = "two"
        url = "http://localhost:1990/confluence"
        username = "admin"
        pasword = "admin"
    """
    error = config_error(text, config_path)

    assert (error.file, error.line, error.key) == (str(config_path), 13, "hosts[1].pasword")
    assert error.message == "unknown key"
    assert error.hint == "did you mean 'password'?"
    assert str(error) == f"{config_path}:13: hosts[1].pasword: unknown key"


def test_unknown_key_in_a_host_without_a_close_match(config_path: Path) -> None:
    error = config_error(host_block("token = 'x'"), config_path)
    assert (error.line, error.key, error.hint) == (
        4,
        "hosts[0].token",
        f"Known keys here: {HOST_KEYS}.",
    )


def test_unknown_key_is_reported_before_other_mistakes(config_path: Path) -> None:
    error = config_error("[proxy]\nport = 'x'\nprot = 1\n", config_path)
    assert error.key == "proxy.prot"


# --- types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "message", "hint"),
    [
        ('[proxy]\nport = "8000"\n', 2, "proxy.port", "an integer, not a string", "port = 8000"),
        ("[proxy]\nport = true\n", 2, "proxy.port", "an integer, not a boolean", "port = 8000"),
        ("[proxy]\nport = [8000]\n", 2, "proxy.port", "an integer, not an array", "port = 8000"),
        ("descriptor = 5\n", 1, "descriptor", "a string, not an integer", 'descriptor = "text"'),
        ("[addon]\nurl = 3000\n", 2, "addon.url", "a string, not an integer", 'url = "text"'),
        (
            "[tunnel]\nprovider = false\n",
            2,
            "tunnel.provider",
            "a string, not a boolean",
            'provider = "text"',
        ),
        (
            "[tunnel]\npublic_url = {a = 1}\n",
            2,
            "tunnel.public_url",
            "a string, not a table",
            'public_url = "text"',
        ),
    ],
)
def test_type_errors(
    config_path: Path, text: str, line: int, key: str, message: str, hint: str
) -> None:
    error = config_error(text, config_path)
    assert (error.line, error.key) == (line, key)
    assert error.message == f"must be {message}"
    assert error.hint == f"e.g. {hint}"
    assert str(error) == f"{config_path}:{line}: {key}: must be {message}"


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("name = true", "hosts[0].name", "must be a string, not a boolean"),
        ("product = 1", "hosts[0].product", "must be a string, not an integer"),
        ("password_env = ['A']", "hosts[0].password_env", "must be a string, not an array"),
        ("password = 1234", "hosts[0].password", "must be a string, not an integer"),
    ],
)
def test_host_type_errors(config_path: Path, line: str, key: str, message: str) -> None:
    error = config_error(host_block(line), config_path)
    assert (error.line, error.key, error.message) == (4, key, message)


def test_host_url_and_username_types(config_path: Path) -> None:
    error = config_error("[[hosts]]\nurl = 1\nusername = 'a'\n", config_path)
    assert (error.line, error.key, error.message) == (
        2,
        "hosts[0].url",
        "must be a string, not an integer",
    )
    error = config_error("[[hosts]]\nurl = 'http://localhost'\nusername = 7\n", config_path)
    assert (error.line, error.key, error.message) == (
        3,
        "hosts[0].username",
        "must be a string, not an integer",
    )


@pytest.mark.parametrize("name", ["addon", "proxy", "tunnel"])
def test_section_must_be_a_table(config_path: Path, name: str) -> None:
    error = config_error(f"{name} = 1\n", config_path)
    assert (error.line, error.key) == (1, name)
    assert error.message == f"must be a table: write [{name}] on its own line"


@pytest.mark.parametrize("text", ["hosts = 1\n", "hosts = [1, 2]\n", "hosts = 'x'\n"])
def test_hosts_must_be_an_array_of_tables(config_path: Path, text: str) -> None:
    error = config_error(text, config_path)
    assert (error.line, error.key) == (1, "hosts")
    assert error.message == "must be an array of tables: write each host as [[hosts]]"


@pytest.mark.parametrize(
    ("text", "key", "message", "hint"),
    [
        (
            '[tunel]\nprovider = "ngrok"\n',
            "tunel",
            "unknown key",
            "did you mean 'tunnel'?",
        ),
        (
            '[[host]]\nurl = "http://localhost"\n',
            "host",
            "unknown key",
            "did you mean 'hosts'?",
        ),
        (
            '[hosts]\nurl = "http://localhost"\n',
            "hosts",
            "must be an array of tables: write each host as [[hosts]]",
            None,
        ),
    ],
)
def test_mistakes_in_table_headers_name_their_line(
    config_path: Path, text: str, key: str, message: str, hint: str | None
) -> None:
    error = config_error('descriptor = "a.json"\n\n' + text, config_path)
    assert (error.key, error.message, error.hint) == (key, message, hint)
    assert error.line == 3


def test_inline_array_of_host_tables_is_accepted(config_path: Path) -> None:
    config = parse(
        'hosts = [{url = "http://localhost:2990/jira", username = "admin"}]\n', config_path
    )
    assert [host.name for host in config.hosts] == ["http://localhost:2990/jira"]


# --- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, 1, 8000, 65535])
def test_port_range_accepted(config_path: Path, port: int) -> None:
    assert parse(f"[proxy]\nport = {port}\n", config_path).proxy_port == port


@pytest.mark.parametrize("port", [-1, 65536, 100000])
def test_port_range(config_path: Path, port: int) -> None:
    error = config_error(f"[proxy]\nport = {port}\n", config_path)
    assert (error.line, error.key, error.hint) == (2, "proxy.port", None)
    assert error.message == f"{port} is not a port number (0-65535; 0 = any free port)"


@pytest.mark.parametrize("provider", ["auto", "ngrok", "ssh", "none"])
def test_providers(config_path: Path, provider: str) -> None:
    config = parse(f'[tunnel]\nprovider = "{provider}"\n', config_path)
    assert config.tunnel.provider == provider


@pytest.mark.parametrize(
    ("provider", "hint"),
    [("ngrock", "did you mean 'ngrok'?"), ("NONE", None), ("cloudflare", None), ("", None)],
)
def test_unknown_provider(config_path: Path, provider: str, hint: str | None) -> None:
    error = config_error(f'[tunnel]\n\nprovider = "{provider}"\n', config_path)
    assert (error.line, error.key, error.hint) == (3, "tunnel.provider", hint)
    assert error.message == f"{provider!r} is not one of auto, ngrok, ssh, none"


@pytest.mark.parametrize(
    ("table", "key", "value"),
    [
        ("addon", "url", "localhost:3000"),
        ("addon", "url", "ftp://localhost:3000"),
        ("addon", "url", "http://"),
        ("addon", "url", "3000"),
        ("tunnel", "public_url", "ftp://x"),
        ("tunnel", "public_url", "abc.ngrok.app"),
    ],
)
def test_url_validation(config_path: Path, table: str, key: str, value: str) -> None:
    error = config_error(f'[{table}]\n{key} = "{value}"\n', config_path)
    assert (error.line, error.key) == (2, f"{table}.{key}")
    assert error.message == f"{value!r} is not an http(s) URL"
    assert error.hint == 'Write the whole URL, e.g. "http://localhost:3000".'


def test_host_url_validation(config_path: Path) -> None:
    error = config_error(host_block(url="example.atlassian.net"), config_path)
    assert (error.line, error.key) == (2, "hosts[0].url")
    assert error.message == "'example.atlassian.net' is not an http(s) URL"


@pytest.mark.parametrize(
    ("url", "product"),
    [
        ("https://example.atlassian.net/wiki", "confluence"),
        ("https://example.atlassian.net/wiki/", "confluence"),
        ("http://localhost:1990/confluence", "confluence"),
        ("http://localhost:2990/jira", "jira"),
        ("https://example.atlassian.net", "jira"),
        ("https://wiki.example.com", "jira"),
        ("https://example.com/wikipedia", "jira"),
    ],
)
def test_product_guessed_from_the_url(config_path: Path, url: str, product: str) -> None:
    config = parse(host_block(url=url), config_path)
    assert config.hosts[0].product == product


def test_explicit_product_wins(config_path: Path) -> None:
    config = parse(host_block('product = "jira"', url="http://localhost:8090/wiki"), config_path)
    assert config.hosts[0].product == "jira"


@pytest.mark.parametrize(
    ("product", "hint"), [("jirra", "did you mean 'jira'?"), ("bitbucket", None)]
)
def test_unknown_product(config_path: Path, product: str, hint: str | None) -> None:
    error = config_error(host_block(f'product = "{product}"'), config_path)
    assert (error.line, error.key, error.hint) == (4, "hosts[0].product", hint)
    assert error.message == f"{product!r} is not one of jira, confluence"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.atlassian.net",
        "https://example.atlassian.net/",
        "https://Example.Atlassian.net/confluence",
    ],
)
def test_confluence_cloud_needs_wiki(config_path: Path, url: str) -> None:
    error = config_error(host_block('product = "confluence"', url=url), config_path)
    assert (error.line, error.key) == (2, "hosts[0].url")
    assert error.message == f"{url!r}: Confluence Cloud lives under /wiki"
    assert error.hint == 'use url = "https://example.atlassian.net/wiki"'


def test_confluence_outside_cloud_needs_no_wiki(config_path: Path) -> None:
    text = host_block('product = "confluence"', url="https://confluence.example.com")
    assert parse(text, config_path).hosts[0].product == "confluence"


def test_duplicate_host_names(config_path: Path) -> None:
    text = (
        host_block('name = "dev"')
        + "\n"
        + host_block('name = "dev"', url="https://other.atlassian.net")
    )
    error = config_error(text, config_path)
    assert (error.line, error.key) == (9, "hosts[1].name")
    assert error.message == "'dev' is already the name of hosts[0]"
    assert error.hint == "Give each [[hosts]] entry its own name."


def test_duplicate_default_names_point_at_the_table(config_path: Path) -> None:
    text = host_block() + "\n" + host_block('password_env = "X"')
    error = config_error(text, config_path)
    # No `name` key in the second entry: the line is that of its [[hosts]] header.
    assert (error.line, error.key) == (6, "hosts[1].name")
    assert error.message == "'https://example.atlassian.net' is already the name of hosts[0]"


def test_same_site_with_trailing_slash_is_a_duplicate(config_path: Path) -> None:
    text = host_block() + "\n" + host_block(url="https://example.atlassian.net/")
    error = config_error(text, config_path)
    assert error.key == "hosts[1].name"


def test_missing_url(config_path: Path) -> None:
    error = config_error('descriptor = "a.json"\n\n[[hosts]]\nusername = "admin"\n', config_path)
    assert (error.line, error.key) == (3, "hosts[0].url")
    assert error.message == "is required: the site's base URL"
    assert error.hint == 'e.g. url = "https://your-site.atlassian.net"'
    assert str(error) == f"{config_path}:3: hosts[0].url: is required: the site's base URL"


def test_missing_username(config_path: Path) -> None:
    text = host_block() + '\n[[hosts]]\nname = "two"\nurl = "http://localhost:2990/jira"\n'
    error = config_error(text, config_path)
    assert (error.line, error.key) == (6, "hosts[1].username")
    assert error.message == "is required"
    assert error.hint == "Cloud: your Atlassian account e-mail; local SDK hosts: admin"


@pytest.mark.parametrize(
    "name", ["1TOKEN", "my token", "JIRA-TOKEN", "$JIRA_API_TOKEN", "ATATT3x=="]
)
def test_password_env_must_be_a_variable_name(config_path: Path, name: str) -> None:
    error = config_error(host_block(f"password_env = '{name}'"), config_path)
    assert (error.line, error.key) == (4, "hosts[0].password_env")
    assert error.message == (
        f"the value ({len(name)} characters) is not an environment variable name"
    )
    assert name not in str(error)  # most often the token itself: never echoed
    assert error.hint == "Name the variable (e.g. JIRA_API_TOKEN), not its value."


@pytest.mark.parametrize("name", ["JIRA_API_TOKEN", "_x", "token2", "A"])
def test_password_env_names_accepted(config_path: Path, name: str) -> None:
    assert parse(host_block(f'password_env = "{name}"'), config_path).hosts[0].password_env == name


def test_empty_password_env_and_password_mean_unset(config_path: Path) -> None:
    host = parse(host_block('password_env = ""', 'password = ""'), config_path).hosts[0]
    assert (host.password_env, host.password) == (None, None)


def test_inline_password_on_a_remote_host_warns(config_path: Path) -> None:
    text = 'descriptor = "a.json"\n\n' + host_block('name = "dev"', 'password = "hunter2"')
    config = parse(text, config_path)

    assert config.warnings == (f"{config_path}:7: " + INLINE_WARNING.format(name="dev"),)
    assert config.hosts[0].password == Secret("hunter2")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.warnings)


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:2990/jira",
        "http://127.0.0.1:2990/jira",
        "http://127.8.9.10/jira",
        "http://[::1]:2990/jira",
        "http://dev.localhost:2990/jira",
        "http://LOCALHOST:2990/jira",
    ],
)
def test_inline_password_on_loopback_does_not_warn(config_path: Path, url: str) -> None:
    config = parse(host_block('password = "admin"', url=url), config_path)
    assert config.warnings == ()
    assert config.hosts[0].password == Secret("admin")


def test_host_config_properties(config_path: Path) -> None:
    config = parse(FULL, config_path)
    remote, local = config.hosts
    assert (remote.base_url, remote.is_local) == ("https://example.atlassian.net", False)
    assert (local.base_url, local.is_local) == ("http://localhost:1990/confluence", True)


def test_default_host_name_is_the_url(config_path: Path) -> None:
    assert parse(host_block(), config_path).hosts[0].name == "https://example.atlassian.net"


# --- tunnel_provider ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "urls", "resolved"),
    [
        ("auto", [], "none"),
        ("auto", ["http://localhost:2990/jira"], "none"),
        ("auto", ["http://localhost:2990/jira", "http://127.0.0.1:1990/confluence"], "none"),
        ("auto", ["http://localhost:2990/jira", "https://example.atlassian.net"], "ngrok"),
        ("auto", ["https://example.atlassian.net"], "ngrok"),
        ("none", ["https://example.atlassian.net"], "none"),
        ("ssh", ["http://localhost:2990/jira"], "ssh"),
        ("ngrok", ["http://localhost:2990/jira"], "ngrok"),
    ],
)
def test_tunnel_provider_resolution(
    config_path: Path, provider: str, urls: list[str], resolved: str
) -> None:
    text = f'[tunnel]\nprovider = "{provider}"\n\n'
    text += "\n".join(host_block(f'name = "h{i}"', url=url) for i, url in enumerate(urls))
    assert parse(text, config_path).tunnel_provider == resolved


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:3000", True),
        ("http://app.localhost", True),
        ("http://127.0.0.1", True),
        ("http://127.255.0.1:80", True),
        ("http://[::1]:8000", True),
        ("https://example.atlassian.net", False),
        ("http://192.168.1.2:2990/jira", False),
        ("http://localhost.example.com", False),
        ("http://[::2]", False),
        ("not a url", False),
        ("", False),
    ],
)
def test_is_loopback_url(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local


# --- finding and loading ------------------------------------------------------------------------


def test_find_config_explicit_file(tmp_path: Path) -> None:
    path = tmp_path / "custom.toml"
    path.write_text("")
    assert find_config(path) == path
    assert find_config(str(path)) == path


def test_find_config_explicit_directory(tmp_path: Path) -> None:
    (tmp_path / CONFIG_FILE_NAME).write_text("")
    assert find_config(tmp_path) == tmp_path / CONFIG_FILE_NAME


def test_find_config_in_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / CONFIG_FILE_NAME).write_text("")
    assert find_config(None, cwd=tmp_path) == tmp_path / CONFIG_FILE_NAME
    monkeypatch.chdir(tmp_path)
    assert find_config(None) == tmp_path / CONFIG_FILE_NAME


@pytest.mark.parametrize("explicit", ["missing.toml", "directory", None])
def test_find_config_missing(tmp_path: Path, explicit: str | None) -> None:
    (tmp_path / "directory").mkdir()
    expected = {
        "missing.toml": tmp_path / "missing.toml",
        "directory": tmp_path / "directory" / CONFIG_FILE_NAME,
        None: tmp_path / CONFIG_FILE_NAME,
    }[explicit]
    with pytest.raises(ConfigError) as info:
        find_config(tmp_path / explicit if explicit else None, cwd=tmp_path)

    error = info.value
    assert (error.file, error.line, error.key) == (str(expected), None, None)
    assert error.message == "config file not found"
    assert error.hint == (
        "Write one with `connect-dev init` (`connect-dev init --example` prints every key), "
        "or pass --config PATH."
    )
    assert str(error) == f"{expected}: config file not found"


def test_load_config(config_path: Path) -> None:
    config_path.write_text(FULL, encoding="utf-8")
    assert load_config(config_path) == parse(FULL, config_path)


def test_load_config_not_utf8(config_path: Path) -> None:
    config_path.write_bytes(b'descriptor = "\xff.json"\n')
    with pytest.raises(ConfigError) as info:
        load_config(config_path)
    assert str(info.value) == f"{config_path}:1: not UTF-8 text (byte 14)"
    assert info.value.hint == "Save it as UTF-8."


def test_load_config_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a regular file"


def test_load_config_errors_name_the_file(config_path: Path) -> None:
    config_path.write_text("[proxy]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config_path)
    assert str(info.value) == f"{config_path}:2: proxy.prot: unknown key"


# --- TOML syntax --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("[addon\nurl = 1\n", 1, "Expected ']' at the end of a table declaration"),
        ('descriptor = "a.json"\n\n[addon]\nurl = "http://x\n', 4, "Illegal character '\\n'"),
        ("[proxy]\nport = 80 00\n", 2, "Expected newline or end of document after a statement"),
        ("[addon]\nurl = 'http://x'\n[addon]\n", 3, "Cannot declare ('addon',) twice"),
    ],
)
def test_toml_syntax_error_names_the_line(
    config_path: Path, text: str, line: int, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(text, config_path)

    error = info.value
    assert (error.file, error.line, error.key) == (str(config_path), line, None)
    assert error.message == f"not valid TOML: {message}"
    assert error.hint == "Check quotes, brackets and `key = value` syntax on that line."
    assert str(error) == f"{config_path}:{line}: not valid TOML: {message}"


@pytest.mark.parametrize(
    ("text", "line"),
    [('descriptor = "a.json', 1), ('[addon]\nurl = """http://x\n\n', 2)],
)
def test_toml_error_at_end_of_document_names_the_last_line(
    config_path: Path, text: str, line: int
) -> None:
    error = config_error(text, config_path)
    assert error.line == line
    assert str(error) == (
        f"{config_path}:{line}: not valid TOML: Unterminated string (at end of document)"
    )


# --- ConfigError --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"file": "c.toml", "line": 3, "key": "proxy.port"}, "c.toml:3: proxy.port: bad"),
        ({"file": "c.toml", "key": "proxy.port"}, "c.toml: proxy.port: bad"),
        ({"file": "c.toml", "line": 3}, "c.toml:3: bad"),
        ({"file": "c.toml"}, "c.toml: bad"),
        ({"key": "proxy.port"}, "proxy.port: bad"),
        ({}, "bad"),
    ],
)
def test_config_error_str(kwargs: dict[str, object], text: str) -> None:
    error = ConfigError("bad", hint="do this", **kwargs)  # type: ignore[arg-type]
    assert str(error) == text
    assert (error.message, error.hint) == ("bad", "do this")
    assert isinstance(error, DevloopError)


# --- hostile values -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [
        ('[addon]\nurl = "http://[::1"\n', 2, "addon.url",
         "'http://[::1' is not a URL: Invalid IPv6 URL"),
        ('[addon]\nurl = "http://localhost:99999"\n', 2, "addon.url",
         "'http://localhost:99999' has no valid port: Port out of range 0-65535"),
        ('[addon]\nurl = "http://local host"\n', 2, "addon.url",
         "'http://local host' is not a URL: it contains a space or a control character"),
        ("[proxy]\nport = 1000000000000000000000\n", 2, "proxy.port",
         "1000000000000000000000 is not a port number (0-65535; 0 = any free port)"),
        ("[proxy]\nport = 0x" + "f" * 5000 + "\n", 2, "proxy.port",
         "a number that large is not a port number (0-65535; 0 = any free port)"),
        ("[tunnel]\nhealth_timeout = nan\n", 2, "tunnel.health_timeout",
         "nan is not a number of seconds"),
        ("[tunnel]\nhealth_interval = -inf\n", 2, "tunnel.health_interval",
         "-inf is not a number of seconds"),
        ("[tunnel]\nhealth_interval = 1e300\n", 2, "tunnel.health_interval",
         "1e+300 seconds is more than a day (86400)"),
        ("[tunnel]\nhealth_timeout = 1" + "0" * 400 + "\n", 2, "tunnel.health_timeout",
         "is more than a day (86400 seconds)"),
        ('descriptor = "a\\u0000.json"\n', 1, "descriptor", "contains a NUL character (\\u0000)"),
        ('descriptor = ""\n', 1, "descriptor", "must not be empty"),
        ('[tunnel.ngrok]\npath = "~no-such-user-here/ngrok"\n', 2, "tunnel.ngrok.path",
         "'~no-such-user-here/ngrok': Could not determine home directory"),
        ('[tunnel.ngrok]\ndomain = "[::1"\n', 2, "tunnel.ngrok.domain",
         "'[::1' is not a domain name"),
        ('[tunnel.ssh]\nurl_pattern = "a{99999999999}"\n', 2, "tunnel.ssh.url_pattern",
         "not a regular expression Python can compile: the repetition number is too large"),
        ("[tunnel.ssh]\noptions = [[1]]\n", 2, "tunnel.ssh.options",
         "an array is not an ssh option: each must be a string Key=Value"),
        ('[tunnel]\nprovider = "ssh"\npublic_url = "https://{port:>999999999}.x"\n', 3,
         "tunnel.public_url", "'https://{port:>999999999}.x' is not a URL template: write "
         "{port} alone, without a format"),
    ],
)  # fmt: skip
def test_hostile_values_name_line_and_key(
    config_path: Path, text: str, line: int, key: str, message: str
) -> None:
    error = config_error(text, config_path)
    assert (error.line, error.key, error.message) == (line, key, message)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('descriptor = "a"\nx = ' + "[" * 3000 + "\n", 2,
         "not valid TOML: arrays or inline tables are nested too deeply"),
        ("[proxy]\n\nport = " + "9" * 5000 + "\n", 3,
         "not valid TOML: a number has more than 4300 digits"),
    ],
)  # fmt: skip
def test_what_tomllib_cannot_read_names_the_line(
    config_path: Path, text: str, line: int, message: str
) -> None:
    error = config_error(text, config_path)
    assert (error.line, error.key, error.message) == (line, None, message)


def test_line_numbers_count_only_newlines(config_path: Path) -> None:
    error = config_error('descriptor = "a\u2028b"\n[proxy]\nprot = 1\n', config_path)
    assert (error.line, error.key) == (3, "proxy.prot")


@pytest.mark.parametrize(
    "url", ["https://me:ATATT3xSECRET@example.atlassian.net", "http://user@127.0.0.1:2990/jira"]
)
def test_credentials_in_a_host_url_are_refused_without_being_echoed(
    config_path: Path, url: str
) -> None:
    text = f'[[hosts]]\nname = "h"\nurl = "{url}"\nusername = "me"\npassword_env = "T"\n'
    error = config_error(text, config_path)
    assert (error.line, error.key) == (3, "hosts[0].url")
    assert error.message == "the URL has a user name or password in it (before the '@')"
    assert "SECRET" not in str(error)
    assert "user@" not in str(error)

"""`connect-dev init`: from flags, and from questions on a real (pseudo-)terminal; the file it
writes loads as `up` loads it and never holds a secret; `init --example` is the packaged
example of every key."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from connect_devloop.commands.init import Answers, example_text, render_config
from connect_devloop.config import _SCHEMA, load_config

from .e2e import CONNECT_DEV

ROOT = Path(__file__).resolve().parent.parent
PACKAGED_EXAMPLE = ROOT / "connect_devloop" / "config.example.toml"
# An assignment (not a comment) of a key that would hold a secret.
SECRET_KEY = re.compile(r"^\s*(password|authtoken|token|api_token|secret)\s*=", re.M)


def init(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CONNECT_DEV, "init", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=30,
        check=False,
        stdin=subprocess.DEVNULL,  # no terminal: nothing is asked
        env={**os.environ, **(env or {})},
    )


def assert_no_secret(text: str) -> None:
    assert SECRET_KEY.search(text) is None, text


# --- --example ------------------------------------------------------------------------------------


def test_example_prints_the_example_shipped_in_the_package(tmp_path: Path) -> None:
    result = init("--example", cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == PACKAGED_EXAMPLE.read_text(encoding="utf-8") == example_text()
    # Redirected to a file, it is a config `up` loads.
    path = tmp_path / "connect-dev.toml"
    path.write_text(result.stdout, encoding="utf-8")
    assert load_config(path).hosts[0].name == "dev-jira"


def test_the_repository_copy_of_the_example_is_the_packaged_one() -> None:
    """Both files stay: the root one is what people browsing the repository (and older docs)
    find; the packaged one is what `init --example` prints. Edit either, then copy it over the
    other."""
    root = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    assert root == PACKAGED_EXAMPLE.read_text(encoding="utf-8"), (
        "config.example.toml and connect_devloop/config.example.toml differ: copy the edited "
        "one over the other"
    )


TABLE_HEADER = re.compile(r"^#? ?\[{1,2}([a-z.]+)\]{1,2}\s*$", re.M)


def example_sections(text: str) -> dict[str, str]:
    """Each table's part of the example (commented-out tables included), "" the top level."""
    sections: dict[str, str] = {}
    parts = TABLE_HEADER.split(text)
    sections[""] = parts[0]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sections[name] = sections.get(name, "") + body
    return sections


def test_the_example_names_every_key_of_the_schema() -> None:
    sections = example_sections(example_text())
    missing = {
        f"[{table}] {key}" if table else key
        for table, keys in _SCHEMA.items()
        for key in keys
        if f"{table}.{key}".lstrip(".") not in _SCHEMA  # a table of its own: checked as one
        and not re.search(rf"^#? ?{re.escape(key)} = ", sections.get(table, ""), re.M)
    }
    assert missing == set()


def test_example_takes_no_other_option(tmp_path: Path) -> None:
    result = init("--example", "--force", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == (
        "connect-dev: error: --example prints the example and takes no other option (not "
        "--force)\n"
        "  hint: Redirect it to start from every key: connect-dev init --example > "
        "connect-dev.toml\n"
    )
    assert not (tmp_path / "connect-dev.toml").exists()


# --- from flags -----------------------------------------------------------------------------------


def test_without_a_terminal_and_flags_it_writes_the_defaults(tmp_path: Path) -> None:
    result = init(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == (
        "wrote connect-dev.toml: no secret in it; every key, explained: connect-dev init "
        "--example\n"
        "  note: atlassian-connect.json is not there yet: `up` installs it once it is "
        "(connect-dev validate checks it)\n"
        "next:\n"
        "  # start your add-on server at http://localhost:3000, then:\n"
        "  # `up` asks once for the password of admin:\n"
        "  connect-dev up  # install and watch; q or Ctrl-C: uninstall and quit\n"
    )
    text = (tmp_path / "connect-dev.toml").read_text(encoding="utf-8")
    assert_no_secret(text)
    config = load_config(tmp_path / "connect-dev.toml")
    assert config.descriptor_path == tmp_path / "atlassian-connect.json"
    assert config.addon_url == "http://localhost:3000"
    assert config.tunnel.provider == "auto"
    assert config.tunnel_provider == "none"  # the host is on loopback
    (host,) = config.hosts
    assert (host.name, host.url, host.product, host.username) == (
        "local-jira",
        "http://localhost:2990/jira",
        "jira",
        "admin",
    )
    assert host.password is None
    assert host.password_env is None


def test_a_cloud_host_from_flags_says_to_log_in_first(tmp_path: Path) -> None:
    (tmp_path / "atlassian-connect.json").write_text("{}", encoding="utf-8")
    result = init(
        "--host-url",
        "https://your-site.atlassian.net/wiki/",
        "--host-user",
        "me@example.com",
        "--addon-url",
        "http://127.0.0.1:4000/",
        cwd=tmp_path,
        env={"NGROK_AUTHTOKEN": "", "CONFLUENCE_API_TOKEN": "never-in-the-file"},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "next:",
        "  connect-dev login your-site-confluence  # the API token of me@example.com, into the "
        "OS keychain",
        "  connect-dev login --ngrok               # the ngrok authtoken (or set NGROK_AUTHTOKEN)",
        "  # start your add-on server at http://127.0.0.1:4000, then:",
        "  connect-dev up                          # install and watch; q or Ctrl-C: uninstall "
        "and quit",
    ]
    text = (tmp_path / "connect-dev.toml").read_text(encoding="utf-8")
    assert_no_secret(text)
    assert "never-in-the-file" not in text
    assert "#   connect-dev login your-site-confluence\n" in text
    assert '# password_env = "CONFLUENCE_API_TOKEN"\n' in text
    config = load_config(tmp_path / "connect-dev.toml")
    (host,) = config.hosts
    assert (host.url, host.product, host.username) == (
        "https://your-site.atlassian.net/wiki",
        "confluence",
        "me@example.com",
    )
    assert config.addon_url == "http://127.0.0.1:4000"
    assert config.tunnel_provider == "ngrok"


def test_addon_command_is_written_as_up_reads_it(tmp_path: Path) -> None:
    result = init("--addon-command", 'python app.py --greeting "hello there"', cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "start your add-on server" not in result.stdout
    text = (tmp_path / "connect-dev.toml").read_text(encoding="utf-8")
    assert 'command = "python app.py --greeting \\"hello there\\""\n' in text
    config = load_config(tmp_path / "connect-dev.toml")
    assert config.addon.command == ("python", "app.py", "--greeting", "hello there")


def test_tunnel_ssh_and_none_from_flags(tmp_path: Path) -> None:
    result = init(
        "--host-url",
        "https://jira.example.com",
        "--host-user",
        "me",
        "--ssh-target",
        "me@vps.example.com",
        "--config",
        "ssh.toml",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "ssh.toml")
    assert (config.tunnel.provider, config.tunnel.ssh.target) == ("ssh", "me@vps.example.com")
    assert "connect-dev login --config ssh.toml jira-jira" in result.stdout
    assert "connect-dev login --ngrok" not in result.stdout

    result = init(
        "--host-url",
        "https://jira.example.com",
        "--host-user",
        "me",
        "--tunnel",
        "none",
        "--public-url",
        "https://tunnel.example.net",
        "--config",
        "none.toml",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    config = load_config(tmp_path / "none.toml")
    assert (config.tunnel.provider, config.tunnel.public_url) == (
        "none",
        "https://tunnel.example.net",
    )


def test_the_addon_url_defaults_to_the_descriptors_local_base_url(tmp_path: Path) -> None:
    (tmp_path / "atlassian-connect.json").write_text(
        '{"key": "a", "baseUrl": "http://localhost:5005/app/"}', encoding="utf-8"
    )
    result = init(cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "note:" not in result.stdout
    assert load_config(tmp_path / "connect-dev.toml").addon_url == "http://localhost:5005/app"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--host-url", "https://your-site.atlassian.net"],
            "--host-user is needed here: a host that is not on loopback needs the name of a site "
            "admin\n  hint: e.g. --host-user me@example.com (on Cloud, your Atlassian account "
            "email)",
        ),
        (
            ["--host-url", "localhost:2990"],
            "--host-url 'localhost:2990': not an http:// or https:// URL",
        ),
        (
            ["--tunnel", "ssh"],
            "--ssh-target is needed here: the ssh tunnel needs a server: user@host, or a Host of "
            "~/.ssh/config\n  hint: e.g. --ssh-target me@my-vps.example.com",
        ),
        (
            ["--tunnel", "ngrok", "--public-url", "https://x.example"],
            "--public-url goes with --tunnel none, not ngrok\n"
            "  hint: Add --tunnel none, or leave --public-url out.",
        ),
        (
            ["--addon-command", "node 'app.js"],
            '--addon-command "node \'app.js": cannot be split '
            "into words as a shell would: No closing quotation",
        ),
    ],
)
def test_wrong_flags_exit_2_and_write_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = init(*args, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"connect-dev: error: {message}\n"
    assert list(tmp_path.iterdir()) == []


def test_an_existing_file_is_kept_without_force(tmp_path: Path) -> None:
    path = tmp_path / "connect-dev.toml"
    path.write_text("# mine\n", encoding="utf-8")
    result = init(cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"connect-dev: error: {path} is already there; nothing written\n"
        "  hint: Pass --force to replace it, or --config PATH to write another file.\n"
    )
    assert path.read_text(encoding="utf-8") == "# mine\n"

    result = init("--force", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_config(path).hosts[0].name == "local-jira"
    assert [p.name for p in tmp_path.iterdir()] == ["connect-dev.toml"]  # no temporary left


def test_config_names_a_directory_or_a_file(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    result = init("--config", "project", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote project/connect-dev.toml:")
    assert "connect-dev up --config project/connect-dev.toml " in result.stdout
    assert load_config(tmp_path / "project" / "connect-dev.toml").project_dir == (
        tmp_path / "project"
    )


@pytest.mark.parametrize(
    "value", ['quote " and back\\slash', "tab\there", "new\nline", "dél\x7f", "'single'"]
)
def test_any_text_is_written_as_a_toml_string_that_reads_back(value: str) -> None:
    text = render_config(Answers(addon_command=f"run {value}", descriptor=f"{value}.json"))
    data = tomllib.loads(text)
    assert data["descriptor"] == f"{value}.json"
    assert data["addon"]["command"] == f"run {value}"


# --- on a terminal --------------------------------------------------------------------------------


class Terminal:
    """The controlling side of a pseudo-terminal: what was written to it, read as it comes."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.screen = b""  # everything so far
        self.unread = b""

    def expect(self, marker: bytes, timeout: float = 20.0) -> None:
        """Wait until ``marker`` has been written; what follows it stays unread."""
        deadline = time.monotonic() + timeout
        while marker not in self.unread:
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {marker!r}, saw {self.unread!r}"
            readable, _, _ = select.select([self.fd], [], [], left)
            if readable:
                try:
                    chunk = os.read(self.fd, 1024)
                except OSError:  # the other side closed (Linux says EIO)
                    chunk = b""
                assert chunk, f"the terminal closed before {marker!r}; saw {self.unread!r}"
                self.screen += chunk
                self.unread += chunk
        self.unread = self.unread.split(marker, 1)[1]

    def type(self, line: bytes) -> None:
        os.write(self.fd, line)


def test_on_a_terminal_it_asks_a_few_questions_with_defaults(tmp_path: Path) -> None:
    import pty

    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [*CONNECT_DEV, "init"],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        cwd=tmp_path,
        env={**os.environ, "NGROK_AUTHTOKEN": ""},
        start_new_session=True,
    )
    os.close(child_fd)
    answers = [
        (b"Descriptor [atlassian-connect.json]: ", b""),
        (b"Add-on server URL [http://localhost:3000]: ", b"http://localhost:4000"),
        (b"Command that starts it (empty: you start it yourself): ", b"npm start"),
        (
            b"Jira or Confluence URL (context path included) [http://localhost:2990/jira]: ",
            b"your-site.atlassian.net",  # not a URL: said, and asked again
        ),
        (b"  not an http:// or https:// URL\r\n", None),
        (
            b"(context path included) [http://localhost:2990/jira]: ",
            b"https://your-site.atlassian.net",
        ),
        (b"Admin user on it (on Cloud: your Atlassian email): ", b""),  # needed: asked again
        (b"needs the name of a site admin\r\n", None),
        (b"Admin user on it (on Cloud: your Atlassian email): ", b"me@example.com"),
        (b"ngrok, ssh or none [auto]: ", b""),
    ]
    terminal = Terminal(main_fd)
    try:
        terminal.expect(b"Enter keeps the [default]. Nothing secret is asked")
        for prompt, answer in answers:
            terminal.expect(prompt)
            if answer is not None:
                terminal.type(answer + b"\n")
        terminal.expect(b"uninstall and quit")
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        os.close(main_fd)
    text = terminal.screen.decode().replace("\r\n", "\n")
    assert "wrote connect-dev.toml: no secret in it" in text
    assert "connect-dev login your-site-jira  # the API token of me@example.com" in text
    assert "start your add-on server" not in text  # `up` runs it: npm start
    written = (tmp_path / "connect-dev.toml").read_text(encoding="utf-8")
    assert_no_secret(written)
    config = load_config(tmp_path / "connect-dev.toml")
    assert config.addon_url == "http://localhost:4000"
    assert config.addon.command == ("npm", "start")
    (host,) = config.hosts
    assert (host.name, host.url, host.username) == (
        "your-site-jira",
        "https://your-site.atlassian.net",
        "me@example.com",
    )
    assert config.tunnel.provider == "auto"


def test_on_a_terminal_flags_answer_their_questions(tmp_path: Path) -> None:
    """Only what the flags leave out is asked; end of input stops without writing."""
    import pty

    main_fd, child_fd = pty.openpty()
    process = subprocess.Popen(
        [
            *CONNECT_DEV,
            "init",
            "--descriptor",
            "app/descriptor.json",
            "--addon-url",
            "http://localhost:3000",
            "--addon-command",
            "",
            "--host-url",
            "http://localhost:1990/confluence",
        ],
        stdin=child_fd,
        stdout=child_fd,
        stderr=child_fd,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(child_fd)
    terminal = Terminal(main_fd)
    try:
        terminal.expect(b"Admin user on it [admin]: ")
        terminal.type(b"\n")
        terminal.expect(b"[auto]: ")
        terminal.type(b"\x04")  # Ctrl-D: end of input
        terminal.expect(b"nothing written")
        assert process.wait(timeout=20) == 1
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=5)
        os.close(main_fd)
    screen = terminal.screen
    assert b"Descriptor" not in screen
    assert b"Add-on server URL" not in screen
    assert b"connect-dev: error: no answer (end of input); nothing written" in screen
    assert not (tmp_path / "connect-dev.toml").exists()

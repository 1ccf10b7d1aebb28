"""files.py and the two loaders on paths that are not plain files: each is refused at once with
a message naming the path, never read forever, never read whole when too big."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connect_devloop import descriptor
from connect_devloop.config import load_config
from connect_devloop.errors import ConfigError, DescriptorError
from connect_devloop.files import MAX_INPUT_BYTES, InputFileError, read_input_file

VALID = {
    "key": "my-addon",
    "baseUrl": "{{localBaseUrl}}",
    "authentication": {"type": "none"},
}


def reason(path: Path) -> str:
    with pytest.raises(InputFileError) as info:
        read_input_file(path)
    return info.value.reason


def descriptor_message(path: Path) -> str:
    with pytest.raises(DescriptorError) as info:
        descriptor.load(path)
    assert info.value.file == str(path)
    return str(info.value)


def config_message(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    return str(info.value)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "atlassian-connect.json"
    os.mkfifo(path)
    return path


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "s.json"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    yield path
    server.close()


def test_dev_zero_is_refused_at_once() -> None:
    path = Path("/dev/zero")
    assert reason(path) == "is a character device, not a regular file"
    assert descriptor_message(path) == "/dev/zero: $: is a character device, not a regular file"
    assert config_message(path) == "/dev/zero: is a character device, not a regular file"


def test_fifo_without_a_writer_does_not_block(fifo: Path) -> None:
    started = time.monotonic()
    assert reason(fifo) == "is a FIFO (named pipe), not a regular file"
    assert descriptor_message(fifo) == f"{fifo}: $: is a FIFO (named pipe), not a regular file"
    assert config_message(fifo) == f"{fifo}: is a FIFO (named pipe), not a regular file"
    assert time.monotonic() - started < 2


def test_socket(unix_socket: Path) -> None:
    assert reason(unix_socket) == "is a socket, not a regular file"
    assert descriptor_message(unix_socket) == f"{unix_socket}: $: is a socket, not a regular file"


def test_directory(tmp_path: Path) -> None:
    assert reason(tmp_path) == "is a directory, not a regular file"
    assert config_message(tmp_path) == f"{tmp_path}: is a directory, not a regular file"


def test_a_50_mb_sparse_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "atlassian-connect.json"
    with path.open("wb") as file:
        file.truncate(50 * 1000 * 1000)
    started = time.monotonic()
    assert descriptor_message(path) == f"{path}: $: larger than 5 MB (50 MB)"
    assert config_message(path) == f"{path}: larger than 5 MB (50 MB)"
    assert time.monotonic() - started < 2


def test_exactly_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b" " * MAX_INPUT_BYTES)
    assert len(read_input_file(path)) == MAX_INPUT_BYTES
    path.write_bytes(b" " * (MAX_INPUT_BYTES + 1))
    assert reason(path) == "larger than 5 MB (5,000,001 bytes)"


def test_symlink_loop(tmp_path: Path) -> None:
    path = tmp_path / "atlassian-connect.json"
    path.symlink_to(tmp_path / "other.json")
    (tmp_path / "other.json").symlink_to(path)
    message = "is a symbolic link loop (too many levels of symbolic links)"
    assert descriptor_message(path) == f"{path}: $: {message}"
    assert config_message(path) == f"{path}: {message}"


def test_broken_symlink_names_its_target(tmp_path: Path) -> None:
    path = tmp_path / "atlassian-connect.json"
    path.symlink_to("gone.json")
    assert reason(path) == "is a broken symbolic link (to gone.json, which does not exist)"


def test_symlink_to_a_file_outside_the_directory_is_followed(tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere" / "real.json"
    outside.parent.mkdir()
    outside.write_text(json.dumps(VALID))
    project = tmp_path / "project"
    project.mkdir()
    (project / "atlassian-connect.json").symlink_to(outside)
    assert descriptor.load(project / "atlassian-connect.json").key == "my-addon"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads through any permission")
def test_unreadable_path_component(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "atlassian-connect.json").write_text(json.dumps(VALID))
    locked.chmod(0)
    try:
        path = locked / "atlassian-connect.json"
        assert descriptor_message(path) == f"{path}: $: permission denied"
        assert config_message(path) == f"{path}: permission denied"
    finally:
        locked.chmod(0o700)


def test_a_file_as_a_path_component(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    assert reason(tmp_path / "file" / "x.json") == "a part of the path is not a directory"


def test_nul_in_the_path(tmp_path: Path) -> None:
    assert reason(tmp_path / "a\x00b") == "the path contains a NUL character"


def test_config_missing_names_a_close_file(tmp_path: Path) -> None:
    (tmp_path / "connect-dev.toml").write_text("")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "conect-dev.toml")
    assert str(info.value) == f"{tmp_path / 'conect-dev.toml'}: file not found"
    assert info.value.hint == f"Did you mean connect-dev.toml? ({tmp_path / 'connect-dev.toml'})"


def test_config_utf16_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "connect-dev.toml"
    path.write_bytes("[proxy]\nport = 1\n".encode("utf-16"))
    assert config_message(path) == f"{path}:1: is UTF-16 text; TOML must be UTF-8"
    path.write_bytes(b"\xef\xbb\xbf[proxy]\nport = 1\n")
    assert load_config(path).proxy_port == 1

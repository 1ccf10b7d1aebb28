"""Keyring backends for tests, so no test ever reads or writes the user's real keychain.

- ``MemoryKeyring``: a dict, installed in-process by the ``memory_keyring`` fixture.
- ``FileKeyring``: a JSON file named by ``CONNECT_DEV_TEST_KEYRING``, for ``connect-dev`` run as a
  subprocess (select it with ``subprocess_keyring_env``), so a secret one process stores another
  can read, as with a real keychain.

Both have a negative priority, so keyring never picks them by itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

REPO_ROOT = Path(__file__).resolve().parent.parent
FILE_ENV = "CONNECT_DEV_TEST_KEYRING"


class MemoryKeyring(KeyringBackend):
    priority = -5  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(f"no entry for {username!r}")


class FileKeyring(KeyringBackend):
    priority = -5  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ[FILE_ENV])

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        return dict(data)

    def _save(self, data: dict[str, str]) -> None:
        self.path.write_text(json.dumps(data), encoding="utf-8")

    def get_password(self, service: str, username: str) -> str | None:
        return self._load().get(f"{service}\t{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._load()
        data[f"{service}\t{username}"] = password
        self._save(data)

    def delete_password(self, service: str, username: str) -> None:
        data = self._load()
        if data.pop(f"{service}\t{username}", None) is None:
            raise PasswordDeleteError(f"no entry for {username!r}")
        self._save(data)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    """The in-process keychain for the test (imported into a test module, it is autouse)."""
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def subprocess_keyring_env(keyring_file: Path | None) -> dict[str, str]:
    """Environment for a ``connect-dev`` subprocess: ``FileKeyring`` at ``keyring_file``, or, with
    ``None``, no keychain at all (``fail.Keyring``, as on a headless machine)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    if keyring_file is None:
        env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
        env.pop(FILE_ENV, None)
    else:
        env["PYTHON_KEYRING_BACKEND"] = "tests.keyrings.FileKeyring"
        env[FILE_ENV] = str(keyring_file)
    return env

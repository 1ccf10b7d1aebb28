"""ledger.py: the atomic, private ledger file and the per-project lock (across processes)."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connect_devloop.errors import DevloopError, LedgerError
from connect_devloop.ledger import Ledger, LedgerEntry, ProjectLock, new_entry

DAMAGED_HINT = (
    "connect-dev will not write over it: it records where the add-on may still be installed. "
    "Fix it, or uninstall the add-on by hand (Manage apps) on the hosts it names and delete it."
)
LOCK_HINT = (
    "Stop it first (Ctrl-C in its terminal), or run this one from another project directory."
)

# Holds a ProjectLock until killed; says "locked" once it has it.
HOLDER = """
import sys
from pathlib import Path
from connect_devloop.ledger import ProjectLock

lock = ProjectLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
sys.stdin.read()
"""


def entry(
    url: str = "https://a.atlassian.net", key: str = "my-addon", **changes: object
) -> LedgerEntry:
    fields: dict[str, object] = {
        "host": "dev-jira",
        "url": url,
        "username": "me@example.com",
        "key": key,
        "since": 1_700_000_000.5,
        "pid": 4242,
    }
    fields.update(changes)
    return LedgerEntry(**fields)  # type: ignore[arg-type]


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / ".connect-dev" / "ledger.json")


# --- reading ------------------------------------------------------------------------------------


def test_missing_file_is_an_empty_ledger(ledger: Ledger) -> None:
    assert ledger.entries() == []
    assert ledger.entries_for("https://a.atlassian.net") == []
    assert not ledger.path.parent.exists()


GOOD = '"host": "h", "url": "u", "username": "x", "key": "k", "since": 1, "pid": 2'


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "not JSON (line 1, column 1: Expecting value)"),
        ("not json", "not JSON (line 1, column 1: Expecting value)"),
        ("{", "not JSON (line 1, column 2: Expecting property name enclosed in double quotes)"),
        ("[]", "expected a JSON object, found a list"),
        ("null", "expected a JSON object, found null"),
        ('{"version": 1}', '"entries" must be a list, found nothing'),
        ('{"entries": 5}', '"entries" must be a list, found a number'),
        ('{"entries": {}}', '"entries" must be a list, found an object'),
        ('{"entries": [5]}', "entries[0] must be an object, found a number"),
        ('{"entries": [[]]}', "entries[0] must be an object, found a list"),
        ('{"entries": [{"host": "h"}]}', 'entries[0]: "url" must be a string, found nothing'),
        (
            '{"entries": [{' + GOOD.replace('"k"', "null") + "}]}",
            'entries[0]: "key" must be a string, found null',
        ),
        (
            '{"entries": [{' + GOOD.replace('"u"', "8") + "}]}",
            'entries[0]: "url" must be a string, found a number',
        ),
        (
            '{"entries": [{' + GOOD.replace('"pid": 2', '"pid": "2"') + "}]}",
            'entries[0]: "pid" must be an integer, found a string',
        ),
        (
            '{"entries": [{' + GOOD.replace('"since": 1', '"since": true') + "}]}",
            'entries[0]: "since" must be a number, found true',
        ),
        ('{"entries": [{' + GOOD + ', "extra": 3}]}', 'entries[0]: unknown field "extra"'),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to be connect-dev's JSON"),
    ],
)
def test_damaged_file(ledger: Ledger, text: str, reason: str) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_text(text)

    with pytest.raises(LedgerError) as info:
        ledger.entries()

    assert str(info.value) == f"{ledger.path}: the ledger is damaged: {reason}"
    assert info.value.hint == DAMAGED_HINT
    assert isinstance(info.value, DevloopError)
    assert info.value.__cause__ is not None


def test_a_ledger_that_is_not_utf8_is_damaged(ledger: Ledger) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_bytes(b'{"entries": ["\xff"]}')
    with pytest.raises(LedgerError) as info:
        ledger.entries()
    assert str(info.value) == f"{ledger.path}: the ledger is damaged: not UTF-8 text (byte 15)"


def test_a_huge_ledger_is_refused_without_reading_it_whole(ledger: Ledger) -> None:
    ledger.path.parent.mkdir(parents=True)
    with ledger.path.open("wb") as handle:
        handle.truncate(50 * 1000 * 1000)  # sparse: no disk used
    with pytest.raises(LedgerError) as info:
        ledger.entries()
    assert str(info.value) == (f"{ledger.path}: the ledger is damaged: larger than 10 MB (50 MB)")
    assert info.value.hint == DAMAGED_HINT


def test_damaged_file_blocks_record_and_remove(ledger: Ledger) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_text("garbage")
    with pytest.raises(LedgerError):
        ledger.record(entry())
    with pytest.raises(LedgerError):
        ledger.remove("https://a.atlassian.net", "my-addon")
    assert ledger.path.read_text() == "garbage"


def test_unreadable_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path)
    with pytest.raises(LedgerError) as info:
        ledger.entries()
    assert str(info.value) == (
        f"{tmp_path}: cannot read the ledger: is a directory, not a regular file"
    )
    assert info.value.hint == (
        "Make it a readable file of yours (connect-dev writes it with mode 0600), or move "
        f"{tmp_path.parent} away to start afresh."
    )


# --- writing ------------------------------------------------------------------------------------


def test_record_writes_a_private_file_with_the_documented_format(ledger: Ledger) -> None:
    ledger.record(entry())

    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    assert json.loads(ledger.path.read_text()) == {
        "version": 1,
        "comment": "Written by connect-dev: add-ons that may still be installed. "
        "`connect-dev down` removes them.",
        "entries": [
            {
                "host": "dev-jira",
                "url": "https://a.atlassian.net",
                "username": "me@example.com",
                "key": "my-addon",
                "since": 1_700_000_000.5,
                "pid": 4242,
            }
        ],
    }
    assert ledger.path.read_text().endswith("}\n")
    assert ledger.entries() == [entry()]


def test_every_write_leaves_mode_0600_and_no_temp_file(ledger: Ledger) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_text('{"version": 1, "entries": []}')
    ledger.path.chmod(0o644)
    inode = ledger.path.stat().st_ino

    ledger.record(entry())
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    # Replaced by rename, not rewritten in place: a reader never sees half a file.
    assert ledger.path.stat().st_ino != inode

    ledger.record(entry(key="other"))
    ledger.remove("https://a.atlassian.net", "my-addon")
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in ledger.path.parent.iterdir()) == ["ledger.json"]


def test_mode_does_not_depend_on_the_umask(ledger: Ledger) -> None:
    old = os.umask(0)
    try:
        ledger.record(entry())
    finally:
        os.umask(old)
    assert stat.S_IMODE(ledger.path.stat().st_mode) == 0o600


def test_parent_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    ledger = Ledger(blocker / "ledger.json")

    with pytest.raises(LedgerError) as info:
        ledger.record(entry())

    assert str(info.value) == (
        f"{ledger.path}: cannot read the ledger: {blocker} is a file, not a directory"
    )
    assert info.value.hint == (
        f"connect-dev keeps its state in a directory of that name; move the file away "
        f"(`mv {blocker} {blocker}.bak`) and run the command again."
    )
    assert blocker.read_text() == ""


def test_failed_write_keeps_the_old_file_and_leaves_no_temp_file(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger.record(entry())
    before = ledger.path.read_bytes()

    def no_space(source: object, target: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("connect_devloop.ledger.os.replace", no_space)
    with pytest.raises(LedgerError) as info:
        ledger.record(entry(key="other"))
    monkeypatch.undo()

    assert str(info.value) == (
        f"{ledger.path}: cannot write the ledger: {os.strerror(errno.ENOSPC)}"
    )
    assert info.value.hint == (
        f"Make {ledger.path.parent} writable by you (connect-dev creates it with mode 0700), "
        "and check the disk is not full."
    )
    assert isinstance(info.value.__cause__, OSError)
    assert ledger.path.read_bytes() == before
    assert sorted(p.name for p in ledger.path.parent.iterdir()) == ["ledger.json"]


def test_record_and_entries_for(ledger: Ledger) -> None:
    a1 = entry("https://a.atlassian.net", "one")
    a2 = entry("https://a.atlassian.net", "two")
    b1 = entry("https://b.atlassian.net", "one", host="dev-b")

    for item in (a1, a2, b1):
        ledger.record(item)

    assert ledger.entries() == [a1, a2, b1]
    assert ledger.entries_for("https://a.atlassian.net") == [a1, a2]
    assert ledger.entries_for("https://b.atlassian.net") == [b1]
    assert ledger.entries_for("https://a.atlassian.net/") == []


def test_same_url_and_key_from_the_same_pid_keeps_the_first_entry(ledger: Ledger) -> None:
    first = entry(since=100.0)
    ledger.record(first)
    mtime = ledger.path.stat().st_mtime_ns

    ledger.record(entry(since=200.0, host="renamed"))

    assert ledger.entries() == [first]
    assert ledger.path.stat().st_mtime_ns == mtime


def test_same_url_and_key_from_another_pid_keeps_one_entry_and_the_first_since(
    ledger: Ledger,
) -> None:
    ledger.record(entry(since=100.0, pid=1))
    ledger.record(entry(key="other", since=150.0, pid=1))

    ledger.record(entry(since=200.0, pid=2, username="admin"))

    assert ledger.entries() == [
        entry(key="other", since=150.0, pid=1),
        entry(since=100.0, pid=2, username="admin"),
    ]


def test_remove(ledger: Ledger) -> None:
    ledger.record(entry("https://a.atlassian.net", "one"))
    ledger.record(entry("https://a.atlassian.net", "two"))
    ledger.record(entry("https://b.atlassian.net", "one"))

    ledger.remove("https://a.atlassian.net", "one")

    assert ledger.entries() == [
        entry("https://a.atlassian.net", "two"),
        entry("https://b.atlassian.net", "one"),
    ]
    ledger.remove("https://a.atlassian.net", "two")
    ledger.remove("https://b.atlassian.net", "one")
    assert ledger.entries() == []
    assert json.loads(ledger.path.read_text())["entries"] == []


def test_remove_of_an_absent_entry_does_not_write(ledger: Ledger) -> None:
    ledger.remove("https://a.atlassian.net", "my-addon")
    assert not ledger.path.exists()

    ledger.record(entry())
    mtime = ledger.path.stat().st_mtime_ns
    ledger.remove("https://a.atlassian.net", "other-key")
    ledger.remove("https://other.atlassian.net", "my-addon")
    assert ledger.path.stat().st_mtime_ns == mtime
    assert ledger.entries() == [entry()]


def test_reads_see_writes_of_another_ledger_object(ledger: Ledger) -> None:
    Ledger(ledger.path).record(entry())
    assert ledger.entries() == [entry()]


def test_new_entry() -> None:
    before = time.time()
    made = new_entry("dev-jira", "https://a.atlassian.net", "me@example.com", "my-addon")
    after = time.time()

    assert (made.host, made.url, made.username, made.key, made.pid) == (
        "dev-jira",
        "https://a.atlassian.net",
        "me@example.com",
        "my-addon",
        os.getpid(),
    )
    assert before <= made.since <= after


# --- ProjectLock --------------------------------------------------------------------------------


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / ".connect-dev" / "lock"


@pytest.fixture
def holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the project lock."""
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "locked\n"
            yield process
        finally:
            process.kill()
            process.wait()


def test_lock_writes_the_pid_and_creates_the_directory(lock_path: Path) -> None:
    lock = ProjectLock(lock_path)
    lock.acquire()
    try:
        assert lock_path.read_text() == str(os.getpid())
    finally:
        lock.release()


def test_lock_is_exclusive_within_a_process(lock_path: Path) -> None:
    first, second = ProjectLock(lock_path), ProjectLock(lock_path)
    with first.held():
        with pytest.raises(LedgerError) as info:
            second.acquire()
        assert str(info.value) == (
            f"another connect-dev is already running in this project (pid {os.getpid()})"
        )
    # Released by held(): now the second one gets it.
    with second.held():
        assert lock_path.read_text() == str(os.getpid())


def test_release_is_idempotent(lock_path: Path) -> None:
    lock = ProjectLock(lock_path)
    lock.release()
    lock.acquire()
    lock.release()
    lock.release()
    with lock.held():
        pass


def test_held_releases_on_error(lock_path: Path) -> None:
    lock = ProjectLock(lock_path)
    with pytest.raises(RuntimeError), lock.held():
        raise RuntimeError("boom")
    with ProjectLock(lock_path).held():
        pass


def test_lock_held_by_another_process_names_its_pid(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LedgerError) as info:
        ProjectLock(lock_path).acquire()

    assert str(info.value) == (
        f"another connect-dev is already running in this project (pid {holder.pid})"
    )
    assert info.value.hint == LOCK_HINT
    # The failed attempt must not have overwritten the holder's pid.
    assert lock_path.read_text() == str(holder.pid)


def test_lock_is_released_when_its_holder_is_killed(
    lock_path: Path, holder: subprocess.Popen[str]
) -> None:
    with pytest.raises(LedgerError):
        ProjectLock(lock_path).acquire()

    holder.send_signal(signal.SIGKILL)
    assert holder.wait() == -signal.SIGKILL

    lock = ProjectLock(lock_path)
    with lock.held():
        assert lock_path.read_text() == str(os.getpid())


def test_stale_pid_in_the_file_does_not_block(lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text("999999999")
    with ProjectLock(lock_path).held():
        assert lock_path.read_text() == str(os.getpid())


def test_lock_held_before_its_pid_is_written(lock_path: Path) -> None:
    # The holder has the flock but has not written its pid yet (or is not a ProjectLock).
    lock_path.parent.mkdir(parents=True)
    with lock_path.open("a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(LedgerError) as info:
            ProjectLock(lock_path).acquire()
    # Only the stable part: the "(pid another process)" wording is reported as unclear.
    assert str(info.value).startswith("another connect-dev is already running in this project")
    assert info.value.hint == LOCK_HINT


# --- the state directory ------------------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o000, 0o277])
def test_the_state_directory_is_created_0700_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        Ledger(tmp_path / "a" / ".connect-dev" / "ledger.json").record(entry())
        with ProjectLock(tmp_path / "b" / ".connect-dev" / "lock").held():
            pass
    finally:
        os.umask(old)
    for project in ("a", "b"):
        mode = (tmp_path / project / ".connect-dev").stat().st_mode
        assert stat.S_IMODE(mode) == 0o700, project


def test_an_existing_state_directory_keeps_its_mode(tmp_path: Path) -> None:
    (tmp_path / ".connect-dev").mkdir(mode=0o750)
    (tmp_path / ".connect-dev").chmod(0o750)
    Ledger(tmp_path / ".connect-dev" / "ledger.json").record(entry())
    assert stat.S_IMODE((tmp_path / ".connect-dev").stat().st_mode) == 0o750


def test_a_state_directory_that_is_a_file_stops_the_lock(tmp_path: Path) -> None:
    blocker = tmp_path / ".connect-dev"
    blocker.write_text("mine")
    with pytest.raises(LedgerError) as info:
        ProjectLock(blocker / "lock").acquire()
    assert str(info.value) == (
        f"{blocker}: is a file, not the directory connect-dev keeps its state in"
    )
    assert blocker.read_text() == "mine"


def test_a_lock_that_cannot_be_opened_names_it(lock_path: Path) -> None:
    lock_path.mkdir(parents=True)  # a directory where the lock file belongs
    with pytest.raises(LedgerError) as info:
        ProjectLock(lock_path).acquire()
    assert str(info.value) == (
        f"{lock_path}: cannot use the project lock: {os.strerror(errno.EISDIR)}"
    )
    assert info.value.hint == (
        f"It must be a file you can write (mode 0600) in {lock_path.parent}; remove it if it "
        "is anything else: connect-dev creates it again."
    )


def test_entries_are_parsed_again_only_when_the_file_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import connect_devloop.ledger as ledger_module

    path = tmp_path / ".connect-dev" / "ledger.json"
    writer, reader = Ledger(path), Ledger(path)
    writer.record(new_entry("a", "http://a", "u", "k"))
    parses = 0
    real_parse = ledger_module._parse_entries

    def counting_parse(data: object) -> list[LedgerEntry]:
        nonlocal parses
        parses += 1
        return real_parse(data)

    monkeypatch.setattr(ledger_module, "_parse_entries", counting_parse)
    assert [e.key for e in reader.entries()] == ["k"]
    assert [e.key for e in reader.entries()] == ["k"]
    assert parses == 1  # the second read found the same file
    writer.record(new_entry("b", "http://b", "u", "k2"))  # another process's atomic write
    assert [e.key for e in reader.entries()] == ["k", "k2"]
    assert parses == 2
    # A hand edit in place (same inode) is seen too.
    text = path.read_text().replace('"k2"', '"k22"')
    with path.open("r+", encoding="utf-8") as handle:
        handle.write(text)
    assert [e.key for e in reader.entries()] == ["k", "k22"]
    path.unlink()
    assert reader.entries() == []


async def test_concurrent_changes_are_written_together_and_each_is_durable_on_return(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".connect-dev" / "ledger.json"
    ledger = Ledger(path)
    writes = 0
    real_write = Ledger._write

    def counting_write(self: Ledger, entries: list[LedgerEntry]) -> None:
        nonlocal writes
        writes += 1
        real_write(self, entries)

    monkeypatch.setattr(Ledger, "_write", counting_write)

    async def install(n: int) -> None:
        await ledger.write_record(new_entry(f"h{n}", f"http://h{n}", "u", "k"))
        # What a crash right now would leave: the entry is on disk before the POST.
        assert f"http://h{n}" in {e.url for e in Ledger(path).entries()}

    await asyncio.gather(*(install(n) for n in range(50)))
    assert len(Ledger(path).entries()) == 50
    assert writes < 50, "concurrent records were not written together"
    await asyncio.gather(*(ledger.write_removal(f"http://h{n}", "k") for n in range(50)))
    assert Ledger(path).entries() == []


async def test_a_failed_group_write_fails_every_change_in_it(tmp_path: Path) -> None:
    (tmp_path / ".connect-dev").write_text("not a directory")
    ledger = Ledger(tmp_path / ".connect-dev" / "ledger.json")
    results = await asyncio.gather(
        *(ledger.write_record(new_entry("h", f"http://h{n}", "u", "k")) for n in range(3)),
        return_exceptions=True,
    )
    assert all(isinstance(result, LedgerError) for result in results), results


# --- the registrar's fields (Forge) -------------------------------------------------------------

# A ledger as connect-dev wrote it before the Forge registrar: no registrar, no revision.
OLD_FORMAT = """\
{
  "version": 1,
  "comment": "Written by connect-dev: add-ons that may still be installed.",
  "entries": [
    {
      "host": "local-jira",
      "url": "http://127.0.0.1:2990/jira",
      "username": "admin",
      "key": "my-addon",
      "since": 1795325438.0866203,
      "pid": 1638
    }
  ]
}
"""


def test_a_ledger_written_before_the_forge_registrar_still_loads(ledger: Ledger) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_text(OLD_FORMAT)

    [old] = ledger.entries()

    assert old == LedgerEntry(
        host="local-jira",
        url="http://127.0.0.1:2990/jira",
        username="admin",
        key="my-addon",
        since=1795325438.0866203,
        pid=1638,
    )
    assert (old.registrar, old.site, old.revision, old.confirmed) == ("upm", "", "", False)


def forge_entry(**changes: object) -> LedgerEntry:
    fields: dict[str, object] = {
        "username": "",
        "registrar": "forge",
        "site": "acme.atlassian.net",
        "product": "jira",
        "environment": "development",
        "revision": "5e1f0c2a9b3d",
    }
    return entry(url="https://acme.atlassian.net", **{**fields, **changes})


def test_a_forge_entry_records_where_and_which_revision(ledger: Ledger) -> None:
    ledger.record(forge_entry(confirmed=True))

    [written] = json.loads(ledger.path.read_text())["entries"]
    assert written == {
        "host": "dev-jira",
        "url": "https://acme.atlassian.net",
        "username": "",
        "key": "my-addon",
        "since": 1_700_000_000.5,
        "pid": 4242,
        "registrar": "forge",
        "site": "acme.atlassian.net",
        "product": "jira",
        "environment": "development",
        "revision": "5e1f0c2a9b3d",
        "confirmed": True,
    }
    assert Ledger(ledger.path).entries() == [forge_entry(confirmed=True)]


def test_a_upm_entry_is_written_as_before(ledger: Ledger) -> None:
    ledger.record(entry())
    [written] = json.loads(ledger.path.read_text())["entries"]
    assert list(written) == ["host", "url", "username", "key", "since", "pid"]


def test_the_same_process_records_a_new_revision_and_its_confirmation(ledger: Ledger) -> None:
    ledger.record(forge_entry(since=100.0))
    ledger.record(forge_entry(since=200.0, revision="a", host="renamed"))
    ledger.record(forge_entry(since=300.0, revision="a", confirmed=True))

    assert ledger.entries() == [forge_entry(since=100.0, revision="a", confirmed=True)]


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("registrar", '"ftp"', 'entries[0]: "registrar" must be one of upm, forge'),
        ("registrar", "1", 'entries[0]: "registrar" must be a string, found a number'),
        ("revision", "null", 'entries[0]: "revision" must be a string, found null'),
        ("confirmed", '"yes"', 'entries[0]: "confirmed" must be true or false, found a string'),
        ("site", "[]", 'entries[0]: "site" must be a string, found a list'),
    ],
)
def test_a_damaged_registrar_field(ledger: Ledger, field: str, value: str, reason: str) -> None:
    ledger.path.parent.mkdir(parents=True)
    ledger.path.write_text('{"entries": [{' + GOOD + f', "{field}": {value}' + "}]}")

    with pytest.raises(LedgerError) as info:
        ledger.entries()

    assert str(info.value) == f"{ledger.path}: the ledger is damaged: {reason}"


def test_new_entry_for_forge() -> None:
    made = new_entry(
        "cloud",
        "https://acme.atlassian.net",
        "",
        "my-addon",
        registrar="forge",
        site="acme.atlassian.net",
        product="jira",
        environment="staging",
        revision="r1",
    )
    assert (made.registrar, made.site, made.product, made.environment) == (
        "forge",
        "acme.atlassian.net",
        "jira",
        "staging",
    )
    assert (made.revision, made.confirmed) == ("r1", False)

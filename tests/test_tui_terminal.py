"""`connect-dev demo` on a real pseudo-terminal: the CLI picks the dashboard by itself, `q` tears
down, and the teardown's lines are printed after the screen closes; Ctrl-C twice forces."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pty
import struct
import sys
import termios
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from connect_devloop.ledger import Ledger


@dataclass
class Terminal:
    process: asyncio.subprocess.Process
    master: int
    output: bytearray = field(default_factory=bytearray)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    def on_readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed its side
            data = b""
        if not data:
            self.closed = True
            asyncio.get_running_loop().remove_reader(self.master)
        self.output.extend(data)
        self.changed.set()

    async def wait_for(self, text: str, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while text.encode() not in self.output:
                if self.closed:
                    raise AssertionError(f"exited before {text!r}:\n{self.text()}")
                self.changed.clear()
                await self.changed.wait()

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    async def exit_code(self, timeout: float = 30.0) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout)

    def text(self) -> str:
        return self.output.decode("utf-8", "replace")


@contextlib.asynccontextmanager
async def demo_on_a_terminal(
    directory: Path, *, preexec_fn: Callable[[], None] | None = None
) -> AsyncIterator[Terminal]:
    """`connect-dev demo` on a 120x40 pseudo-terminal (``preexec_fn`` runs in the child)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "connect_devloop",
        "demo",
        "--dir",
        str(directory),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "TERM": "xterm-256color"},
        start_new_session=True,
        preexec_fn=preexec_fn,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    asyncio.get_running_loop().add_reader(master, terminal.on_readable)
    try:
        yield terminal
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if not terminal.closed:
            asyncio.get_running_loop().remove_reader(master)
        os.close(master)


async def test_demo_on_a_terminal_opens_the_dashboard_and_q_uninstalls(tmp_path: Path) -> None:
    async with demo_on_a_terminal(tmp_path) as terminal:
        await terminal.wait_for("● ready")
        assert "Re-install all" in terminal.text()  # the footer, not a log line
        terminal.type(b"q")
        assert await terminal.exit_code() == 0
        await terminal.wait_for("stopped")
    after = terminal.text().rsplit("\x1b[?1049l", 1)[-1]  # what is left once the screen closed
    lines = [line.split(" ", 1)[1] for line in after.replace("\r", "").split("\n") if line]
    assert lines[-3:] == [
        "[demo-jira]  uninstalled connect-devloop-demo",
        "tunnel      none closed",
        "stopped",
    ]
    assert Ledger(tmp_path / ".connect-dev" / "ledger.json").entries() == []


async def test_demo_on_a_terminal_quits_at_once_on_a_second_ctrl_c(tmp_path: Path) -> None:
    async with demo_on_a_terminal(tmp_path) as terminal:
        await terminal.wait_for("● ready")
        terminal.type(b"\x03\x03")
        assert await terminal.exit_code() == 130
        await terminal.wait_for("forced exit; run `connect-dev down`")

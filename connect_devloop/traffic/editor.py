"""The user's editor, for ``connect-dev replay --edit`` and the dashboard's edit-and-replay."""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from ..errors import DevloopError

__all__ = ["edit_in_editor", "has_request"]


def edit_in_editor(text: str) -> str:
    """``text`` as the user left it after ``$VISUAL`` or ``$EDITOR`` (else vi); ``DevloopError``
    when the editor cannot start or fails. The file is 0600 (mkstemp) and removed afterwards;
    it holds no credential anyway (``replay.editable_text``)."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    descriptor, name = tempfile.mkstemp(prefix="connect-dev-replay-", suffix=".http")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            done = subprocess.run([*shlex.split(editor), name], check=False)
        except OSError as exc:
            raise DevloopError(
                f"cannot start the editor {editor!r}: {exc.strerror}",
                hint="Set $EDITOR (or $VISUAL) to an editor on PATH.",
            ) from exc
        if done.returncode != 0:
            raise DevloopError(
                f"the editor {editor!r} exited with status {done.returncode}: nothing was sent"
            )
        return Path(name).read_text(encoding="utf-8")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)


def has_request(text: str) -> bool:
    """Whether an edited request holds anything but comments (an empty file sends nothing)."""
    return any(line.strip() and not line.startswith("#") for line in text.splitlines())

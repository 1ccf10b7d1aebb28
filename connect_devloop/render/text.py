"""``--log-format text``: one readable line per event.

12:04:31.207 descriptor  my-addon valid, digest 3f2a9c1b7d0e
12:04:31.240 [dev-jira]  installing (startup)
12:04:31.301 [dev-jira]  installed my-addon in 61 ms
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from ..events import (
    AddonExited,
    AddonOutput,
    AddonRestarting,
    AddonStarted,
    AddonStatus,
    ConfigChanged,
    ConfigInvalid,
    ConfigReloaded,
    Deregistered,
    DeregistrationFailed,
    DescriptorInvalid,
    DescriptorLoaded,
    Error,
    Event,
    ForgeStep,
    HostAnswering,
    Kept,
    Lifecycle,
    Ready,
    Registered,
    Registering,
    RegistrationFailed,
    RequestServed,
    RestCall,
    Stopped,
    TunnelClosed,
    TunnelOpened,
    Warning,
)
from .output import LineOutput

__all__ = [
    "STOP_DASHBOARD",
    "STOP_TEXT",
    "TextRenderer",
    "addon_exit_status",
    "addon_refusal",
    "format_event",
]

# How to stop `up` and `demo`, in one wording wherever it is said (the `ready` line, the demo's
# banner, `up --help`, the README): the text mode has Ctrl-C, the dashboard q as well.
STOP_TEXT = "Ctrl-C: uninstall and quit"
STOP_DASHBOARD = "q or Ctrl-C: uninstall and quit"


# The last second formatted: a log line costs a strftime only when the second changes.
_last_second: tuple[int, str] = (-1, "")


def _clock(ts: float) -> str:
    # Rounded like the JSON log's round(ts, 3), so both logs show the same millisecond.
    global _last_second
    seconds, millis = divmod(round(ts * 1000), 1000)
    cached_second, text = _last_second
    if seconds != cached_second:
        text = time.strftime("%H:%M:%S", time.localtime(seconds))
        _last_second = (seconds, text)
    return f"{text}.{millis:03d}"


def _hint(hint: str | None) -> str:
    return f"\n             hint: {hint}" if hint else ""


def _problem(error: dict[str, object], path: str) -> str:
    where = ":".join(
        str(part)
        for part in (path, error.get("line"), error.get("column"))
        if part not in (None, "")
    )
    return f"{where}: {error.get('path')}: {error.get('message')}"


def format_event(event: Event, *, stop: str = STOP_TEXT) -> str:
    """The text line for an event (may hold a second, indented hint line). ``stop``: how to
    stop, as the ``ready`` line says it (the dashboard passes ``STOP_DASHBOARD``)."""
    if type(event) is RequestServed:  # nearly every line of a busy log: no pattern matching
        return _request_line(event)
    match event:
        case DescriptorLoaded(key=key, digest=digest):
            return f"descriptor  {key} valid, digest {digest}"
        case DescriptorInvalid(errors=errors, path=path, kept_digest=kept):
            problems = "; ".join(_problem(error, path) for error in errors)
            keeps = (
                f"revision {kept} stays installed"
                if kept
                else "nothing installed until it is valid"
            )
            return f"descriptor  INVALID, {keeps}: {problems}"
        case TunnelOpened(url=url, provider=provider, inspector_url=inspector):
            shown = f" ({provider} inspector: {inspector})" if inspector else ""
            return f"tunnel      {provider}: {url}{shown}"
        case TunnelClosed(provider=provider):
            return f"tunnel      {provider or 'tunnel'} closed"
        case Registering(host=host, reason=reason):
            return f"[{host}]  installing ({reason.replace('_', ' ')})"
        case Registered(host=host, key=key, unchanged=True):
            return f"[{host}]  {key} is installed already at this revision; nothing to do"
        case Registered(host=host, key=key, duration_ms=ms, enabled=enabled):
            disabled = " but it is DISABLED on the host (enable it in Manage apps)"
            return f"[{host}]  installed {key} in {ms} ms" + ("" if enabled else disabled)
        case RegistrationFailed(host=host, error=error, hint=hint):
            return f"[{host}]  install FAILED: {error}{_hint(hint)}"
        case Lifecycle(
            host=host,
            event=kind,
            client_key=client_key,
            verified=verified,
            reason=reason,
            addon_status=addon_status,
            addon_error=addon_error,
        ):
            check = "verified" if verified else "NOT verified"
            line = f"[{host}]  lifecycle {kind} from {client_key} ({check})"
            refused = addon_refusal(addon_status, addon_error)
            if refused:
                # A verified signature says nothing about the add-on having accepted it.
                line += f", NOT accepted: {refused}"
            if not verified and reason:
                line += f"\n             why: {reason}"
            return line
        case RequestServed():
            return _request_line(event)
        case RestCall():
            return _rest_call_line(event)
        case Deregistered(host=host, key=key, reason=reason, was_installed=was_installed):
            why = "" if reason == "shutdown" else f" ({reason.replace('_', ' ')})"
            if not was_installed:
                return f"[{host}]  {key or 'the add-on'} was not installed; nothing to remove{why}"
            return f"[{host}]  uninstalled {key or 'the add-on'}{why}"
        case DeregistrationFailed(host=host, key=key, error=error, hint=hint):
            return f"[{host}]  uninstall of {key or 'the add-on'} FAILED: {error}{_hint(hint)}"
        case Ready(public_url=url, installed=installed, hosts=hosts, waiting=waiting):
            line = f"ready       descriptor at {url}/atlassian-connect.json; {stop}"
            if installed < hosts:
                line += f"\n             waiting: {installed}/{hosts} hosts installed"
                if waiting:
                    line += "; not answering yet: " + ", ".join(waiting)
            return line
        case ForgeStep(host=host, step=step, state=state, duration_ms=ms):
            if state == "started":
                return f"[{host}]  forge {step} started"
            if state == "done":
                return f"[{host}]  forge {step} done in {_duration(ms)}"
            if state == "failed":
                return f"[{host}]  forge {step} FAILED after {_duration(ms)}"
            return f"[{host}]  forge {step} {state}"
        case Kept(host=host, key=key, revision=revision):
            down = "`connect-dev down` uninstalls it"
            if not revision:
                return f"[{host}]  left {key} as it is (its last install did not finish); {down}"
            return f"[{host}]  kept {key} installed (revision {revision}); {down}"
        case HostAnswering(host=host, answering=answering, seconds=seconds):
            if answering:
                return f"[{host}]  answers again (after {seconds:g} s)"
            return f"[{host}]  not answering after {seconds:.0f} s; still trying in the background"
        case AddonOutput(stream=stream, line=line):
            return f"addon {'err' if stream == 'stderr' else 'out'}   {line}"
        case AddonStarted(pid=pid, command=command, reason=reason, base_url=url, port=port):
            why = _ADDON_START_REASONS.get(reason, f" ({reason.replace('_', ' ')})")
            given = f" with PORT={port}, CONNECT_DEV_BASE_URL={url}" if url else ""
            return f"addon       started {command} (pid {pid}){why}{given}"
        case AddonStatus(answering=answering, url=url, detail=detail, seconds=seconds, hint=hint):
            if answering:
                after = f" ({seconds:.1f} s after its start)" if seconds else ""
                return f"addon       answers at {url}{after}"
            return f"addon       NOT answering at {url}: {detail}{_hint(hint)}"
        case AddonRestarting(detail=detail, reason=reason):
            return f"addon       restarting: {detail or reason.replace('_', ' ')}"
        case AddonExited():
            return _addon_exit_line(event)
        case ConfigInvalid(file=file, line=line, key=key, message=message, hint=hint):
            where = f"{file}:{line}" if line is not None else file
            about = f" {key}:" if key else ""
            return (
                f"config      INVALID, the running config stays: {where}:{about} {message}"
                f"{_hint(hint)}"
            )
        case ConfigChanged(applied=applied, needs_restart=needs_restart):
            parts = []
            if applied:
                parts.append("applied " + ", ".join(applied))
            if needs_restart:
                parts.append("RESTART NEEDED for " + ", ".join(needs_restart))
            return "config      " + ("; ".join(parts) or "back to the settings up started with")
        case ConfigReloaded(added=added, removed=removed, changed=changed):
            parts = [
                f"{label} {', '.join(names)}"
                for label, names in (("added", added), ("removed", removed), ("changed", changed))
                if names
            ]
            return "config      reloaded: " + ("; ".join(parts) or "no host changed")
        case Error(message=message, hint=hint):
            return f"error       {message}{_hint(hint)}"
        case Stopped():
            return "stopped"
        case Warning(message=message, hint=hint):
            return f"warning     {message}{_hint(hint)}"
    return f"{event.name}  {event.to_dict()}"


_ADDON_START_REASONS = {
    "startup": "",
    "files_changed": " after the change",
    "tunnel_changed": " for the new public URL",
    "crashed": " again after its crash",
}


def _rest_call_line(event: RestCall) -> str:
    """One line for an accepted call; for a refused one, what the app was answered, why, and
    for a qsh mismatch the site's canonical request and both qsh, one under the other."""
    who = f" by {event.app_key}" if event.app_key else ""
    line = f"[{event.host}]  REST {event.method} {event.path}{who}: {event.status}"
    if event.accepted:
        return line + " accepted"
    line += f" REFUSED ({event.reason})"
    indent = "\n             "
    if event.explanation:
        line += f"{indent}why: {event.explanation}"
    if event.reason == "qsh mismatch" or (
        event.qsh_received is not None and event.qsh_received != event.qsh_expected
    ):
        line += f"{indent}site hashed: {event.canonical_request}"
        line += f"{indent}qsh expected: {event.qsh_expected}"
        line += f"{indent}qsh received: {event.qsh_received}"
        if event.app_canonical_request:
            line += f"{indent}app hashed:  {event.app_canonical_request}"
    return line


def addon_exit_status(event: AddonExited) -> str:
    """How the add-on process ended: "exit code 1", "killed by SIGKILL"."""
    if event.signal:
        return f"killed by {event.signal}"
    return f"exit code {event.code}"


def _addon_exit_line(event: AddonExited) -> str:
    forced = (
        " (killed: it was still running after SIGTERM and the [addon] stop_timeout)"
        if event.forced
        else ""
    )
    if event.reason == "restart":
        return f"addon       stopped for the restart (pid {event.pid}){forced}"
    if event.reason == "shutdown":
        return f"addon       stopped (pid {event.pid}){forced}"
    line = (
        f"addon       CRASHED: {addon_exit_status(event)} after {event.ran_seconds:.1f} s "
        f"(pid {event.pid})"
    )
    if event.restart_in is not None:
        line += f"; starting it again in {event.restart_in:g} s"
    if event.last_lines:
        line += f"\n             last output: {event.last_lines[-1]}"
    return line


def _duration(ms: int) -> str:
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


def _request_line(event: RequestServed) -> str:
    line = (
        f"request     {event.method} {event.path} -> {event.status} in {event.duration_ms:.1f} ms"
    )
    if event.addon_error:
        line += f" (the add-on did not answer: {event.addon_error})"
    if event.id:  # what `connect-dev replay ID` takes
        line += f"  #{event.id}"
        if event.replay_of:
            line += f", replay of #{event.replay_of}"
    verdict = event.jwt
    if verdict is not None and not verdict.get("verified"):
        why = verdict.get("reason") or verdict.get("verdict") or "no reason given"
        line += f"\n             jwt NOT verified: {why}"
    return line


def addon_refusal(status: int, error: str) -> str:
    """Why the add-on did not accept a callback ("" when it did, or when it is not known)."""
    if error:
        return f"the add-on did not answer ({error}); the host got HTTP {status}"
    if status == 499:
        return "the host gave up before the add-on answered"
    if status and not 200 <= status < 300:
        return f"the add-on answered HTTP {status}"
    return ""


class TextRenderer:
    """Writes ``format_event`` lines with a timestamp; ``show`` filters (e.g. hide requests).

    ``buffered``: lines are written in batches, flushed at the end of the event loop's turn
    (see ``output.LineOutput``); else each line is written and flushed at once."""

    def __init__(
        self,
        stream: TextIO,
        *,
        show: Callable[[Event], bool] | None = None,
        buffered: bool = False,
    ) -> None:
        self._show = show
        self.output = LineOutput(stream, buffered=buffered)

    def __call__(self, event: Event) -> None:
        if self._show is not None and not self._show(event):
            return
        self.output.write(f"{_clock(event.ts)} {format_event(event)}\n")

    def flush(self) -> None:
        self.output.flush()

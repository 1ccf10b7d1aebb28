"""``connect-dev requests`` and ``connect-dev replay``: the traffic inspector of a running ``up``,
over its control socket (traffic/control.py; docs/inspector.md).

- ``requests [--follow] [--json] [--har FILE [--include-secrets]]`` lists what the proxy
  captured (``--follow``: then each new request, until Ctrl-C or the run stops);
- ``replay ID [--edit] [--unchanged] [--json]`` sends request ID to the add-on again, its
  Connect JWT re-signed (``--edit``: in ``$VISUAL``/``$EDITOR`` first), and shows the result
  beside the original.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from ..daemon import EXIT_FAILURE, EXIT_FORCED, EXIT_OK, EXIT_USAGE
from ..traffic.editor import edit_in_editor, has_request

__all__ = ["add_parsers", "format_summary"]


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_config: Callable[[argparse.ArgumentParser], None],
) -> None:
    requests = commands.add_parser(
        "requests",
        help="list the requests a running `up` captured (or export them as HAR)",
        description="List the requests the proxy of the `connect-dev up` running in this "
        "project captured, newest last, with their ids (for `connect-dev replay ID`). "
        "Credentials are masked.",
    )
    add_config(requests)
    requests.add_argument(
        "-f", "--follow", action="store_true", help="then show each new request as it comes"
    )
    requests.add_argument("--json", action="store_true", help="one JSON object per line")
    requests.add_argument(
        "--har", metavar="FILE", help="write the captured requests to FILE as HAR 1.2 instead"
    )
    requests.add_argument(
        "--include-secrets",
        action="store_true",
        help="with --har: keep credentials (tokens, cookies, secrets) unmasked; the file is "
        "written with mode 0600",
    )
    requests.set_defaults(command="requests", run=run_requests)

    replay = commands.add_parser(
        "replay",
        help="send a captured request to the add-on again, its JWT re-signed",
        description="Send request ID (from `connect-dev requests` or the dashboard) to the "
        "add-on again through the proxy of the running `connect-dev up`. A Connect JWT is "
        "re-signed as the host would sign it now: same tenant and claims, fresh iat and exp, "
        "qsh recomputed for the request as sent (a context token keeps its context-qsh).",
    )
    add_config(replay)
    replay.add_argument("id", metavar="ID", type=_request_id, help="the request's id")
    replay.add_argument(
        "--edit",
        action="store_true",
        help="edit the request in $VISUAL or $EDITOR first (credentials stay placeholders)",
    )
    replay.add_argument(
        "--unchanged",
        action="store_true",
        help="send the JWT as captured instead of re-signing it (for a request connect-dev "
        "cannot re-sign)",
    )
    replay.add_argument("--json", action="store_true", help="print the outcome as JSON")
    replay.set_defaults(command="replay", run=run_replay)


def _request_id(text: str) -> int:
    try:
        value = int(text.lstrip("#"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a request id (a number)") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a request id (ids start at 1)")
    return value


def _state_dir(args: argparse.Namespace) -> Path:
    from ..config import find_config, load_config

    return load_config(find_config(args.config)).ledger_path.parent


# --- requests -----------------------------------------------------------------------------


def run_requests(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    if args.include_secrets and not args.har:
        print("connect-dev: error: --include-secrets goes with --har FILE", file=sys.stderr)
        return EXIT_USAGE
    state_dir = _state_dir(args)
    try:
        return asyncio.run(_requests(state_dir, args, out))
    except KeyboardInterrupt:
        return EXIT_OK if args.follow else EXIT_FORCED


async def _requests(state_dir: Path, args: argparse.Namespace, out: TextIO) -> int:
    from ..traffic.client import ControlClient

    async with ControlClient(state_dir) as client:
        if args.har:
            query = {"secrets": "1"} if args.include_secrets else {}
            har = await client.get("/har", **query)
            _write_private(Path(args.har), json.dumps(har, indent=2, ensure_ascii=False) + "\n")
            count = len(har["log"]["entries"])
            masked = "unmasked: keep it private" if args.include_secrets else "credentials masked"
            print(f"wrote {count} request(s) to {args.har} (HAR 1.2, {masked})", file=out)
            return EXIT_OK
        listing = await client.get("/requests")
        if not args.json:
            if listing.get("inspector_url"):
                print(f"ngrok's own inspector: {listing['inspector_url']}", file=out)
            if not listing["requests"] and not args.follow:
                print("no requests captured yet", file=out)
        for item in listing["requests"]:
            _print(item, args.json, out)
        if not args.follow:
            return EXIT_OK
        last = listing["requests"][-1]["id"] if listing["requests"] else 0
        async for item in client.lines("/requests", follow="1", after=str(last)):
            _print(item, args.json, out)
        print("connect-dev: the run stopped", file=sys.stderr)
        return EXIT_OK


def _print(item: dict[str, Any], as_json: bool, out: TextIO) -> None:
    print(json.dumps(item) if as_json else format_summary(item), file=out, flush=True)


def format_summary(item: dict[str, Any]) -> str:
    """``  12  10:41:07  POST  /installed  204  3.1 ms  verified``"""
    import time

    clock = time.strftime("%H:%M:%S", time.localtime(item["ts"]))
    jwt = item.get("jwt") or ""
    if jwt:
        jwt = ("✔ " if jwt == "verified" else "✖ ") + jwt
    replay = f"  (replay of {item['replay_of']})" if item.get("replay_of") else ""
    took = f"{item['duration_ms']:.1f} ms"
    line = f"{item['id']:>5}  {clock}  {item['method']:<7} {item['path']}  {item['status']}  {took}"
    return f"{line}  {jwt}{replay}".rstrip()


def _write_private(path: Path, text: str) -> None:
    """Written 0600 from the start: a HAR with secrets must never be readable by others, even
    for a moment."""
    from ..errors import DevloopError

    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise DevloopError(
            f"{path}: cannot write the HAR file: {exc.strerror}",
            hint="Choose a path in a directory you can write.",
        ) from exc


# --- replay -------------------------------------------------------------------------------


def run_replay(args: argparse.Namespace, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    state_dir = _state_dir(args)
    return asyncio.run(_replay(state_dir, args, out))


async def _replay(state_dir: Path, args: argparse.Namespace, out: TextIO) -> int:
    from ..traffic.client import ControlClient

    async with ControlClient(state_dir) as client:
        edited = None
        if args.edit:
            text = (await client.get(f"/requests/{args.id}/edit"))["text"]
            edited = await asyncio.to_thread(edit_in_editor, text)
            if not has_request(edited):
                print("nothing sent: the edited request is empty", file=out)
                return EXIT_FAILURE
        outcome = await client.post(
            f"/requests/{args.id}/replay", {"edited": edited, "unchanged": args.unchanged}
        )
    if args.json:
        print(json.dumps(outcome), file=out)
    else:
        print(format_outcome(outcome), file=out)
    return EXIT_OK


def format_outcome(outcome: dict[str, Any]) -> str:
    original, replay = outcome["original"], outcome["replay"]
    rows = [
        ("", f"original #{original['id']}", f"replay #{replay['id']}"),
        ("status", str(original["status"]), str(replay["status"])),
        ("took", f"{original['duration_ms']:.1f} ms", f"{replay['duration_ms']:.1f} ms"),
        ("JWT", original.get("jwt") or "—", replay.get("jwt") or "—"),
    ]
    width = max(len(row[1]) for row in rows) + 2
    lines = [f"{name:<8}{left:<{width}}{right}".rstrip() for name, left, right in rows]
    lines.append(f"signing {outcome['note']}")
    diff = outcome.get("body_diff") or ""
    lines.append("body    the same" if not diff else "body    differs:")
    if diff:
        lines.extend("  " + line for line in diff.splitlines())
    return "\n".join(lines)

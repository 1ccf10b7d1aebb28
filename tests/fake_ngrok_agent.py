"""A stand-in for the ngrok agent (v3) that pyngrok drives for real, on loopback only.

Standard library only, so it starts fast and runs under any Python 3. It behaves as
../shared/TESTING.md lists:

- ``--version`` prints ``ngrok version 3.22.1``; ``config add-authtoken T …`` prints
  ``Authtoken saved to configuration file: …``.
- ``start --none --log stdout [--config P] [--authtoken T] [--region R]``: starts its local API
  and web inspector at the config's ``web_addr`` (deviation: without one, 127.0.0.1 and a free
  port rather than ngrok's 127.0.0.1:4040), *then* prints the startup lines pyngrok waits for
  (logfmt, flushed): ``starting web service obj=web addr=… allow_hosts=[]``, ``client session
  established``, ``tunnel session started``. With no authtoken (neither in the config file nor
  ``--authtoken``) it fails as ngrok does (``ERR_NGROK_4018``).
- The inspector: ``GET /`` answers a small HTML page titled "ngrok - Inspect".
- The API: ``POST/GET /api/endpoints`` (config v3) and ``/api/tunnels`` (v2), ``GET`` and
  ``DELETE <uri>``. Each endpoint's ``public_url`` is ``http://127.0.0.1:PORT``, a loopback port
  that relays bytes to the endpoint's upstream, so requests "through the tunnel" really reach
  it. Deviation from ngrok, for reserved-domain tests: an endpoint asked for with
  ``url = "https://127.0.0.1:PORT"`` listens on that PORT (a stable URL across restarts).

Environment switches (inherited from the process that starts pyngrok):
  FAKE_NGROK_MODE    ok (default) | error (ngrok's ERR_NGROK_105 start line, echoing the
                     authtoken as ngrok does) | silent (prints nothing, never starts) |
                     exit (exits at once with no output)
  FAKE_NGROK_RECORD  a file to append one JSON line to per start (pid, argv, where the
                     authtoken came from) and per endpoint created
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

VERSION = "3.22.1"
INSPECTOR_PAGE = b"<!DOCTYPE html><title>ngrok - Inspect</title>"
NEEDS_QUOTES = re.compile(r'[\s"=]')


def log(level: str = "info", **fields: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+0000", time.gmtime())
    parts = [f"t={stamp}", f"lvl={level}"]
    for key, value in fields.items():
        quoted = json.dumps(value) if NEEDS_QUOTES.search(value) else value
        parts.append(f"{key}={quoted}")
    print(" ".join(parts), flush=True)


def record(entry: dict[str, Any]) -> None:
    path = os.environ.get("FAKE_NGROK_RECORD")
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({"pid": os.getpid(), **entry}) + "\n")


def option(argv: list[str], name: str) -> str | None:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def config_value(path: str | None, key: str) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError:
        return None
    match = re.search(rf"^\s*{key}:\s*(.+?)\s*$", text, re.MULTILINE)
    if match is None:
        return None
    value = match.group(1)
    return json.loads(value) if value.startswith('"') else value.strip("'")


def config_authtoken(path: str | None) -> str | None:
    return config_value(path, "authtoken")


class Agent:
    def __init__(self) -> None:
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.relays: dict[str, asyncio.AbstractServer] = {}
        self.api_addr = ""

    async def serve_api(self, web_addr: str | None) -> None:
        host, _, port = (web_addr or "127.0.0.1:0").rpartition(":")
        server = await asyncio.start_server(self.handle_api, host or "127.0.0.1", int(port))
        bound, port = server.sockets[0].getsockname()[:2]
        self.api_addr = f"{host or bound}:{port}"  # the host as configured, as ngrok logs it

    async def handle_api(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            content_type = "application/json"
            if method == "GET" and urlsplit(target).path == "/":
                status, data, content_type = 200, INSPECTOR_PAGE, "text/html; charset=utf-8"
            else:
                status, payload = await self.route(method, urlsplit(target).path, body)
                data = b"" if payload is None else json.dumps(payload).encode()
            reason = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request"}
            writer.write(
                f"HTTP/1.1 {status} {reason.get(status, 'Not Found')}\r\n"
                f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    async def route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        match = re.fullmatch(r"/api/(endpoints|tunnels)(?:/([^/]+))?", path)
        if match is None:
            return 404, {"error_code": 100, "msg": "not found"}
        kind, name = match.groups()
        if method == "GET" and name is None:
            return 200, {kind: list(self.endpoints.values()), "uri": f"/api/{kind}"}
        if method == "POST" and name is None:
            return await self.create(kind, json.loads(body or b"{}"))
        if name not in self.endpoints:
            return 404, {"error_code": 100, "msg": f"endpoint {name!r} not found"}
        if method == "GET":
            return 200, self.endpoints[name]
        if method == "DELETE":
            self.endpoints.pop(name)
            self.relays.pop(name).close()
            log(msg="end tunnel", obj="tunnels", name=name)
            return 204, None
        return 405, {"msg": "method not allowed"}

    async def create(self, kind: str, request: dict[str, Any]) -> tuple[int, Any]:
        name = request.get("name") or f"endpoint-{uuid.uuid4()}"
        upstream = (request.get("upstream") or {}).get("url") or request.get("addr")
        if not upstream:
            return 400, {"error_code": 102, "msg": "upstream url is required"}
        if "://" not in str(upstream):
            upstream = f"http://localhost:{upstream}"
        parts = urlsplit(str(upstream))
        up_host = "127.0.0.1" if parts.hostname in (None, "localhost") else parts.hostname
        up_port = parts.port or 80
        wanted = urlsplit(str(request.get("url") or ""))
        port = wanted.port if wanted.hostname == "127.0.0.1" and wanted.port else 0

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection(up_host, up_port)
            except OSError:
                writer.write(
                    b"HTTP/1.1 502 Bad Gateway\r\nngrok-error-code: ERR_NGROK_8012\r\n"
                    b"Content-Length: 0\r\nConnection: close\r\n\r\n"
                )
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        try:
            server = await asyncio.start_server(relay, "127.0.0.1", port)
        except OSError as exc:
            return 400, {"error_code": 334, "msg": f"failed to bind {port}: {exc}. ERR_NGROK_334"}
        public_url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        endpoint = {
            "id": f"ep_{uuid.uuid4().hex[:24]}",
            "name": name,
            "uri": f"/api/{kind}/{name}",
            "public_url": public_url,
            "url": public_url,
            "proto": "http",
            "upstream": {"url": str(upstream), "protocol": "http1"},
            "config": {"addr": str(upstream)},
        }
        self.endpoints[name] = endpoint
        self.relays[name] = server
        record({"endpoint": endpoint})
        log(msg="started tunnel", obj="tunnels", name=name, addr=str(upstream), url=public_url)
        return 201, endpoint


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def start(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_NGROK_MODE", "ok")
    config_path = option(argv, "--config")
    token = option(argv, "--authtoken") or config_authtoken(config_path)
    source = "argv" if option(argv, "--authtoken") else ("config" if token else None)
    record(
        {"argv": argv, "authtoken_from": source, "config_authtoken": config_authtoken(config_path)}
    )
    if mode == "exit":
        return 1
    if mode == "silent":
        await asyncio.sleep(3600)
        return 1
    if config_path:
        log(msg="open config file", path=config_path, err="nil")
    if mode == "error" or not token:
        if token:
            err = (
                "authentication failed: The authtoken you specified does not look like a proper "
                "ngrok tunnel authtoken.\nYour authtoken: " + token + "\nInstructions to install "
                "your authtoken are on your ngrok dashboard:\n"
                "https://dashboard.ngrok.com/get-started/your-authtoken\r\n\r\nERR_NGROK_105\r\n"
            )
        else:
            err = (
                "authentication failed: Usage of ngrok requires a verified account and authtoken."
                "\n\nSign up for an account: https://dashboard.ngrok.com/signup\r\n\r\n"
                "ERR_NGROK_4018\r\n"
            )
        log("eror", msg="failed to reconnect session", obj="tunnels.session", err=err)
        log("eror", msg="session closing", obj="tunnels.session", err=err)
        return 1
    agent = Agent()
    # Listening before the startup lines, as pyngrok needs.
    await agent.serve_api(config_value(config_path, "web_addr"))
    record({"api": agent.api_addr})
    log(msg="starting web service", obj="web", addr=agent.api_addr, allow_hosts="[]")
    region = option(argv, "--region") or "us"
    log(msg="client session established", obj="tunnels.session", region=region)
    log(msg="tunnel session started", obj="tunnels.session")
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()
    log(msg="received stop request", obj="app", stopReq="{}")
    return 0


def main(argv: list[str]) -> int:
    if "--version" in argv or argv[:1] == ["version"]:
        print(f"ngrok version {VERSION}")
        return 0
    if argv[:2] == ["config", "add-authtoken"]:
        path = option(argv, "--config") or "ngrok.yml"
        print(f"Authtoken saved to configuration file: {path}")
        return 0
    if argv[:1] == ["start"]:
        return asyncio.run(start(argv))
    print(f"fake ngrok: unsupported command {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

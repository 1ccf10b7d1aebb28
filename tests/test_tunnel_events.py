"""The real `connect-dev up --log-format json` with the stand-in ngrok agent: a whole run.

Open, install, the agent dies, reopen at a new URL, re-install, Ctrl-C: the JSON events come in
the order docs/tunnels.md documents, the emulated host ends with the add-on installed from the
new URL and then uninstalled through the tunnel, and no agent process is left.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from connect_devloop.host import run_host

from .e2e import host_toml, recording_addon
from .tunnels import AgentRecord, tunnel_config, wait_dead, write_agent

TOKEN = "2xyzSECRETtoken_0987654321"
TIMELINE = {
    "descriptor_loaded",
    "tunnel_opened",
    "tunnel_closed",
    "registering",
    "registered",
    "registration_failed",
    "ready",
    "deregistered",
    "stopped",
}


class Daemon:
    def __init__(self, process: asyncio.subprocess.Process, config: Path) -> None:
        self.process = process
        self.config = config
        self.events: list[dict[str, Any]] = []

    async def wait_for(self, name: str, count: int = 1, timeout: float = 20.0) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while len([e for e in self.events if e["event"] == name]) < count:
                line = await self.process.stdout.readline()
                if not line:
                    raise AssertionError(f"connect-dev exited before {count} {name} events")
                self.events.append(json.loads(line))
        return [e for e in self.events if e["event"] == name][count - 1]

    async def finish(self, timeout: float = 20.0) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        self.events.extend(json.loads(line) for line in out.decode().splitlines() if line)
        assert self.process.returncode is not None
        return self.process.returncode, out.decode(), err.decode()

    @classmethod
    async def start(
        cls,
        project: Path,
        addon_url: str,
        host_url: str,
        agent: Path,
        env: dict[str, str],
        **popen: Any,
    ) -> Daemon:
        """`connect-dev up --log-format json` in ``project`` with the stand-in agent as ngrok."""
        config = tunnel_config(
            project,
            addon_url,
            [host_toml("jira", host_url)],
            provider="ngrok",
            tunnel=f'[tunnel.ngrok]\npath = "{agent}"\n',
        )
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "connect_devloop", "up", "--no-tui"),
            *("--log-format", "json", "--config", str(config)),
            stdout=asyncio.subprocess.PIPE,
            env=env,
            **popen,
        )
        return cls(process, config)


async def test_a_full_run_with_a_dropped_tunnel_in_json(project: Path, tmp_path: Path) -> None:
    agent = write_agent(tmp_path / "agent-bin")
    record = AgentRecord(tmp_path / "agent-record.jsonl")
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "NGROK_AUTHTOKEN": TOKEN,
        "FAKE_NGROK_RECORD": str(record.path),
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        # Any pyngrok download would go here, and fail the test below by existing.
        "PYNGROK_NGROK_PATH": str(agent),
    }
    env.pop("FAKE_NGROK_MODE", None)
    async with recording_addon() as addon, run_host() as jira:
        daemon = await Daemon.start(
            project,
            addon.url,
            jira.base_url,
            agent,
            env,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, as in a terminal
        )
        process = daemon.process
        try:
            await daemon.wait_for("ready")
            first_agent = record.starts()[0]["pid"]
            os.kill(first_agent, signal.SIGKILL)  # the agent dies mid-run
            await daemon.wait_for("registered", count=2)
            second_agent = record.starts()[1]["pid"]
            # Ctrl-C in the terminal: SIGINT to the whole foreground process group. The agent
            # runs in its own session, so it stays up for the uninstall.
            os.killpg(process.pid, signal.SIGINT)
            code, out, err = await daemon.finish()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert code == 0, err

        timeline = [e for e in daemon.events if e["event"] in TIMELINE]
        assert [e["event"] for e in timeline] == [
            "descriptor_loaded",
            "tunnel_opened",
            "registering",
            "registered",
            "ready",
            "tunnel_closed",
            "tunnel_opened",
            "registering",
            "registered",
            "deregistered",
            "tunnel_closed",
            "stopped",
        ]
        opened = [e for e in timeline if e["event"] == "tunnel_opened"]
        first_url, second_url = opened[0]["url"], opened[1]["url"]
        assert first_url != second_url
        assert {e["provider"] for e in opened} == {"ngrok"}
        # Each agent's own web inspector, as it announced it.
        assert [e["inspector_url"] for e in opened] == [
            f"http://{record.api(pid)}" for pid in (first_agent, second_agent)
        ]
        closed = [(e["provider"], e["reason"]) for e in timeline if e["event"] == "tunnel_closed"]
        assert closed == [("ngrok", "exited"), ("ngrok", "shutdown")]
        reasons = [e["reason"] for e in timeline if e["event"] == "registering"]
        assert reasons == ["startup", "tunnel_changed"]
        [ready] = [e for e in timeline if e["event"] == "ready"]
        assert ready["public_url"] == first_url
        drop = next(
            e
            for e in daemon.events
            if e["event"] == "warning" and e["message"].startswith("the tunnel")
        )
        assert drop["message"] == (
            f"the tunnel (ngrok) dropped: the ngrok agent (pid {first_agent}) was killed "
            "(signal 9); reopening it"
        )

        # The host's own record: installed from each URL in turn, then uninstalled.
        assert [i.descriptor["baseUrl"] for i in jira.record.installs] == [first_url, second_url]
        assert jira.record.plugins == {}
        # Its uninstalled callback reached the add-on through the tunnel after the Ctrl-C.
        assert [path for path, _ in addon.callbacks] == ["/installed", "/installed", "/uninstalled"]
        assert wait_dead(first_agent)
        assert wait_dead(second_agent), "the agent is stopped at teardown"
        assert TOKEN not in out
        assert TOKEN not in err
        assert "Traceback" not in err
        # Nothing was downloaded to (or written in) pyngrok's default place for this HOME.
        assert not (home / ".config" / "ngrok").exists()
        assert len(record.starts()) == 2


async def test_after_kill_9_the_agent_is_left_and_down_stops_it(
    project: Path, tmp_path: Path
) -> None:
    agent = write_agent(tmp_path / "agent-bin")
    record = AgentRecord(tmp_path / "agent-record.jsonl")
    env = {
        **os.environ,
        "NGROK_AUTHTOKEN": TOKEN,
        "FAKE_NGROK_RECORD": str(record.path),
        "HOME": str(tmp_path),
    }
    env.pop("FAKE_NGROK_MODE", None)
    async with recording_addon() as addon, run_host() as jira:
        daemon = await Daemon.start(
            project, addon.url, jira.base_url, agent, env, stderr=asyncio.subprocess.DEVNULL
        )
        process, config = daemon.process, daemon.config
        try:
            await daemon.wait_for("ready")
        finally:
            process.kill()  # kill -9: no teardown at all
            await process.wait()
        agent_pid = record.starts()[0]["pid"]
        recorded = json.loads((project / ".connect-dev" / "tunnel.json").read_text())
        private_dir = Path(recorded["private_dir"])
        assert (private_dir / "ngrok.yml").read_text().count(TOKEN) == 1
        assert TOKEN not in json.dumps(recorded)
        # The agent runs in its own session, so it outlives the killed daemon ...
        await asyncio.sleep(0.2)
        assert not wait_dead(agent_pid, timeout=0.1)
        # ... until `connect-dev down` cleans up after the crash.
        down = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "connect_devloop", "down", "--config", str(config)),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(down.communicate(), 30)
        assert down.returncode == 0, err.decode()
        assert "removed 1 install(s); 0 left" in out.decode()
        assert jira.record.plugins == {}
        assert wait_dead(agent_pid), "down stops the agent the killed run left"
        assert not private_dir.exists(), "and removes its private config with the authtoken"
        assert not (project / ".connect-dev" / "tunnel.json").exists()

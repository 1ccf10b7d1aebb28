"""The benchmark scripts still run and print every figure they promise.

Their figures are not checked here (this machine is shared and noisy; docs/performance.md
has them): only that each script completes with tiny parameters, prints each line, and that
what is a correctness fact rather than a speed (the last save won, nothing left installed)
holds.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return result.stdout


def summary(out: str) -> dict[str, float | None]:
    """The last line every script prints, for benchmarks/repeat.py: its figures as JSON."""
    last = out.rstrip("\n").rsplit("\n", 1)[-1]
    assert last.startswith("summary: "), out
    figures: dict[str, float | None] = json.loads(last.removeprefix("summary: "))
    return figures


PROXY_VARIANTS = [f"up, {log} log to a {to}" for log in ("text", "json") for to in ("file", "pipe")]


@pytest.mark.parametrize(
    "options",
    [[], ["--client", "lean", "--proxy-class", "--asyncio-loop"], ["--client", "asyncio"]],
)
def test_the_proxy_benchmark_prints_every_variant(options: list[str]) -> None:
    out = run("proxy.py", "--requests", "100", "--seconds", "1", "--connections", "4", *options)
    # wrk and nginx: the figures when installed, else a note saying how to install them.
    client = options[1] if options else "(wrk|lean)"
    assert re.search(
        rf"^load client: {client}; (wrk \S+, 1 thread|the \w+ client"
        r"( \(wrk skipped: not installed; apt-get install -y wrk\))?), 4 kept-alive",
        out,
        re.M,
    ), out
    assert "latency: 100 sequential GETs on 1 kept-alive connection per variant" in out, out
    nginx = re.search(r"^nginx [\d.]+: 1 worker, .* access_log to a file", out, re.M)
    assert nginx or "nginx: skipped, not installed (apt-get install -y nginx-light)" in out, out
    under_load = r"; under load: p50 [\d.]+ ms, p99 [\d.]+ ms" if "client: wrk" in out else ""
    one = r"1 connection: median [\d.]+ ms, p95 [\d.]+ ms"
    added = r", added -?[\d.]+ ms"
    assert re.search(
        rf"^direct: [\d,]+ req/s; {one}{under_load}; CPU per request: the add-on [\d.]+ ms$",
        out,
        re.M,
    ), out
    versus = r"[\d.]+x nginx's ratio" if nginx else r"vs nginx: n/a \(nginx skipped\)"
    for name in PROXY_VARIANTS:
        goals = name == "up, text log to a file"
        line = re.search(
            rf"^{re.escape(name)}: [\d,]+ req/s, \d+% of direct"
            + (r" \[goal >= 65%\]" if goals else "")
            + f"; {versus}"
            + (r" \[goal >= 0.85x\]" if goals else "")
            + f"; {one}{added}"
            + (r" \[goal < 0.15 ms\]" if goals else "")
            + rf"{under_load}; CPU per request: the proxy [\d.]+ ms; "
            r"log: ([\d,]+) lines for ([\d,]+) requests$",
            out,
            re.M,
        )
        assert line, (name, out)
        lines, requests = (int(n.replace(",", "")) for n in line.groups())
        assert lines >= requests, f"{name}: a log line per request, none lost"
    asyncio_loop = "up, text log to a file, asyncio loop"
    shown = re.search(rf"^{asyncio_loop}: .*; log: [\d,]+ lines for [\d,]+ requests$", out, re.M)
    assert bool(shown) == ("--asyncio-loop" in options), out
    others = [
        ("nginx", nginx is not None),
        ("Proxy class, in-process, no log", "--proxy-class" in options),
    ]
    for name, shown in others:
        line = re.search(
            rf"^{name}: [\d,]+ req/s, \d+% of direct; {one}{added}{under_load}; ", out, re.M
        )
        assert bool(line) == shown, (name, out)
    assert re.search(
        r"^load client CPU per request: [\d.]+ ms direct, [\d.]+ ms through ", out, re.M
    )
    assert re.search(
        r"^goals, up --no-tui with a text log to a file: throughput \d+% of direct "
        rf"\[goal >= 65%: (met|missed)\], ({versus} \[goal >= 0.85x: (met|missed)\]|{versus}), "
        r"added latency -?[\d.]+ ms \[goal < 0.15 ms: (met|missed)\]$",
        out,
        re.M,
    ), out
    figures = summary(out)
    for name in PROXY_VARIANTS:
        assert figures[f"{name}: ratio"] is not None, figures
        assert f"{name}: CPU µs/request" in figures
        assert f"{name}: added ms" in figures
    assert ("up, text log to a file: x nginx" in figures) == bool(nginx), figures


def test_the_loop_benchmark_prints_every_figure() -> None:
    out = run("loop.py", "--saves", "3", "--hosts", "1,2", "--runs", "1")
    assert re.search(r"save -> installed \(1 host, 3 lone saves\): median [\d.]+ ms", out), out
    assert "last save installed: yes" in out, out
    for label in (
        "start -> ready, installs only \\(first event to ready\\)",
        "start -> ready, interpreter start included",
        "SIGINT -> exit",
    ):
        assert re.search(rf"{label}: 1 host \d+ ms, 2 hosts \d+ ms; ratio 2/1: [\d.]+", out), out
    assert "installs left behind after SIGINT: 0" in out, out
    assert re.search(
        r"beside a host that never answers: healthy host installed in \d+ ms \(alone \d+ ms, "
        r"ratio [\d.]+\), ready in \d+ ms, SIGINT -> exit median \d+ ms of 1 runs",
        out,
    ), out
    assert set(summary(out)) == {
        f"{figure}: {what}"
        for figure in ("installs", "to_ready", "to_exit")
        for what in ("2/1 ratio", "2 hosts ms")
    }


def test_the_forge_benchmark_prints_every_figure() -> None:
    out = run("forge.py", "--saves", "2", "--burst", "3", "--deploy-seconds", "0.5")
    assert re.search(
        r"^save -> deploy started \(2 lone saves\): median [\d.]+ ms, p95 [\d.]+ ms  "
        r"\[target: < 50 ms\]$",
        out,
        re.M,
    ), out
    assert re.search(
        r"^  of which: save -> registering [\d.]+ ms, -> validate done [\d.]+ ms, -> deploy "
        r"started [\d.]+ ms \(medians; the last stretch is the ledger write\)$",
        out,
        re.M,
    ), out
    # Correctness, not speed: the burst coalesces (one deploy at once, the newest after it)
    # and the last save is what the site has.
    burst = re.search(
        r"^burst of 3 saves 50 ms apart during a 0.5 s deploy: (\d+) deploys, last save "
        r"installed: yes  \[target: <= 2\]$",
        out,
        re.M,
    )
    assert burst, out
    assert 1 <= int(burst[1]) <= 2, out
    figures = summary(out)
    assert set(figures) == {
        "save -> deploy started median ms",
        "save -> deploy started p95 ms",
        "save -> registering median ms",
        "save -> validate done median ms",
        "burst deploys",
    }
    assert figures["burst deploys"] == int(burst[1])


@pytest.mark.timeout(420)
def test_the_ace_benchmark_prints_every_figure_for_both_loops(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """vs_ace.py runs ACE's own loop beside `connect-dev up`. It shares tests/test_ace.py's npm
    install (the same directory in the pytest cache), so only a first session runs npm."""
    import shutil

    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are needed to run atlassian-connect-express (CI has them)")
    cache = getattr(pytestconfig, "cache", None)  # None with -p no:cacheprovider
    ace_cache = cache.mkdir("ace-11.5.3") if cache is not None else tmp_path_factory.mktemp("ace")
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "vs_ace.py"), "--saves", "2", "--ace-cache", ace_cache],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert re.search(
        r"lone save -> installed \(2 lone saves each\): connect-dev median [\d.]+ ms "
        r"p95 [\d.]+ ms; ACE median [\d.]+ ms p95 [\d.]+ ms; ratio [\d.]+",
        out,
    ), out
    per_save = r"lone save -> install POSTs per save: connect-dev [\d.]+; ACE [\d.]+"
    assert re.search(per_save, out), out
    assert re.search(
        r"burst of 20 saves 50 ms apart -> install POSTs: connect-dev \d+ \(\d+ completed\); "
        r"ACE \d+ \(\d+ completed\); ratio [\d.]+",
        out,
    ), out
    assert "burst: last save installed: connect-dev yes; ACE yes" in out, out
    figures = summary(out)
    assert figures["connect-dev burst POSTs"] is not None
    assert figures["lone save ratio"] is not None


def test_the_tui_flood_benchmark_prints_every_figure() -> None:
    out = run("tui_flood.py", "--requests", "2000", "--connections", "2")
    latency = r"2,000 requests, [\d,]+ req/s; latency p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms"
    added = r"; added p50 -?[\d.]+ ms, p99 -?[\d.]+ ms"
    assert re.search(rf"^direct: {latency}$", out, re.M), out
    assert re.search(rf"^up, dashboard: {latency}{added} \[goal p99 added < 5 ms\]$", out, re.M), (
        out
    )
    assert re.search(rf"^up --no-tui: {latency}{added}$", out, re.M), out
    for name in ("up, dashboard", "up --no-tui"):
        assert re.search(
            rf"^RSS of {name}: 0: [\d.]+ MiB, 400: [\d.]+ MiB, 1,000: [\d.]+ MiB, "
            r"2,000: [\d.]+ MiB; from 400 to 2,000: [+-][\d.]+ MiB "
            r"\[goal flat after 20 %: <= \+2 MiB\]$",
            out,
            re.M,
        ), (name, out)
    # Correctness, not speed: the dashboard counted every request, the log has a line for each.
    assert re.search(
        r"^dashboard: requests panel title `Requests 2,000` for 2,000 requests; "
        r"[\d.]+ MiB written to the terminal$",
        out,
        re.M,
    ), out
    log = re.search(r"^--no-tui: log: ([\d,]+) lines for 2,000 requests$", out, re.M)
    assert log, out
    assert int(log[1].replace(",", "")) >= 2000, "a log line per request, none lost"
    assert re.search(
        r"^goals, up with the dashboard on screen: p99 added -?[\d.]+ ms "
        r"\[goal < 5 ms: (met|missed)\], "
        r"RSS after 20 % [+-][\d.]+ MiB \[goal flat: (met|missed)\]$",
        out,
        re.M,
    ), out
    figures = summary(out)
    assert figures["dashboard: p99 added ms"] is not None
    assert "--no-tui: p99 added ms" in figures


def test_repeat_prints_the_median_of_each_figure_over_runs() -> None:
    out = run(
        "repeat.py",
        *("--runs", "2", "proxy.py", "--requests", "100", "--seconds", "1"),
        *("--connections", "4", "--client", "lean"),
    )
    assert len(re.findall(r"^run \d: up, text log to a file: ratio [\d.]+", out, re.M)) == 2, out
    assert "medians of 2 runs of proxy.py --requests 100 --seconds 1" in out, out
    assert re.search(
        r"^  up, text log to a file: ratio: median [\d.]+ \(range [\d.]+ to [\d.]+, 2 runs\)$",
        out,
        re.M,
    ), out

"""The benchmark scripts still run and print every figure they promise.

Their figures are not checked here (this machine is shared and noisy; docs/performance.md
has them): only that each script completes with tiny parameters, prints each line, and that
what is a correctness fact rather than a speed (the last save won, nothing left installed)
holds.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("client", ["lean", "asyncio"])
def test_the_proxy_benchmark_prints_latency_throughput_and_cpu(client: str) -> None:
    out = run(
        "proxy.py", "--requests", "100", "--seconds", "1", "--connections", "4", "--client", client
    )
    assert f"load client: {client}" in out
    assert re.search(r"added by the proxy: median -?[\d.]+ ms, p95 -?[\d.]+ ms", out), out
    assert re.search(r"direct [\d,]+ req/s, through the proxy [\d,]+ req/s, ratio \d+%", out), out
    assert re.search(
        r"CPU per request: the add-on [\d.]+ ms, the proxy [\d.]+ ms .*"
        r"the load client [\d.]+ ms direct, [\d.]+ ms proxied",
        out,
    ), out


def test_the_loop_benchmark_prints_every_figure() -> None:
    out = run("loop.py", "--saves", "3", "--hosts", "2", "--runs", "1")
    assert re.search(r"save -> installed \(1 host, 3 lone saves\): median [\d.]+ ms", out), out
    assert "last save installed: yes" in out, out
    assert re.search(r"start -> ready: 1 host \d+ ms, 2 hosts \d+ ms", out), out
    assert "installs left behind: 0" in out, out
    assert re.search(
        r"beside a host that never answers: healthy host installed in \d+ ms \(alone \d+ ms, "
        r"ratio [\d.]+\), ready in \d+ ms, SIGINT -> exit median \d+ ms of 1 runs",
        out,
    ), out

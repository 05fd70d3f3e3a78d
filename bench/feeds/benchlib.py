"""Helpers shared by the feed benchmarks: ports, background processes, HTTP checks, wrk."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without NEWSLETTER_* overrides (a user's NEWSLETTER_DATABASE__URL must
    not point the benchmark at a real database), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


def pin_prefix(cpu: int) -> list[str]:
    """`taskset -c CPU` when there are at least two CPUs (server and load generator then do
    not fight over one core), else nothing. BENCH_PIN=0 turns pinning off."""
    if os.environ.get("BENCH_PIN", "1") == "0" or shutil.which("taskset") is None:
        return []
    if len(os.sched_getaffinity(0)) < 2:
        return []
    cpus = sorted(os.sched_getaffinity(0))
    return ["taskset", "-c", str(cpus[cpu % len(cpus)])]


@dataclass
class Processes:
    """Background processes, each in its own process group, stopped in reverse order.
    Each pid is also written to `piddir`/<name>.pid so the shell's trap can stop them if
    this Python process dies first."""

    piddir: Path
    running: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], log: Path, env: dict[str, str]) -> int:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        self.running.append((name, proc))
        (self.piddir / f"{name}.pid").write_text(f"{proc.pid}\n")
        return proc.pid

    def check_alive(self, name: str, log: Path) -> None:
        for n, proc in self.running:
            if n == name and proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
                raise RuntimeError(f"{name} exited with code {proc.returncode}:\n{tail}")

    def stop_all(self) -> None:
        for name, proc in reversed(self.running):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
            (self.piddir / f"{name}.pid").unlink(missing_ok=True)
        self.running.clear()


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def get(url: str, timeout: float = 10.0) -> Response:
    """GET without Accept-Encoding (like wrk): the identity body."""
    request = urllib.request.Request(url, headers={"Accept-Encoding": "identity"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            headers = {k.lower(): v for k, v in resp.headers.items()}
            return Response(resp.status, headers, resp.read())
    except urllib.error.HTTPError as exc:
        headers = {k.lower(): v for k, v in exc.headers.items()}
        return Response(exc.code, headers, exc.read())


def wait_for(url: str, procs: Processes, name: str, log: Path, timeout: float = 60.0) -> None:
    """Poll `url` until it answers 200; fail early if the process died."""
    deadline = time.monotonic() + timeout
    last: Exception | str = "no answer"
    while time.monotonic() < deadline:
        procs.check_alive(name, log)
        try:
            resp = get(url, timeout=2)
            if resp.status == 200:
                return
            last = f"HTTP {resp.status}"
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise RuntimeError(f"{name}: {url} not ready after {timeout:.0f} s ({last})")


def group_cpu_seconds(pgid: int) -> float | None:
    """CPU time (user + system) used so far by the live processes of process group `pgid`,
    from /proc (Linux); None elsewhere. Unlike requests/sec, CPU time per request hardly
    moves when a busy host takes the CPU away for a while."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid:  # field 5 of stat: the process group
            total += int(fields[11]) + int(fields[12])  # fields 14, 15: utime, stime
    return total / ticks


@dataclass(frozen=True)
class WrkResult:
    requests_per_sec: float
    requests: int
    non_2xx: int
    socket_errors: str | None
    output: str


_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:\s+(.*)")


def parse_wrk(output: str) -> WrkResult:
    match = _RPS.search(output)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk output:\n{output}")
    non_2xx = _NON_2XX.search(output)
    errors = _SOCKET_ERRORS.search(output)
    requests = _REQUESTS.search(output)
    return WrkResult(
        requests_per_sec=float(match.group(1)),
        requests=int(requests.group(1)) if requests else 0,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else None,
        output=output,
    )


def run_wrk(
    wrk: str, url: str, *, threads: int, connections: int, seconds: int, cpu_prefix: list[str]
) -> WrkResult:
    """One wrk run, killed if it overruns its duration by 30 s."""
    argv = [
        *cpu_prefix,
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


def thousands(value: float) -> str:
    return f"{value:,.0f}"

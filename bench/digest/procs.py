"""Processes of the digest benchmark: each child in its own process group, reaped with
wait4 so that its own peak RSS is known, and stopped (the whole group) at the end.

Every pid is also written to `piddir`/<name>.pid so that the shell's trap in `run` can stop
the groups if this Python process dies first.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, child: Child, timeout: float = 10.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.done.is_set():
            raise RuntimeError(f"{child.name} exited with {child.exit_code}:\n{child.tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name}: nothing listens on port {port} after {timeout:.0f} s")


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without NEWSLETTER_* overrides (a user's NEWSLETTER_DATABASE__URL
    must not point the benchmark at a real database), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(extra)
    return env


def cpu_split() -> tuple[list[str], list[str]]:
    """(taskset prefix for the SMTP sink, taskset prefix for the senders): with two or more
    CPUs, the sink gets the last one and the senders the others, so that the server does
    not take CPU time from the client it measures. BENCH_PIN=0 turns this off."""
    cpus = sorted(os.sched_getaffinity(0))
    if os.environ.get("BENCH_PIN", "1") == "0" or shutil.which("taskset") is None:
        return [], []
    if len(cpus) < 2:
        return [], []
    rest = ",".join(str(c) for c in cpus[:-1])
    return ["taskset", "-c", str(cpus[-1])], ["taskset", "-c", rest]


@dataclass
class Child:
    """A child process reaped by a thread of its own with wait4: exit code, wall time from
    start to exit, and the child's peak resident set size (ru_maxrss)."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes]
    started: float
    ended: float | None = None
    exit_code: int | None = None
    maxrss_kib: int | None = None
    cpu_seconds: float = 0.0  # user + system
    done: threading.Event = field(default_factory=threading.Event)

    def _reap(self) -> None:
        while True:
            try:
                _pid, status, usage = os.wait4(self.proc.pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:  # reaped elsewhere: no figures
                self.ended = time.perf_counter()
                self.exit_code = -1
                self.proc.returncode = -1
                self.done.set()
                return
        self.ended = time.perf_counter()
        self.exit_code = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.exit_code  # Popen must not wait for it again
        self.maxrss_kib = int(usage.ru_maxrss)  # KiB on Linux
        self.cpu_seconds = usage.ru_utime + usage.ru_stime
        self.done.set()

    @property
    def seconds(self) -> float:
        return (self.ended or time.perf_counter()) - self.started

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class Processes:
    piddir: Path
    children: list[Child] = field(default_factory=list)

    def start(
        self, name: str, argv: list[str], log: Path, env: dict[str, str], cwd: Path | None = None
    ) -> Child:
        self.piddir.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        child = Child(name, argv, log, proc, started)
        self.children.append(child)
        (self.piddir / f"{name}.pid").write_text(f"{proc.pid}\n")
        threading.Thread(target=child._reap, name=f"reap-{name}", daemon=True).start()
        return child

    def stop(self, child: Child, grace: float = 10.0) -> None:
        """SIGTERM to the child's group, SIGKILL after `grace` seconds."""
        if not child.done.is_set():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGTERM)
            if not child.wait(grace):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.proc.pid, signal.SIGKILL)
                child.wait(grace)
        else:  # the leader is gone; anything it left in its group goes too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.proc.pid, signal.SIGKILL)
        (self.piddir / f"{child.name}.pid").unlink(missing_ok=True)

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child)
        self.children.clear()


def run_to_end(
    procs: Processes,
    name: str,
    argv: list[str],
    log: Path,
    env: dict[str, str],
    timeout: float,
    cwd: Path | None = None,
) -> Child:
    """Start a child and wait for it; stop it and raise after `timeout` seconds."""
    child = procs.start(name, argv, log, env, cwd)
    if not child.wait(timeout):
        procs.stop(child)
        raise RuntimeError(f"{name} did not finish within {timeout:.0f} s:\n{child.tail()}")
    procs.stop(child)  # its group, should it have left anything behind
    return child

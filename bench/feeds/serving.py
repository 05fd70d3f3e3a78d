"""Part 1: requests per second for a cached tag feed, `newsletter serve` against nginx serving
the same bytes from a file, and (for reference) a bare ASGI app under the same uvicorn call.

Everything listens on 127.0.0.1 only, in a scratch folder; nothing under /etc is read or
written. Run through bench/feeds/run, or directly:

    .venv/bin/python bench/feeds/serving.py --workdir /tmp/x --nginx /usr/sbin/nginx --wrk wrk
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    LOOPBACK,
    Processes,
    clean_env,
    free_port,
    get,
    group_cpu_seconds,
    pin_prefix,
    run_wrk,
    thousands,
    wait_for,
)

FEED_PATH = "/tags/north-korea/feed.rss"
TARGET = 0.5
COPIED_HEADERS = ("cache-control", "vary", "link", "access-control-allow-origin")


def nginx_conf(workdir: Path, root: Path, port: int, headers: dict[str, str]) -> str:
    """A self-contained nginx.conf: one worker, loopback only, every path in `workdir`."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    add = "".join(
        f"            add_header {name} '{headers[name]}';\n"
        for name in COPIED_HEADERS
        if name in headers
    )
    temp = "".join(
        f"    {kind}_temp_path {workdir}/nginx-{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""# written by bench/feeds/serving.py
{user}worker_processes 1;
daemon off;
pid {workdir}/nginx-master.pid;
error_log {workdir}/nginx-error.log warn;

events {{
    worker_connections 1024;
}}

http {{
    access_log off;
    types {{
        application/rss+xml rss;
    }}
    default_type application/octet-stream;
    charset utf-8;
    charset_types application/rss+xml;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;  # like uvicorn: no forced reconnects during the run
{temp}
    server {{
        listen {LOOPBACK}:{port};
        root {root};
        location / {{
{add}        }}
    }}
}}
"""


@dataclass
class Target:
    url: str
    pid: int  # its process group, for CPU time
    rps: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)  # server CPU per request


def measure(
    wrk: str, targets: dict[str, Target], args: argparse.Namespace, cpu: list[str]
) -> list[str]:
    """Warm up each target, then `rounds` measured runs of each, interleaved (A B C A B C)
    so that a slow spell of the machine does not hit one target only. Returns problems."""
    settings = {"threads": args.threads, "connections": args.connections, "cpu_prefix": cpu}
    for target in targets.values():
        run_wrk(wrk, target.url, seconds=args.warmup, **settings)
    problems = []
    for number in range(1, args.rounds + 1):
        for label, target in targets.items():
            before = group_cpu_seconds(target.pid)
            result = run_wrk(wrk, target.url, seconds=args.duration, **settings)
            after = group_cpu_seconds(target.pid)
            target.rps.append(result.requests_per_sec)
            note = ""
            if before is not None and after is not None and result.requests:
                target.cpu_us.append((after - before) / result.requests * 1e6)
                note = f", server CPU {target.cpu_us[-1]:5.1f} us/request"
            if result.non_2xx:
                problems.append(f"{label}: {result.non_2xx} non-2xx/3xx responses")
            if result.socket_errors:
                problems.append(f"{label}: socket errors {result.socket_errors}")
            rps = thousands(result.requests_per_sec)
            print(f"  round {number}  {label:<12} {rps:>8} req/s{note}", flush=True)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, help="scratch folder (default: a new temp dir)")
    parser.add_argument("--newsletter", default=str(Path(sys.executable).with_name("newsletter")))
    parser.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server")
    parser.add_argument("--rounds", type=int, default=3, help="measured runs per server")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare ASGI reference")
    parser.add_argument("--summary", type=Path, help="append the result line to this file")
    args = parser.parse_args()

    own_workdir = args.workdir is None
    workdir: Path = args.workdir or Path(tempfile.mkdtemp(prefix="newsletter-serving-"))
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    procs = Processes(workdir)
    # on SIGTERM, unwind through `finally` so that the servers are stopped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run(args, workdir, procs)
    finally:
        procs.stop_all()
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace, workdir: Path, procs: Processes) -> int:
    server_cpu, load_cpu = pin_prefix(0), pin_prefix(1)
    if server_cpu:
        print(f"  pinning: servers on CPU {server_cpu[-1]}, wrk on CPU {load_cpu[-1]}")

    app_port, nginx_port, bare_port = free_port(), free_port(), free_port()
    app_base = f"http://{LOOPBACK}:{app_port}"
    site = workdir / "site"
    config = site / "config.toml"
    env = clean_env(NEWSLETTER_SITE__BASE_URL=app_base)
    cli = [args.newsletter, "--config", str(config)]

    # the publication: a fresh config and the demo articles
    subprocess.run([*cli, "init", str(site)], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run([*cli, "demo"], env=env, check=True, stdout=subprocess.DEVNULL)

    app_log = workdir / "newsletter.log"
    app_pid = procs.start(
        "newsletter",
        [*server_cpu, *cli, "serve", "--host", LOOPBACK, "--port", str(app_port)],
        app_log,
        env,
    )
    wait_for(f"{app_base}/healthz", procs, "newsletter", app_log)

    # first request renders the feed and fills the cache; its bytes become nginx's file
    app_url = app_base + FEED_PATH
    first = get(app_url)
    if first.status != 200:
        raise RuntimeError(f"{app_url}: HTTP {first.status}")
    root = workdir / "www"
    feed_file = root / FEED_PATH.lstrip("/")
    feed_file.parent.mkdir(parents=True)
    feed_file.write_bytes(first.body)
    print(f"  feed: {FEED_PATH}, {len(first.body):,} bytes, {first.headers.get('content-type')}")

    conf = workdir / "nginx.conf"
    conf.write_text(nginx_conf(workdir, root, nginx_port, first.headers))
    nginx_argv = [args.nginx, "-p", str(workdir), "-e", str(workdir / "nginx-error.log")]
    nginx_argv += ["-c", str(conf)]
    test = subprocess.run([*nginx_argv, "-t", "-q"], capture_output=True, text=True, check=False)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    nginx_log = workdir / "nginx.log"
    nginx_pid = procs.start("nginx", [*server_cpu, *nginx_argv], nginx_log, env)
    nginx_url = f"http://{LOOPBACK}:{nginx_port}{FEED_PATH}"
    wait_for(nginx_url, procs, "nginx", nginx_log)

    # same status, same bytes, same media type from both
    again, static = get(app_url), get(nginx_url)
    checks = {
        "newsletter 200": again.status == 200,
        "nginx 200": static.status == 200,
        "same bytes": again.body == static.body == first.body,
        "both application/rss+xml": all(
            r.headers.get("content-type", "").startswith("application/rss+xml")
            for r in (again, static)
        ),
    }
    failed = [name for name, ok in checks.items() if not ok]
    print("  checks: " + ", ".join(f"{n} {'ok' if ok else 'FAILED'}" for n, ok in checks.items()))
    if failed:
        raise RuntimeError("response check failed: " + ", ".join(failed))

    bare_url, bare_pid = None, 0
    if not args.no_bare:
        bare_log = workdir / "bare.log"
        here = Path(__file__).resolve().parent
        bare_argv = [sys.executable, str(here / "bare_asgi.py"), "--port", str(bare_port)]
        bare_argv += ["--body", str(feed_file), "--content-type", first.headers["content-type"]]
        bare_pid = procs.start("bare", [*server_cpu, *bare_argv], bare_log, env)
        bare_url = f"http://{LOOPBACK}:{bare_port}{FEED_PATH}"
        wait_for(bare_url, procs, "bare", bare_log)
        if get(bare_url).body != first.body:
            raise RuntimeError("bare ASGI app serves different bytes")

    print(
        f"  wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
        f"(after {args.warmup} s warm-up), {args.rounds} round(s) per server, best round taken"
    )
    targets = {"newsletter": Target(app_url, app_pid), "nginx": Target(nginx_url, nginx_pid)}
    if bare_url:
        targets["bare uvicorn"] = Target(bare_url, bare_pid)
    problems = measure(args.wrk, targets, args, load_cpu)
    procs.check_alive("newsletter", app_log)
    for problem in problems:
        print(f"  WARNING {problem}")

    # host noise only ever slows a run down: the fastest round is the best estimate of what
    # each server can do (as timeit takes the minimum)
    rps = {label: max(t.rps) for label, t in targets.items()}
    app_rps, nginx_rps = rps["newsletter"], rps["nginx"]
    lines = [
        f"cached tag feed: newsletter {thousands(app_rps)} req/s, "
        f"nginx {thousands(nginx_rps)} req/s, ratio {app_rps / nginx_rps:.2f} "
        f"(target >= {TARGET})"
    ]
    if "bare uvicorn" in rps:
        bare_rps = rps["bare uvicorn"]
        lines.append(
            f"  reference: bare ASGI app under the same uvicorn call {thousands(bare_rps)} req/s "
            f"(bare/nginx {bare_rps / nginx_rps:.2f}, newsletter/bare {app_rps / bare_rps:.2f})"
        )
    if all(t.cpu_us for t in targets.values()):
        cpu = ", ".join(
            f"{label} {statistics.median(t.cpu_us):.1f}" for label, t in targets.items()
        )
        app_cpu, nginx_cpu = (statistics.median(targets[k].cpu_us) for k in ("newsletter", "nginx"))
        lines.append(
            f"  server CPU per request (us, less noisy than req/s): {cpu}; "
            f"nginx/newsletter {nginx_cpu / app_cpu:.2f}"
        )
    print("\n".join(lines))
    if args.summary:
        with args.summary.open("a") as out:
            out.write("\n".join(lines) + "\n")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())

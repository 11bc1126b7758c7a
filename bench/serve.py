"""Benchmark ``rxradar serve`` at 16 concurrent clients: p50/p95/p99 of the overview, a
prescriber's profile and an API page of ranked prescribers, beside a floor and a baseline.

    PYTHONPATH=src .venv/bin/python bench/serve.py                  # medium state, built once under bench/out/
    PYTHONPATH=src .venv/bin/python bench/serve.py --workspace DIR  # a workspace with an analysis

Each server is a real ``rxradar serve`` (uvicorn, one process); the clients run in another process
(``--client``), 16 keep-alive connections in one asyncio loop, so the client's own cost is the
same for every server. In one run, at the same concurrency:

  floor     a bare ASGI app answering ``hello`` under the same uvicorn: the least any dashboard
            request costs on this machine (HTTP parsing, the event loop, the client)
  baseline  the dashboard at ``--baseline-rev`` (before the tail-latency work), exported with
            ``git archive`` to bench/out/ and run with this checkout's compiled modules
  current   the dashboard in this checkout

The overview and profiles are asked for with a session cookie (as a browser does), the API with
HTTP Basic (as a script does); every one of these views is audited. The workspace's audit log is
counted before and after each server's run: the report says whether every view was written.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from urllib.parse import urlencode

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
# The dashboard before the tail-latency work (issue 14): per-request database opens, one fsynced
# audit transaction per view.
BASELINE_REV = "111dfac"
USER, PASSWORD = "bench", "bench-password-1"
PROFILES = 200  # profiles asked for are spread over the strongest this many prescribers
PERCENTILES = (50, 95, 99)


# --- the floor: the least a request costs ----------------------------------------------------------

async def hello(scope, receive, send):
    """A bare ASGI answer (run by uvicorn as ``serve:hello``)."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")]})
    await send({"type": "http.response.body", "body": b"hello"})


# --- the client process ----------------------------------------------------------------------------

class Connection:
    """One keep-alive HTTP/1.1 connection (just what the benchmark needs: Content-Length and
    chunked bodies)."""

    def __init__(self, port: int):
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, dict[str, list[str]], bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}", *(f"{k}: {v}" for k, v in
                                                                                 (headers or {}).items())]
        if body:
            head.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        got: dict[str, list[str]] = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode("latin-1").partition(":")
            got.setdefault(k.strip().lower(), []).append(v.strip())
        if "content-length" in got:
            data = await self.reader.readexactly(int(got["content-length"][0]))
        else:
            parts = []
            while (size := int((await self.reader.readline()).strip(), 16)) > 0:
                parts.append(await self.reader.readexactly(size))
                await self.reader.readline()
            await self.reader.readline()
            data = b"".join(parts)
        if "close" in got.get("connection", []):
            self.writer.close()
            self.writer = None
        return status, got, data


async def session_cookie(port: int) -> str:
    """Sign in through the login form, as a browser does (with its CSRF token when it has one)."""
    c = Connection(port)
    _, headers, page = await c.request("GET", "/login")
    cookies = [h.split(";")[0] for h in headers.get("set-cookie", [])]
    form = {"name": USER, "password": PASSWORD, "next": "/"}
    if token := re.search(rb'name="csrf" value="([^"]+)"', page):
        form["csrf"] = token.group(1).decode()
    status, headers, _ = await c.request("POST", "/login", {
        "Content-Type": "application/x-www-form-urlencoded", "Origin": f"http://127.0.0.1:{port}",
        **({"Cookie": "; ".join(cookies)} if cookies else {})}, urlencode(form).encode())
    session = [h.split(";")[0] for h in headers.get("set-cookie", []) if h.startswith("rxradar_session=")]
    if status != 303 or not session:
        raise SystemExit(f"signing in failed: {status}")
    return session[0]


async def load(port: int, paths: list[str], headers: dict[str, str], clients: int) -> dict:
    """Ask for ``paths`` over ``clients`` connections at once; the latency of each answer."""
    todo = iter(paths)
    latencies: list[float] = []
    failures: dict[int, int] = {}

    async def client() -> None:
        c = Connection(port)
        for path in todo:
            t0 = time.perf_counter()
            status, _, _ = await c.request("GET", path, headers)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                failures[status] = failures.get(status, 0) + 1

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"requests": len(latencies), "per_s": len(latencies) / wall, "failures": failures,
            **{f"p{p}": latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] for p in PERCENTILES},
            "max": latencies[-1]}


async def run_client(port: int, requests: int, clients: int, floor: bool) -> dict:
    if floor:
        paths = ["/"] * requests
        await load(port, paths[:clients * 4], {}, clients)  # warm up
        return {"hello": await load(port, paths, {}, clients)}
    basic = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
    browser = {"Cookie": await session_cookie(port)}
    c = Connection(port)
    status, _, data = await c.request("GET", f"/api/prescribers?limit={PROFILES}", basic)
    ids = [r["prescriber_id"] for r in json.loads(data)["rows"]]
    pages = -(-len(ids) // 50)
    endpoints = {
        "overview": (["/"] * requests, browser),
        "profile": ([f"/prescribers/{ids[i % len(ids)]}" for i in range(requests)], browser),
        "api": ([f"/api/prescribers?limit=50&offset={50 * (i % pages)}" for i in range(requests)], basic),
    }
    out = {}
    for name, (paths, headers) in endpoints.items():
        await load(port, paths[:clients * 2], headers, clients)  # warm up: tables read, pages compiled
        out[name] = await load(port, paths, headers, clients)
        out[name]["audited"] = requests + clients * 2
    out["api"]["audited"] += 1  # the list of ids above
    return out


# --- the servers -----------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_listening(port: int, server: subprocess.Popen, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server stopped: {server.stderr.read().decode()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {seconds:.0f} s")


def baseline_source(rev: str) -> Path:
    """``src/`` of ``rev``, exported once under bench/out/, with this checkout's compiled modules."""
    folder = OUT / f"baseline-{rev}"
    if not (folder / "src").exists():
        tmp = OUT / f"baseline-{rev}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], check=True, capture_output=True).stdout
        tar_path = tmp / "src.tar"
        tar_path.write_bytes(archive)
        with tarfile.open(tar_path) as tar:
            tar.extractall(tmp, filter="data")
        tar_path.unlink()
        for so in (REPO / "src").rglob("*.so"):
            shutil.copy2(so, tmp / so.relative_to(REPO))
        tmp.rename(folder)
    return folder / "src"


def server_command(kind: str, workspace: Path, port: int) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if kind == "floor":
        return [sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "--port", str(port), "--log-level", "warning",
                "serve:hello"], env
    env["PYTHONPATH"] = str(kind == "current" and REPO / "src" or baseline_source(kind.split(":", 1)[1]))
    cli = "import sys; from rxradar.cli import app; sys.argv[0] = 'rxradar'; app()"
    return [sys.executable, "-c", cli, "serve", "-w", str(workspace), "--port", str(port)], env


def audit_records(workspace: Path) -> int:
    with sqlite3.connect(workspace / "meta.sqlite") as db:
        return db.execute("SELECT count(*) FROM audit_log WHERE action = 'view'").fetchone()[0]


def measure(kind: str, workspace: Path, requests: int, clients: int) -> dict:
    port = free_port()
    command, env = server_command(kind, workspace, port)
    before = audit_records(workspace)
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until_listening(port, server)
        client = subprocess.run([sys.executable, __file__, "--client", str(port), "--requests", str(requests),
                                 "--clients", str(clients), *(["--floor"] if kind == "floor" else [])],
                                capture_output=True, text=True)
        if client.returncode:
            raise SystemExit(f"the clients of {kind} failed: {client.stderr[-3000:]}")
    finally:
        server.terminate()
        server.wait(30)
    results = json.loads(client.stdout)
    if kind != "floor":
        results["audit_written"] = audit_records(workspace) - before
    return results


def ensure_workspace(scale: str) -> Path:
    """A synthetic state of this scale, ingested and analysed, kept under bench/out/ for reuse."""
    workspace = OUT / scale / "workspace"
    if not (workspace / "analytics" / "analysis.json").exists():
        rxradar = [sys.executable, "-c", "import sys; from rxradar.cli import app; sys.argv[0] = 'rxradar'; app()"]
        shutil.rmtree(OUT / scale, ignore_errors=True)
        subprocess.run([*rxradar, "synth", "--scale", scale, "--format", "parquet", "--out", str(OUT / scale)],
                       check=True, capture_output=True)
        subprocess.run([*rxradar, "analyze", "-w", str(workspace)], check=True, capture_output=True)
    return workspace


def bench_user(workspace: Path) -> None:
    from rxradar.serve.auth import set_user
    from rxradar.workspace import Workspace

    with Workspace(workspace, create=False) as ws:
        set_user(ws, USER, "investigator", PASSWORD, actor="bench")


def show(label: str, name: str, r: dict) -> str:
    ms = "  ".join(f"p{p} {1000 * r[f'p{p}']:7.1f}" for p in PERCENTILES)
    failed = f"  FAILED {r['failures']}" if r["failures"] else ""
    return f"{label:9s} {name:9s} {ms}  max {1000 * r['max']:7.1f} ms  {r['per_s']:6.0f} req/s{failed}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", type=Path, help="a workspace with an analysis (default: a medium "
                                                       "synthetic state under bench/out/, built if missing)")
    parser.add_argument("--scale", default="medium", help="scale of the synthetic state built when no --workspace")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=2000, help="requests per endpoint")
    parser.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the baseline dashboard "
                                                                     "('' for none)")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)  # the client process, on this port
    parser.add_argument("--floor", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        print(json.dumps(asyncio.run(run_client(args.client, args.requests, args.clients, args.floor))))
        return
    workspace = (args.workspace or ensure_workspace(args.scale)).resolve()
    bench_user(workspace)
    print(f"workspace {workspace}; {args.clients} concurrent clients, {args.requests} requests per endpoint; "
          f"{os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f})", flush=True)
    kinds = ["floor", *([f"baseline:{args.baseline_rev}"] if args.baseline_rev else []), "current"]
    for kind in kinds:
        results = measure(kind, workspace, args.requests, args.clients)
        label = kind.split(":")[0]
        written = results.pop("audit_written", None)
        for name, r in results.items():
            print(show(label, name, r), flush=True)
        if written is not None:
            asked = sum(r["audited"] for r in results.values())
            print(f"{label:9s} audit records written {written} of {asked} audited views"
                  f"{'' if written == asked else '  MISSING ' + str(asked - written)}", flush=True)


if __name__ == "__main__":
    main()

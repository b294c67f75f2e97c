#!/usr/bin/env python3
"""
txoci against CNCF Distribution (``docker-registry``) on this machine.

    python bench/run.py             # the full run (about 10-15 minutes)
    python bench/run.py --quick     # every case at small sizes, one round, < 1 minute
    python bench/run.py --profile   # txoci only, under py-spy: push and GET manifest

Both servers run on their own loopback port with a fresh data dir on the same
disk (a temporary directory next to this file), deletes enabled, logging at
warning level.  Every case runs against both, alternating txoci, Distribution,
txoci, ... for ``--rounds`` rounds.  Results go to ``bench/results.json`` and
``bench/results.md`` (``results-quick.*`` with ``--quick``, ``-workersN`` added
with ``--workers N``; CPU and memory are then those of all processes added up).  See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import mmap
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
DISTRIBUTION = "/usr/bin/docker-registry"
HOST = "127.0.0.1"

MiB = 1024 * 1024
GiB = 1024 * MiB

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
ACCEPT = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"


@dataclass
class Sizes:
    """Every size and duration of a run."""

    rounds: int = 3
    blob: int = GiB
    patch_chunks: int = 64
    #: Frame size of the Transfer-Encoding: chunked push (a streaming client's buffer).
    chunk_frame: int = 64 * 1024
    range_requests: int = 200
    wrk_seconds: float = 5.0
    tags_repo: int = 1000
    growth_small: int = 1000
    growth_big: int = 100_000
    #: Growth falls back to this when populating ``growth_big`` would not fit the budget.
    growth_fallback: int = 10_000
    populate_budget: float = 75.0
    page_requests: int = 20
    clients: int = 50
    client_blob: int = 16 * MiB
    sha_bytes: int = GiB
    #: Only cases 1, 2 and 6 (``--blobs-only``).
    blobs_only: bool = False
    #: Only case 4 (``--growth-only``).
    growth_only: bool = False


QUICK = Sizes(
    rounds=1, blob=16 * MiB, patch_chunks=16, range_requests=50, wrk_seconds=1.0, tags_repo=100,
    growth_small=100, growth_big=1000, growth_fallback=1000, populate_budget=20.0, page_requests=5,
    clients=50, client_blob=MiB, sha_bytes=128 * MiB,
)


def log(message: str) -> None:
    print(message, flush=True)


def sha256_digest(data: Any) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# A small HTTP/1.1 client on a raw socket: keep-alive, big sendall()s of
# memoryviews, bodies discarded with recv_into a reusable buffer.


class HTTPFailure(Exception):
    pass


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes = b""
    length: int = 0

    def location(self) -> str:
        """The ``Location`` as a path and query (Distribution sends absolute URLs)."""
        parts = urlsplit(self.headers["location"])
        return parts.path + (f"?{parts.query}" if parts.query else "")

    def expect(self, *statuses: int) -> Response:
        if self.status not in statuses:
            raise HTTPFailure(f"HTTP {self.status}, expected {statuses}: {self.body[:300]!r}")
        return self


class Conn:
    """One keep-alive connection to a server on 127.0.0.1."""

    def __init__(self, port: int, timeout: float = 300.0) -> None:
        self.port = port
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.scratch = bytearray(MiB)

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buf = bytearray()
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes | memoryview | None = None,
        *,
        chunked: tuple[memoryview, int] | None = None,
        sink: Callable[[memoryview], None] | None = None,
        collect: bool = True,
    ) -> Response:
        """
        Send a request and read its response.  ``chunked`` is (data, frame
        size) for a Transfer-Encoding: chunked body; ``sink`` gets the response
        body piece by piece instead of it being collected; ``collect=False``
        just counts it.
        """
        sock = self._connect()
        lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{self.port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if chunked is not None:
            lines.append("Transfer-Encoding: chunked")
        elif body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body) if body is not None else 0}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if body is not None and len(body) <= 64 * 1024:
                sock.sendall(head + bytes(body))
            else:
                sock.sendall(head)
                if body is not None:
                    sock.sendall(body)
                elif chunked is not None:
                    self._send_chunked(sock, *chunked)
            return self._read_response(method, sink, collect)
        except BaseException:
            self.close()
            raise

    def _send_chunked(self, sock: socket.socket, data: memoryview, frame: int) -> None:
        for start in range(0, len(data), frame):
            piece = data[start : start + frame]
            parts = [b"%x\r\n" % len(piece), piece, b"\r\n"]
            total = len(parts[0]) + len(piece) + 2
            sent = sock.sendmsg(parts)
            if sent < total:
                rest = b"".join(bytes(p) for p in parts)[sent:]
                sock.sendall(rest)
        sock.sendall(b"0\r\n\r\n")

    def _fill(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(256 * 1024)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _read_line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            self._fill()

    def _read_response(
        self, method: str, sink: Callable[[memoryview], None] | None, collect: bool
    ) -> Response:
        while True:
            while (end := self.buf.find(b"\r\n\r\n")) < 0:
                self._fill()
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[: end + 4]
            status = int(head[0].split()[1])
            if status >= 200 or status == 101:
                break
        headers: dict[str, str] = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        parts: list[bytes] = []

        def deliver(view: memoryview) -> None:
            if sink is not None:
                sink(view)
            elif collect:
                parts.append(bytes(view))

        length = 0
        if method == "HEAD" or status in (204, 304):
            pass
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self._read_line().split(b";")[0], 16)
                if size == 0:
                    while self._read_line():
                        pass
                    break
                length += self._read_exact(size, deliver)
                self._read_line()
        elif "content-length" in headers:
            length = self._read_exact(int(headers["content-length"]), deliver)
        else:
            length = self._read_exact(None, deliver)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Response(status, headers, b"".join(parts), length)

    def _read_exact(self, size: int | None, deliver: Callable[[memoryview], None]) -> int:
        """Read ``size`` body bytes (or up to the end of the connection)."""
        got = 0
        if self.buf:
            take = len(self.buf) if size is None else min(size, len(self.buf))
            deliver(memoryview(self.buf)[:take])
            del self.buf[:take]
            got += take
        assert self.sock is not None
        view = memoryview(self.scratch)
        while size is None or got < size:
            want = len(view) if size is None else min(len(view), size - got)
            n = self.sock.recv_into(view, want)
            if n == 0:
                if size is None:
                    self.close()
                    break
                raise ConnectionError("server closed the connection mid-body")
            deliver(view[:n])
            got += n
        return got


# Servers and what they cost.


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        text = f.read()
    fields = text[text.rfind(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


#: Runs ``twistd`` with a log observer that drops everything below warning.
TWISTD_BOOT = """
import sys, types
from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                            textFileLogObserver)
module = types.ModuleType("_txoci_bench_log")
module.observer = lambda: FilteringLogObserver(
    textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.warn)])
sys.modules[module.__name__] = module
from twisted.scripts.twistd import run
sys.argv[0] = "twistd"
run()
"""


class Server:
    name = ""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.data_dir = workdir / f"{self.name}-data"
        self.data_dir.mkdir()
        self.log_path = workdir / f"{self.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        with open(self.log_path, "ab") as logfile:
            self.process = subprocess.Popen(
                self.command(), stdout=logfile, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=ROOT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start; see {self.log_path}")
            try:
                conn = Conn(self.port, timeout=2)
                conn.request("GET", "/v2/").expect(200)
                conn.close()
                return
            except (OSError, HTTPFailure):
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer on port {self.port}; see {self.log_path}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError(f"{self.name} is not running; see {self.log_path}")

    def pids(self) -> list[int]:
        """The server's process and its children (the workers of ``--workers``)."""
        pids = [self.pid]
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                pids += [int(child) for child in f.read().split()]
        except OSError:
            pass
        return pids

    def _total(self, measure: Callable[[int], float]) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                total += measure(pid)
            except (OSError, ValueError, IndexError):
                pass  # a worker that just ended
        return total

    def cpu(self) -> float:
        """CPU seconds of every process of the server."""
        return self._total(proc_cpu_seconds)

    def rss_kib(self) -> int:
        """Resident memory of every process of the server, added up."""
        return int(self._total(lambda pid: proc_status_kib(pid, "VmRSS")))

    def hwm_kib(self) -> int:
        """Peak resident memory of each process of the server, added up."""
        return int(self._total(lambda pid: proc_status_kib(pid, "VmHWM")))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Txoci(Server):
    name = "txoci"
    #: ``--workers``: processes serving the registry (set from the command line).
    workers = 1

    def command(self) -> list[str]:
        return [
            sys.executable, "-c", TWISTD_BOOT, "-n", "--pidfile=", "--logger=_txoci_bench_log.observer",
            "oci", "--data-dir", str(self.data_dir), "--listen", f"tcp:{self.port}:interface={HOST}",
            "--workers", str(self.workers),
            # As Distribution's ``log.accesslog.disabled: true`` below.
            "--disable-access-log",
        ]


class Distribution(Server):
    name = "distribution"

    def command(self) -> list[str]:
        config = self.data_dir.parent / "distribution.yml"
        # The access log is off too: at warning level txoci writes no request lines either.
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            "storage:\n"
            f"  filesystem:\n    rootdirectory: {self.data_dir}\n"
            "  delete:\n    enabled: true\n"
            "  cache:\n    blobdescriptor: inmemory\n"
            "  maintenance:\n    uploadpurging:\n      enabled: false\n"
            f"http:\n  addr: {HOST}:{self.port}\n"
        )
        return [DISTRIBUTION, "serve", str(config)]


class RSSSampler(threading.Thread):
    """VmRSS of every server every 50 ms; peaks per measurement window."""

    def __init__(self, servers: list[Server]) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.peaks = {s.name: 0 for s in servers}
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            for server in self.servers:
                try:
                    rss = server.rss_kib()
                except OSError:
                    continue
                with self.lock:
                    self.peaks[server.name] = max(self.peaks[server.name], rss)

    def reset(self, server: Server) -> None:
        with self.lock:
            self.peaks[server.name] = server.rss_kib()

    def peak_mib(self, server: Server) -> float:
        with self.lock:
            return max(self.peaks[server.name], server.rss_kib()) / 1024


# Registry operations.


def push_blob(
    conn: Conn, repo: str, view: memoryview, digest: str, method: str = "monolithic",
    chunks: int = 1, frame: int = 64 * 1024,
) -> None:
    """Push ``view`` as one blob: monolithic (POST + PUT), chunked (one streamed PATCH) or patches."""
    location = conn.request("POST", f"/v2/{repo}/blobs/uploads/").expect(202).location()
    octet = {"Content-Type": "application/octet-stream"}
    if method == "monolithic":
        final_body: memoryview | None = view
    elif method == "chunked":
        location = conn.request("PATCH", location, octet, chunked=(view, frame)).expect(202).location()
        final_body = None
    elif method == "patches":
        size = len(view)
        step = -(-size // chunks)
        for start in range(0, size, step):
            piece = view[start : start + step]
            headers = {**octet, "Content-Range": f"{start}-{start + len(piece) - 1}"}
            location = conn.request("PATCH", location, headers, piece).expect(202).location()
        final_body = None
    else:
        raise ValueError(method)
    separator = "&" if "?" in location else "?"
    response = conn.request("PUT", f"{location}{separator}digest={digest}", octet, final_body)
    response.expect(201)
    if response.headers.get("docker-content-digest") != digest:
        raise HTTPFailure(f"pushed {digest}, server says {response.headers.get('docker-content-digest')}")


def mount_blob(conn: Conn, repo: str, digest: str, source: str) -> None:
    conn.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}").expect(201)


def manifest_body(config: tuple[str, int], layer: tuple[str, int], note: str = "") -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config[0], "size": config[1]},
        "layers": [{"mediaType": OCI_LAYER, "digest": layer[0], "size": layer[1]}],
    }
    if note:
        document["annotations"] = {"org.example.bench": note}
    return json.dumps(document, separators=(",", ":")).encode()


def put_manifest(conn: Conn, repo: str, reference: str, body: bytes) -> None:
    conn.request("PUT", f"/v2/{repo}/manifests/{reference}", {"Content-Type": OCI_MANIFEST}, body).expect(201)


def run_parallel(
    port: int, items: list[Any], work: Callable[[Conn, Any], None], threads: int = 16,
    deadline: float | None = None,
) -> int:
    """Run ``work(conn, item)`` for every item on ``threads`` connections; the count done."""
    done = Counter[str]()
    lock = threading.Lock()

    def worker(index: int) -> None:
        conn = Conn(port)
        count = 0
        try:
            for item in items[index::threads]:
                if deadline is not None and time.monotonic() > deadline:
                    break
                work(conn, item)
                count += 1
        finally:
            conn.close()
            with lock:
                done["n"] += count

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker, i) for i in range(threads)]:
            future.result()
    return done["n"]


# Results.


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    #: +1 when more is better, -1 when less is.
    better: int
    target: str = ""
    #: The ratio txoci/Distribution must reach (>= when better is +1, <= when -1).
    target_ratio: float | None = None
    #: An absolute bound on txoci's value (``< bound``), for RSS.
    target_below: float | None = None
    #: An absolute floor for txoci's median (``>= floor``).
    target_min: float | None = None
    #: Whether the ratio means anything (not for a client-side number).
    compare: bool = True
    values: dict[str, list[float]] = field(default_factory=lambda: {"txoci": [], "distribution": []})

    def add(self, server: str, value: float) -> None:
        self.values[server].append(value)

    def summary(self, server: str) -> dict[str, float] | None:
        values = self.values[server]
        if not values:
            return None
        return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}

    def ratio(self) -> float | None:
        a, b = self.summary("txoci"), self.summary("distribution")
        if not self.compare or a is None or b is None or b["median"] == 0:
            return None
        return a["median"] / b["median"]

    def meets(self) -> bool | None:
        a = self.summary("txoci")
        if self.target_below is not None:
            return None if a is None else a["max"] < self.target_below
        if self.target_min is not None:
            return None if a is None else a["median"] >= self.target_min
        ratio = self.ratio()
        if self.target_ratio is None or ratio is None:
            return None
        return ratio >= self.target_ratio if self.better > 0 else ratio <= self.target_ratio


class Results:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}
        self.notes: list[str] = []
        self.extra: dict[str, Any] = {}

    def metric(self, key: str, label: str, unit: str, better: int, **kwargs: Any) -> Metric:
        if key not in self.metrics:
            self.metrics[key] = Metric(key, label, unit, better, **kwargs)
        return self.metrics[key]

    def note(self, text: str) -> None:
        log(f"  note: {text}")
        self.notes.append(text)


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def cell(summary: dict[str, float] | None) -> str:
    if summary is None:
        return "-"
    if summary["n"] == 1:
        return fmt(summary["median"])
    return f"{fmt(summary['median'])} ({fmt(summary['min'])}–{fmt(summary['max'])})"


def markdown_table(results: Results) -> str:
    rows = [
        "| case | unit | txoci median (min–max) | Distribution median (min–max) | txoci/Distribution "
        "| target | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for m in results.metrics.values():
        ratio = m.ratio()
        meets = m.meets()
        mark = "" if meets is None else ("yes" if meets else "**no**")
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.2g}x"
        arrow = "↑" if m.better > 0 else "↓"
        rows.append(
            f"| {m.label} | {m.unit} {arrow} | {cell(m.summary('txoci'))} "
            f"| {cell(m.summary('distribution'))} | {ratio_text} | {m.target} | {mark} |"
        )
    return "\n".join(rows) + "\n"


def print_metric(m: Metric) -> None:
    def short(summary: dict[str, float] | None) -> str:
        if summary is None:
            return "-"
        return f"median {fmt(summary['median'])} min {fmt(summary['min'])} max {fmt(summary['max'])}"

    ratio = m.ratio()
    log(f"  {m.label} [{m.unit}]: txoci {short(m.summary('txoci'))} | "
        f"distribution {short(m.summary('distribution'))} | ratio {'-' if ratio is None else f'{ratio:.2f}'}")


# The machine.


def machine_info(workdir: Path) -> dict[str, Any]:
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    df = subprocess.run(["df", "-hT", str(workdir)], capture_output=True, text=True).stdout.splitlines()
    tmp_df = subprocess.run(["df", "-hT", "/tmp"], capture_output=True, text=True).stdout.splitlines()
    versions: dict[str, str] = {"python": platform.python_version()}
    try:
        import twisted

        versions["twisted"] = twisted.__version__
    except ImportError:
        pass
    out = subprocess.run([DISTRIBUTION, "--version"], capture_output=True, text=True)
    versions["distribution"] = (out.stdout or out.stderr).strip().split()[-1]
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    versions["wrk"] = " ".join((wrk.stdout or wrk.stderr).split()[1:2])
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "txoci"], capture_output=True, text=True)
    versions["txoci"] = head.stdout.strip() + (" with uncommitted changes" if dirty.stdout.strip() else "")
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "disk": df[-1] if df else "",
        "tmp": tmp_df[-1] if tmp_df else "",
        "kernel": platform.release(),
        "versions": versions,
    }


def system_busy_seconds() -> float:
    """CPU time the whole machine spent not idle, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# The cases.


class Bench:
    def __init__(self, sizes: Sizes, workdir: Path, servers: list[Server]) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.servers = servers
        self.results = Results()
        self.sampler = RSSSampler(servers)
        self.nonce = os.urandom(4).hex()
        self.small: dict[str, tuple[str, int]] = {}

    def alternate(self) -> Iterable[tuple[int, Server]]:
        for r in range(self.sizes.rounds):
            for server in self.servers:
                server.check_alive()
                yield r, server

    # 6. sha256

    def sha256_rate(self) -> float:
        buffer = os.urandom(64 * MiB)
        rates = []
        for _ in range(3):
            h = hashlib.sha256()
            start = time.perf_counter()
            for _ in range(max(1, self.sizes.sha_bytes // len(buffer))):
                h.update(buffer)
            rates.append(max(1, self.sizes.sha_bytes // len(buffer)) * len(buffer) / MiB
                         / (time.perf_counter() - start))
        return max(rates)

    def loopback_rate(self, view: memoryview) -> float:
        """The same client sending the blob to a process that only discards it: the loopback ceiling."""
        sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
        try:
            assert sink.stdout is not None
            port = int(sink.stdout.readline())
            with socket.create_connection((HOST, port)) as sock:
                start = time.perf_counter()
                sock.sendall(view)
                sock.shutdown(socket.SHUT_WR)
                sock.recv(1)
                return len(view) / MiB / (time.perf_counter() - start)
        finally:
            sink.wait(30)

    # 1. Push

    def make_blob_file(self) -> tuple[mmap.mmap, memoryview]:
        path = self.workdir / "blob.bin"
        with open(path, "wb") as f:
            left = self.sizes.blob
            while left:
                piece = os.urandom(min(left, 16 * MiB))
                f.write(piece)
                left -= len(piece)
        fd = os.open(path, os.O_RDWR)
        try:
            mapped = mmap.mmap(fd, self.sizes.blob)
        finally:
            os.close(fd)
        return mapped, memoryview(mapped)

    def fresh_content(self, mapped: mmap.mmap, view: memoryview) -> str:
        """Make the blob new (its first bytes change) so no server sees it twice; its digest."""
        mapped[:16] = os.urandom(16)
        return sha256_digest(view)

    def case_push(self, mapped: mmap.mmap, view: memoryview) -> dict[str, str]:
        s = self.sizes
        r = self.results
        ways = [
            ("monolithic", "POST + PUT ?digest= with the whole body"),
            ("chunked", "POST + one streamed PATCH (chunked) + PUT"),
            ("patches", f"POST + {s.patch_chunks} PATCH with Content-Range + PUT"),
        ]
        pulled: dict[str, str] = {}
        for way, description in ways:
            log(f"push {fmt(s.blob / MiB)} MiB: {description}")
            rate = r.metric(f"push.{way}.mibs", f"push {way}", "MiB/s", +1,
                            target="≥ 2.5x", target_ratio=2.5)
            cpu = r.metric(f"push.{way}.cpu", f"push {way}: server CPU", "s/GiB", -1)
            rss = r.metric(f"push.{way}.rss", f"push {way}: server peak RSS", "MiB", -1,
                           target="txoci < 100", target_below=100.0)
            for _, server in self.alternate():
                digest = self.fresh_content(mapped, view)
                repo = f"bench/push-{way}"
                conn = Conn(server.port)
                os.sync()
                self.sampler.reset(server)
                cpu0 = server.cpu()
                start = time.perf_counter()
                push_blob(conn, repo, view, digest, way, s.patch_chunks, s.chunk_frame)
                elapsed = time.perf_counter() - start
                cpu1 = server.cpu()
                rate.add(server.name, s.blob / MiB / elapsed)
                cpu.add(server.name, (cpu1 - cpu0) / (s.blob / GiB))
                rss.add(server.name, self.sampler.peak_mib(server))
                # Keep each server's last monolithic push for the pull case.
                if way == "monolithic":
                    pulled[server.name] = digest
                else:
                    conn.request("DELETE", f"/v2/{repo}/blobs/{digest}").expect(202)
                conn.close()
            for m in (rate, cpu, rss):
                print_metric(m)
        return pulled

    # 2. Pull

    def case_pull(self, pulled: dict[str, str]) -> None:
        s = self.sizes
        r = self.results
        repo = "bench/push-monolithic"
        log(f"pull {fmt(s.blob / MiB)} MiB, and 1 MiB Range GETs from its middle")
        rate = r.metric("pull.mibs", "pull (GET)", "MiB/s", +1, target="≥ 2x", target_ratio=2.0)
        cpu = r.metric("pull.cpu", "pull: server CPU", "s/GiB", -1)
        rss = r.metric("pull.rss", "pull: server peak RSS", "MiB", -1, target="txoci < 100",
                       target_below=100.0)
        p50 = r.metric("range.p50", "1 MiB Range GET p50", "ms", -1, target="≤ 0.5x", target_ratio=0.5)
        p99 = r.metric("range.p99", "1 MiB Range GET p99", "ms", -1)
        middle = s.blob // 2
        for _, server in self.alternate():
            path = f"/v2/{repo}/blobs/{pulled[server.name]}"
            conn = Conn(server.port)
            os.sync()
            self.sampler.reset(server)
            cpu0 = server.cpu()
            start = time.perf_counter()
            response = conn.request("GET", path, collect=False).expect(200)
            elapsed = time.perf_counter() - start
            cpu1 = server.cpu()
            if response.length != s.blob:
                raise HTTPFailure(f"{server.name}: pulled {response.length} bytes, not {s.blob}")
            rate.add(server.name, s.blob / MiB / elapsed)
            cpu.add(server.name, (cpu1 - cpu0) / (s.blob / GiB))
            rss.add(server.name, self.sampler.peak_mib(server))
            headers = {"Range": f"bytes={middle}-{middle + MiB - 1}"}
            times = []
            for _ in range(s.range_requests):
                start = time.perf_counter()
                response = conn.request("GET", path, headers, collect=False).expect(206)
                times.append((time.perf_counter() - start) * 1000)
                if response.length != MiB:
                    raise HTTPFailure(f"{server.name}: range GET returned {response.length} bytes")
            conn.close()
            p50.add(server.name, percentile(times, 50))
            p99.add(server.name, percentile(times, 99))
        for m in (rate, cpu, rss, p50, p99):
            print_metric(m)

    # 3. Small requests with wrk

    def setup_small(self) -> None:
        """A config and a layer in bench/small, tagged ``latest``; a repository with many tags."""
        config_data = json.dumps({"architecture": "amd64", "os": "linux", "bench": self.nonce}).encode()
        layer_data = os.urandom(4096)
        config = (sha256_digest(config_data), len(config_data))
        layer = (sha256_digest(layer_data), len(layer_data))
        self.small = {"config": config, "layer": layer}
        body = manifest_body(config, layer)
        tags = [f"t{i:06d}" for i in range(self.sizes.tags_repo)]
        for server in self.servers:
            conn = Conn(server.port)
            for repo in ("bench/small", "bench/tags", "bench/put"):
                for data, (digest, _) in ((config_data, config), (layer_data, layer)):
                    push_blob(conn, repo, memoryview(data), digest)
            put_manifest(conn, "bench/small", "latest", body)
            conn.close()
            run_parallel(server.port, tags, lambda c, tag: put_manifest(c, "bench/tags", tag, body))

    def wrk(self, server: Server, script: str, path: str, connections: int, args: list[str],
            headers: dict[str, str] | None = None, duration: float | None = None) -> dict[str, float]:
        script_path = self.workdir / "wrk.lua"
        script_path.write_text(script + WRK_DONE)
        duration = duration or self.sizes.wrk_seconds
        seconds = f"{max(1, round(duration))}s"
        command = ["wrk", "-t", "1", "-c", str(connections), "-d", seconds, "--timeout", "10s",
                   "-s", str(script_path)]
        for name, value in (headers or {}).items():
            command += ["-H", f"{name}: {value}"]
        command += [f"http://{HOST}:{server.port}{path}", "--", *args]
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        match = re.search(r"^WRKJSON (.*)$", out.stdout, re.M)
        if out.returncode != 0 or match is None:
            raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
        data: dict[str, float] = json.loads(match.group(1))
        errors = sum(data[k] for k in ("status", "connect", "read", "write", "timeout"))
        if errors:
            raise RuntimeError(f"wrk against {server.name} {path}: {data}\n{out.stdout}")
        return data

    def hey(self, server: Server, method: str, path: str, connections: int,
            duration: float | None = None) -> dict[str, float]:
        """
        ``hey`` for HEAD: wrk 4.1 waits for a body after a HEAD response that
        has a Content-Length, so it cannot measure HEAD.
        """
        duration = duration or self.sizes.wrk_seconds
        seconds = f"{max(1, round(duration))}s"
        command = ["hey", "-z", seconds, "-c", str(connections), "-m", method,
                   f"http://{HOST}:{server.port}{path}"]
        out = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
        text = out.stdout
        total = re.search(r"Total:\s+([\d.]+) secs", text)
        p50 = re.search(r"50% in ([\d.]+) secs", text)
        p99 = re.search(r"99% in ([\d.]+) secs", text)
        codes = {int(c): int(n) for c, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", text)}
        if out.returncode != 0 or not total or set(codes) - {200} or "Error distribution" in text:
            raise RuntimeError(f"hey against {server.name} {path}: {text}\n{out.stderr}")
        if not codes or not (p50 and p99):
            return {"requests": 0, "duration_us": float(total.group(1)) * 1e6, "p50_us": 0, "p99_us": 0}
        return {"requests": codes[200], "duration_us": float(total.group(1)) * 1e6,
                "p50_us": float(p50.group(1)) * 1e6, "p99_us": float(p99.group(1)) * 1e6}

    def case_small(self) -> None:
        s = self.sizes
        r = self.results
        log(f"small requests with wrk, {fmt(s.wrk_seconds)} s each")
        self.setup_small()
        layer = self.small["layer"][0]
        config, layer_size = self.small["config"], self.small["layer"][1]
        template = manifest_body(config, (layer, layer_size), "NOTE").decode()
        put_script = WRK_PUT.replace("TEMPLATE", json.dumps(template))
        cases = [
            ("head_blob", "HEAD blob (hey)", None, f"/v2/bench/small/blobs/{layer}", {}, "≥ 3x", {32: 3.0}),
            ("get_manifest", "GET manifest by tag", "", "/v2/bench/small/manifests/latest",
             {"Accept": ACCEPT}, "≥ 3x", {32: 3.0}),
            ("tags_list", f"GET tags/list ({s.tags_repo} tags)", "", "/v2/bench/tags/tags/list", {},
             "≥ 2x", {1: 2.0, 32: 2.0}),
            ("put_manifest", "PUT manifest (distinct)", put_script, "/v2/bench/put/manifests/", {},
             "≥ 2x", {1: 2.0, 32: 2.0}),
        ]
        for key, label, script, path, headers, target, targets in cases:
            for connections in (1, 32):
                rps = r.metric(f"{key}.c{connections}.rps", f"{label}, c={connections}", "req/s", +1,
                               target=target if connections in targets else "",
                               target_ratio=targets.get(connections))
                p50 = r.metric(f"{key}.c{connections}.p50", f"{label}, c={connections}: p50", "ms", -1)
                p99 = r.metric(f"{key}.c{connections}.p99", f"{label}, c={connections}: p99", "ms", -1)
                for round_, server in self.alternate():
                    prefix = f"{self.nonce}r{round_}c{connections}"
                    for duration in (s.wrk_seconds, 3 * s.wrk_seconds):
                        if script is None:
                            data = self.hey(server, "HEAD", path, connections, duration)
                        else:
                            data = self.wrk(server, script, path, connections, [prefix], headers, duration)
                        if data["requests"]:
                            break
                        self.results.note(f"{label}, c={connections}: no request completed on "
                                          f"{server.name} in {fmt(duration)} s; ran it again for longer")
                    else:
                        raise RuntimeError(f"{server.name}: no {label} request completed")
                    rps.add(server.name, data["requests"] / (data["duration_us"] / 1e6))
                    p50.add(server.name, data["p50_us"] / 1000)
                    p99.add(server.name, data["p99_us"] / 1000)
                for m in (rps, p50, p99):
                    print_metric(m)

    # 4. Growth

    def populate(self, server: Server, kind: str, start: int, stop: int, deadline: float) -> int:
        body = manifest_body(self.small["config"], self.small["layer"])
        layer = self.small["layer"][0]
        if kind == "tags":
            items = [f"t{i:06d}" for i in range(start, stop)]

            def work(conn: Conn, tag: str) -> None:
                put_manifest(conn, "growth/tags", tag, body)
        else:
            items = [f"growth/r{i:06d}" for i in range(start, stop)]

            def work(conn: Conn, repo: str) -> None:
                mount_blob(conn, repo, layer, "bench/small")
        return run_parallel(server.port, items, work, threads=16, deadline=deadline)

    def case_growth(self) -> None:
        s = self.sizes
        log(f"growth: a page of 100 with {s.growth_small} vs up to {s.growth_big} tags / repositories")
        for server in self.servers:
            conn = Conn(server.port)
            for data_name in ("config", "layer"):
                mount_blob(conn, "growth/tags", self.small[data_name][0], "bench/small")
            conn.close()
        rates: dict[str, float] = {}
        for server in self.servers:
            for kind in ("tags", "repos"):
                start = time.perf_counter()
                done = self.populate(server, kind, 0, s.growth_small, time.monotonic() + 3600)
                rate = done / (time.perf_counter() - start)
                rates[f"{server.name}.{kind}"] = rate
                log(f"  populated {done} {kind} on {server.name}: {rate:.0f}/s")
        self.results.extra["populate_rates_per_s"] = rates
        big = s.growth_big
        slowest = min(rates.values())
        if (big - s.growth_small) / slowest > s.populate_budget:
            projected = (big - s.growth_small) / slowest
            self.results.note(
                f"populating {big:,} would take about {projected:.0f} s on the slowest "
                f"server (over the {s.populate_budget:.0f} s budget), so growth uses {s.growth_fallback:,}"
            )
            big = s.growth_fallback
        self.measure_pages(s.growth_small)
        reached: dict[str, int] = {}
        for server in self.servers:
            for kind in ("tags", "repos"):
                start = time.perf_counter()
                deadline = time.monotonic() + s.populate_budget * 2
                done = s.growth_small + self.populate(server, kind, s.growth_small, big, deadline)
                reached[f"{server.name}.{kind}"] = done
                log(f"  populated {done} {kind} on {server.name} in {time.perf_counter() - start:.0f} s")
        if min(reached.values()) < big:
            self.results.note(f"populating stopped at its deadline: reached {reached}")
        self.results.extra["growth_reached"] = reached
        self.measure_pages(big)

    def measure_pages(self, count: int) -> None:
        s = self.sizes
        r = self.results
        pages = [
            ("tags", "tags/list?n=100", "/v2/growth/tags/tags/list?n=100", f"t{count // 2:06d}"),
            ("catalog", "_catalog?n=100", "/v2/_catalog?n=100", f"growth/r{count // 2:06d}"),
        ]
        for key, label, path, middle in pages:
            for where, query in (("first", ""), ("middle", f"&last={middle}")):
                m = r.metric(f"growth.{key}.{count}.{where}", f"{label}, {where} page, {count:,}", "ms", -1)
                sizes = r.extra.setdefault("growth_page_items", {})
                for _, server in self.alternate():
                    conn = Conn(server.port)
                    times = []
                    for _ in range(s.page_requests):
                        start = time.perf_counter()
                        response = conn.request("GET", path + query).expect(200)
                        times.append((time.perf_counter() - start) * 1000)
                    conn.close()
                    document = json.loads(response.body)
                    items = document.get("tags") or document.get("repositories") or []
                    sizes[f"{m.key}.{server.name}"] = len(items)
                    m.add(server.name, statistics.median(times))
                print_metric(m)
                counts = {name: sizes.get(f"{m.key}.{name}") for name in ("txoci", "distribution")}
                if len(set(counts.values())) > 1:
                    r.note(f"{m.label}: the servers answered with different numbers of items {counts}")

    # 5. Concurrency

    def case_concurrency(self) -> None:
        s = self.sizes
        r = self.results
        log(f"concurrency: {s.clients} clients each push then pull a distinct "
            f"{fmt(s.client_blob / MiB)} MiB blob")
        rate = r.metric("concurrency.mibs", f"{s.clients} clients push+pull", "MiB/s", +1)
        cpu = r.metric("concurrency.cpu", f"{s.clients} clients: server CPU", "s/GiB", -1)
        rss = r.metric("concurrency.rss", f"{s.clients} clients: server peak RSS", "MiB", -1,
                       target="txoci < 100", target_below=100.0)
        for _, server in self.alternate():
            blobs = [os.urandom(s.client_blob) for _ in range(s.clients)]
            digests = [sha256_digest(b) for b in blobs]
            barrier = threading.Barrier(s.clients + 1)
            errors: list[str] = []

            def client(i: int, server: Server = server, blobs: list[bytes] = blobs,
                       digests: list[str] = digests, barrier: threading.Barrier = barrier,
                       errors: list[str] = errors) -> None:
                conn = Conn(server.port)
                try:
                    barrier.wait()
                    push_blob(conn, "bench/concurrency", memoryview(blobs[i]), digests[i])
                    h = hashlib.sha256()
                    response = conn.request("GET", f"/v2/bench/concurrency/blobs/{digests[i]}", sink=h.update)
                    response.expect(200)
                    if "sha256:" + h.hexdigest() != digests[i] or response.length != s.client_blob:
                        errors.append(f"client {i}: pulled content does not match {digests[i]}")
                except Exception as e:
                    errors.append(f"client {i}: {e!r}")
                finally:
                    conn.close()

            threads = [threading.Thread(target=client, args=(i,)) for i in range(s.clients)]
            for t in threads:
                t.start()
            os.sync()
            self.sampler.reset(server)
            cpu0 = server.cpu()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            cpu1 = server.cpu()
            if errors:
                raise RuntimeError(f"{server.name}: {len(errors)} errors: {errors[:5]}")
            moved = 2 * s.clients * s.client_blob
            rate.add(server.name, moved / MiB / elapsed)
            cpu.add(server.name, (cpu1 - cpu0) / (moved / GiB))
            rss.add(server.name, self.sampler.peak_mib(server))
        for m in (rate, cpu, rss):
            print_metric(m)

    def run(self) -> None:
        self.sampler.start()
        if self.sizes.growth_only:
            self.setup_small()
            self.case_growth()
            self.sampler.stopping.set()
            return
        r = self.results
        sha = r.metric("sha256.mibs", "hashlib.sha256, one core (client side)", "MiB/s", +1,
                       compare=False)
        rate = self.sha256_rate()
        for server in self.servers:
            sha.add(server.name, rate)
        log(f"hashlib.sha256 on one core: {rate:.0f} MiB/s")
        mapped, view = self.make_blob_file()
        ceiling = r.metric("loopback.mibs", "loopback ceiling: this client to a discarding process", "MiB/s",
                           +1, compare=False)
        for _ in range(2):
            rate = self.loopback_rate(view)
            for server in self.servers:
                ceiling.add(server.name, rate)
        log(f"loopback ceiling: {rate:.0f} MiB/s")
        try:
            pulled = self.case_push(mapped, view)
            self.case_pull(pulled)
        finally:
            view.release()
            mapped.close()
            (self.workdir / "blob.bin").unlink()
        if not self.sizes.blobs_only:
            self.case_small()
            self.case_growth()
            self.case_concurrency()
        rate = self.sha256_rate()
        for server in self.servers:
            sha.add(server.name, rate)
        sha_rate = statistics.median(sha.values["txoci"])
        for way in ("monolithic", "chunked", "patches"):
            summary = r.metrics[f"push.{way}.mibs"].summary("txoci")
            assert summary is not None
            m = r.metric(f"push.{way}.of_sha256", f"push {way} as a share of the sha256 rate", "%", +1,
                         target="txoci ≥ 50", target_min=50.0, compare=False)
            m.add("txoci", 100 * summary["median"] / sha_rate)
            dist = r.metrics[f"push.{way}.mibs"].summary("distribution")
            assert dist is not None
            m.add("distribution", 100 * dist["median"] / sha_rate)
        for server in self.servers:
            key = r.metric("rss.hwm", "whole run: VmHWM", "MiB", -1, target="txoci < 100", target_below=100.0)
            key.add(server.name, server.hwm_kib() / 1024)
        self.sampler.stopping.set()


#: A process that accepts one connection and discards what it reads.
SINK = """
import socket
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)
print(server.getsockname()[1], flush=True)
connection, _ = server.accept()
view = memoryview(bytearray(1 << 20))
while connection.recv_into(view):
    pass
connection.close()
"""

WRK_DONE = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "status": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %f}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""

#: Distinct manifests: each request PUTs a new tag with its own annotation.
WRK_PUT = r"""
local counter = 0
thread_id = 0
local prefix = "x"
local template = TEMPLATE
local next_id = 0
setup = function(thread)
  next_id = next_id + 1
  thread:set("thread_id", next_id)
end
init = function(args)
  prefix = args[1] or "x"
end
request = function()
  counter = counter + 1
  local note = prefix .. "t" .. tostring(thread_id) .. "n" .. tostring(counter)
  local body = string.gsub(template, "NOTE", note)
  local headers = {}
  headers["Content-Type"] = "application/vnd.oci.image.manifest.v1+json"
  return wrk.format("PUT", wrk.path .. note, headers, body)
end
"""


def check_tools() -> None:
    if not os.path.exists(DISTRIBUTION):
        sys.exit(f"{DISTRIBUTION} is missing: apt-get install docker-registry")
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install {tool}")


def work_directory() -> Path:
    """A fresh directory next to the bench, on a real disk (not tmpfs)."""
    workdir = Path(tempfile.mkdtemp(prefix=".work-", dir=BENCH))
    fstype = subprocess.run(["df", "--output=fstype", str(workdir)], capture_output=True, text=True).stdout
    if "tmpfs" in fstype:
        shutil.rmtree(workdir)
        sys.exit(f"{BENCH} is on tmpfs; the bench must write to a disk")
    return workdir


def write_results(results: Results, sizes: Sizes, machine: dict[str, Any], elapsed: float, stem: str) -> None:
    document = {
        "machine": machine,
        "sizes": sizes.__dict__,
        "elapsed_s": round(elapsed, 1),
        "notes": results.notes,
        "extra": results.extra,
        "metrics": {
            key: {
                "label": m.label, "unit": m.unit, "better": "higher" if m.better > 0 else "lower",
                "target": m.target, "values": m.values,
                "txoci": m.summary("txoci"), "distribution": m.summary("distribution"),
                "ratio": m.ratio(), "meets_target": m.meets(),
            }
            for key, m in results.metrics.items()
        },
    }
    (BENCH / f"{stem}.json").write_text(json.dumps(document, indent=2) + "\n")
    lines = [
        f"# txoci vs Distribution ({sizes.rounds} round(s), {elapsed / 60:.1f} min, "
        + ("growth only" if sizes.growth_only else
           f"{fmt(sizes.blob / MiB)} MiB blob{', blob cases only' if sizes.blobs_only else ''}")
        + ")",
        "",
        f"Machine: {machine['nproc']} CPUs ({machine['cpu_model']}), {machine['memory_gib']} GiB RAM, "
        f"data on `{machine['disk']}`.  {', '.join(f'{k} {v}' for k, v in machine['versions'].items())}.",
        "",
        f"Interference: {machine.get('other_load', 'not measured')}.",
        "",
        "Medians over rounds, with min–max; ↑ more is better, ↓ less is better.",
        "",
        markdown_table(results),
    ]
    if results.notes:
        lines += ["Notes:", ""] + [f"- {n}" for n in results.notes] + [""]
    (BENCH / f"{stem}.md").write_text("\n".join(lines))


# Profiling (``--profile``): txoci alone, under py-spy.


def _poll_line() -> str:
    """The line of EPollReactor.doPoll that waits in epoll (an idle sample, not work)."""
    try:
        import inspect

        from twisted.internet import epollreactor

        lines, first = inspect.getsourcelines(epollreactor.EPollReactor.doPoll)
        for offset, text in enumerate(lines):
            if "_poller.poll(" in text:
                return f"EPollReactor.doPoll (twisted/internet/epollreactor.py:{first + offset})"
    except Exception:
        pass
    return "EPollReactor.doPoll (twisted/internet/epollreactor.py:227)"


_IDLE_FUNCTIONS = ("Condition.wait (", "Event.wait (", "Thread.join (", "Queue.get (", "lock.acquire (")
_LINE = re.compile(r":\d+[)]$")
_APP_LAYERS = ("txoci/", "klein/", "werkzeug/", "twisted/web/", "sqlite")


def summarize_profile(path: Path, top: int = 15) -> str:
    """
    What the threads of a py-spy raw (collapsed stacks) profile were busy
    with: the share of time each kind of thread was not waiting, the
    functions most often on top of a busy stack (self), and the application
    layers (txoci, Klein, werkzeug, twisted.web) each busy thread was inside.
    """
    poll = _poll_line()
    total: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inside: dict[str, Counter[str]] = {}
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        thread, *frames = stack.split(";")
        name = re.sub(r"[-_]?\d+$", "", thread.partition(": ")[2]) or "thread"
        total[name] += count
        if not frames or frames[-1] == poll or frames[-1].startswith(_IDLE_FUNCTIONS):
            continue
        busy[name] += count
        own[f"{_LINE.sub(')', frames[-1])}  [{name}]"] += count
        seen = {_LINE.sub(")", f) for f in frames if any(x in f for x in _APP_LAYERS)}
        for frame in seen:
            inside.setdefault(name, Counter())[frame] += count
    all_busy = sum(busy.values()) or 1
    out = [f"{path.name}: busy samples per thread kind (of its samples):"]
    for name, count in total.most_common():
        out.append(f"    {name}: {busy[name]} busy of {count} ({100 * busy[name] / count:.0f}%)")
    out.append(f"  self, share of all {all_busy} busy samples (line numbers folded):")
    out += [f"    {100 * c / all_busy:5.1f}%  {f}" for f, c in own.most_common(top)]
    for name, counter in inside.items():
        out.append(f"  inside application layers, share of {name}'s busy samples:")
        out += [f"    {100 * c / (busy[name] or 1):5.1f}%  {f}" for f, c in counter.most_common(top)]
    return "\n".join(out)


def profile(sizes: Sizes, workdir: Path) -> None:
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        sys.exit("py-spy is missing: pip install py-spy")
    server = Txoci(workdir)
    server.start()
    out_dir = BENCH / "profiles"
    out_dir.mkdir(exist_ok=True)
    bench = Bench(sizes, workdir, [server])
    try:
        mapped, view = bench.make_blob_file()
        digest = bench.fresh_content(mapped, view)
        raw = out_dir / "push-monolithic.txt"
        spy = subprocess.Popen([py_spy, "record", "-f", "raw", "--threads", "-r", "200", "-o", str(raw),
                                "-p", str(server.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        conn = Conn(server.port)
        start = time.perf_counter()
        push_blob(conn, "bench/profile", view, digest)
        log(f"push under py-spy: {sizes.blob / MiB / (time.perf_counter() - start):.0f} MiB/s")
        conn.close()
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        view.release()
        mapped.close()
        log(summarize_profile(raw))
        bench.setup_small()
        seconds = max(5.0, sizes.wrk_seconds)
        bench.sizes = Sizes(**{**sizes.__dict__, "wrk_seconds": seconds})
        layer = bench.small["layer"][0]
        template = manifest_body(bench.small["config"], bench.small["layer"], "NOTE").decode()
        loads: list[tuple[str, str, Callable[[], dict[str, float]]]] = [
            ("head-blob-c32", "HEAD blob c=32",
             lambda: bench.hey(server, "HEAD", f"/v2/bench/small/blobs/{layer}", 32)),
            ("get-manifest-c32", "GET manifest c=32",
             lambda: bench.wrk(server, "", "/v2/bench/small/manifests/latest", 32, ["p"],
                               {"Accept": ACCEPT})),
            ("put-manifest-c32", "PUT manifest c=32",
             lambda: bench.wrk(server, WRK_PUT.replace("TEMPLATE", json.dumps(template)),
                               "/v2/bench/put/manifests/", 32, ["profile"])),
        ]
        for name, label, load in loads:
            raw = out_dir / f"{name}.txt"
            spy = subprocess.Popen([py_spy, "record", "-f", "raw", "--threads", "-r", "200", "-o", str(raw),
                                    "-d", str(int(seconds)), "-p", str(server.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)
            data = load()
            log(f"{label} under py-spy: {data['requests'] / (data['duration_us'] / 1e6):.0f} req/s")
            spy.wait(60)
            log(summarize_profile(raw))
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="every case at small sizes, one round")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 3, 1 with --quick)")
    parser.add_argument("--profile", action="store_true", help="profile txoci with py-spy instead")
    parser.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    parser.add_argument("--workers", type=int, default=1,
                        help="run txoci with --workers N (default 1: one process)")
    parser.add_argument("--blob-mib", type=int,
                        help="size of the pushed and pulled blob in MiB (default 1024), to check flat memory")
    parser.add_argument("--blobs-only", action="store_true",
                        help="only the ceilings, the pushes and the pull (cases 1, 2 and 6)")
    parser.add_argument("--growth-only", action="store_true", help="only the growth case (case 4)")
    parser.add_argument("--populate-budget", type=float,
                        help="seconds growth may spend populating each server and kind before it "
                             "falls back to 10,000 (default 75)")
    options = parser.parse_args()
    check_tools()
    sizes = Sizes(**QUICK.__dict__) if options.quick else Sizes()
    if options.rounds:
        sizes.rounds = max(1, options.rounds)
    if options.blob_mib:
        sizes.blob = max(sizes.patch_chunks, options.blob_mib) * MiB
    sizes.blobs_only = options.blobs_only
    sizes.growth_only = options.growth_only
    if options.populate_budget:
        sizes.populate_budget = options.populate_budget
    Txoci.workers = options.workers
    workdir = work_directory()
    log(f"work dir {workdir}")
    started = time.perf_counter()
    servers: list[Server] = []
    try:
        if options.profile:
            profile(sizes, workdir)
            return 0
        machine = machine_info(workdir)
        log(f"machine: {machine}")
        servers = [Txoci(workdir), Distribution(workdir)]
        for server in servers:
            server.start()
            log(f"{server.name}: pid {server.pid}, port {server.port}")
        bench = Bench(sizes, workdir, servers)
        before = system_busy_seconds(), os.times(), [s.cpu() for s in servers], os.getloadavg()
        bench.run()
        after = system_busy_seconds(), os.times(), [s.cpu() for s in servers], os.getloadavg()
        elapsed = time.perf_counter() - started
        ours = sum(after[1][:4]) - sum(before[1][:4]) + sum(after[2]) - sum(before[2])
        others = after[0] - before[0] - ours
        machine["other_load"] = (
            f"other processes used {others:.0f} CPU-s during the {elapsed:.0f} s run "
            f"(~{others / elapsed:.2f} of {machine['nproc']} CPUs); load average "
            f"{before[3][0]:.1f} at the start, {after[3][0]:.1f} at the end"
        )
        log(machine["other_load"])
        stem = "results-quick" if options.quick else "results"
        if options.workers > 1:
            stem += f"-workers{options.workers}"
        if options.blob_mib:
            stem += f"-blob{sizes.blob // MiB}mib"
        if options.blobs_only:
            stem += "-blobs"
        if options.growth_only:
            stem += "-growth"
        write_results(bench.results, sizes, machine, elapsed, stem)
        log("")
        log(markdown_table(bench.results))
        log(f"done in {elapsed:.0f} s; wrote bench/{stem}.json and bench/{stem}.md")
        return 0
    finally:
        for server in servers:
            server.stop()
        if options.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

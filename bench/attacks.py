"""The front-door attacks of issue 11 against each HTTP server candidate (127.0.0.1 only).

Run: .venv/bin/python -m bench.attacks [--server uvicorn granian ...] [--attack header ...]
     .venv/bin/python -m bench.attacks --url http://127.0.0.1:8000 --pid PID   (a running one)

Every attack is bounded in time and stops by itself; each prints one line ending in
HELD or FAILED:

- header: one request whose header is 16 MiB, then one of 128 MiB. Held when the server
  answers or closes within 2 s, /healthz stays under 1 s meanwhile, and the server spent
  under 1 s of CPU on it.
- half-open: one client opens as many connections as its descriptors allow (up to
  --half-open, default 20,000), each with an unfinished request head, and holds them.
  It keeps reopening whatever the server drops while 3 normal deliveries are tried on new
  connections. Held when each gets its 2xx within 1 s, and the server drops the stalled
  ones within 10 s once the client stops reopening.
- drip: --drippers clients send a valid head and then their body one byte a second.
  Held when each gets an answer or a close within 15 s (the receiver's 408 path) and a
  normal delivery meanwhile gets its 2xx within 1 s.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import resource
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import SECRET, fresh_database, launch, machine, today
from bench.servers import CANDIDATES, command

MIB = 1024 * 1024
HEAD_START = b"POST /webhooks/leap HTTP/1.1\r\nHost: 127.0.0.1\r\n"


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and all its descendants (granian's workers)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for each in _descendants(pid):
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _descendants(pid: int) -> list[int]:
    found = [pid]
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += _descendants(int(child))
    return found


def open_fds(pid: int) -> int:
    """Descriptors open in a process and its descendants (granian's workers)."""
    total = 0
    for each in _descendants(pid):
        with contextlib.suppress(OSError):
            total += len(os.listdir(f"/proc/{each}/fd"))
    return total


def delivery_request() -> bytes:
    n = uuid.uuid4().int % 10**12
    body = json.dumps(
        {
            "webhook_event_id": str(uuid.uuid4()),
            "payload": {
                "webhook_event_type": "meter.created",
                "meter_id": f"00000000-0000-4000-8000-{n:012d}",
                "partner_reference": f"site-{n}",
                "transmission_region": "CAISO",
                "meter_type": "UTILITY_METER",
            },
        }
    ).encode()
    head = HEAD_START + b"Content-Type: application/json\r\nX-Webhook-Secret: " + SECRET.encode()
    return head + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body


def deliver(url: str, timeout: float = 5.0) -> tuple[int | None, float]:
    """One normal delivery on a new connection: (status or None, seconds)."""
    started = time.monotonic()
    try:
        with socket.create_connection(_address(url), timeout=timeout) as sock:
            sock.sendall(delivery_request())
            answer = sock.recv(64)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        status = None
    return status, time.monotonic() - started


@dataclass
class HealthProbe:
    """GET /healthz every 100 ms on a new connection, in a thread; keeps the worst latency."""

    url: str
    worst_s: float = 0.0
    failures: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def _probe(self) -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                with socket.create_connection(_address(self.url), timeout=15) as sock:
                    sock.sendall(request)
                    if not sock.recv(16).startswith(b"HTTP/1.1 200"):
                        self.failures += 1
            except OSError:
                self.failures += 1
            self.worst_s = max(self.worst_s, time.monotonic() - started)
            self._stop.wait(0.1)

    @contextlib.contextmanager
    def running(self) -> Iterator[HealthProbe]:
        thread = threading.Thread(target=self._probe, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(20)


def huge_header(url: str, pid: int, size: int, budget_s: float = 60.0) -> str:
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    outcome = "no answer"
    with HealthProbe(url).running() as probe:
        sock = socket.create_connection(_address(url), timeout=budget_s)
        try:
            sock.sendall(HEAD_START + b"X-Filler: ")
            chunk = b"a" * MIB
            sent = 0
            with contextlib.suppress(OSError):
                while sent < size:
                    sock.settimeout(max(budget_s - (time.monotonic() - started), 0.1))
                    sock.sendall(chunk)
                    sent += len(chunk)
                sock.sendall(b"\r\n\r\n")
            try:
                sock.settimeout(max(budget_s - (time.monotonic() - started), 0.1))
                answer = sock.recv(64)
                outcome = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
            except TimeoutError:
                outcome = "no answer in budget"
            except OSError as exc:
                outcome = f"reset ({errno.errorcode.get(exc.errno or 0, exc)})"
        finally:
            sock.close()
        answered_s = time.monotonic() - started
        time.sleep(1.0)  # let a server still chewing show it in its CPU time
    cpu = cpu_seconds(pid) - cpu_before
    # Held: refused by the server itself (the app would have answered 401), quickly, cheaply.
    refused = " 401 " not in outcome
    held = refused and answered_s < 2 and probe.worst_s < 1 and cpu < 1 and probe.failures == 0
    return (
        f"header {size // MIB} MiB: {'HELD' if held else 'FAILED'} | answer {answered_s:.2f} s"
        f" ({outcome}, {sent // MIB} MiB sent) | server CPU {cpu:.2f} s"
        f" | /healthz worst {probe.worst_s * 1000:.0f} ms, {probe.failures} failed"
    )


def _raise_fd_limit(wanted: int) -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    above = max(hard, wanted + 64)
    with contextlib.suppress(ValueError, PermissionError):  # above hard: needs privileges
        resource.setrlimit(resource.RLIMIT_NOFILE, (above, above))
        return above
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


class _Crowd:
    """One client's many connections, each with an unfinished head (or nothing at all)."""

    def __init__(self, address: tuple[str, int], silent: bool) -> None:
        self.address = address
        self.silent = silent
        self.selector = selectors.EpollSelector()
        self.connecting: dict[socket.socket, float] = {}
        self.held: set[socket.socket] = set()
        self.refused = 0
        self.dropped = 0

    def step(self, wanted: int) -> None:
        """Open up to `wanted` in all; note the connections the server dropped."""
        while len(self.held) + len(self.connecting) < wanted and len(self.connecting) < 512:
            sock = socket.socket()
            sock.setblocking(False)
            if sock.connect_ex(self.address) not in (0, errno.EINPROGRESS):
                sock.close()
                self.refused += 1
                break
            self.connecting[sock] = time.monotonic()
            self.selector.register(sock, selectors.EVENT_WRITE)
        for key, _ in self.selector.select(timeout=0.1):
            sock = key.fileobj  # type: ignore[assignment]
            if self.connecting.pop(sock, None) is not None:
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    with contextlib.suppress(OSError):
                        if not self.silent:  # silent: not even a TLS ClientHello
                            sock.send(HEAD_START)  # a head that never ends
                        self.selector.modify(sock, selectors.EVENT_READ)
                        self.held.add(sock)
                        continue
                self.refused += 1
            else:  # a held one became readable: the server answered or closed it
                self.held.discard(sock)
                self.dropped += 1
            self.selector.unregister(sock)
            sock.close()
        for sock, since in list(self.connecting.items()):  # no SYN-ACK: the queue is full
            if time.monotonic() - since > 3:
                del self.connecting[sock]
                self.selector.unregister(sock)
                sock.close()
                self.refused += 1

    def close(self) -> None:
        for sock in [*self.held, *self.connecting]:
            sock.close()
        self.selector.close()


def half_open(
    url: str, pid: int, wanted: int, silent: bool = False, open_budget_s: float = 20.0
) -> str:
    """Fill, then keep refilling for 6 s while 3 deliveries are tried, then stop refilling
    and count what the server drops in 10 s."""
    wanted = min(wanted, _raise_fd_limit(wanted) - 64)
    crowd = _Crowd(_address(url), silent)
    started = time.monotonic()
    while time.monotonic() - started < open_budget_s and (
        len(crowd.held) < wanted or crowd.connecting
    ):
        crowd.step(wanted)
    opened_s, at_start, server_fds = time.monotonic() - started, len(crowd.held), open_fds(pid)
    deliveries: list[tuple[int | None, float]] = []

    def try_deliveries() -> None:
        for _ in range(3):
            time.sleep(1.0)
            deliveries.append(deliver(url))
        deliveries.append(deliver_health(url))

    trying = threading.Thread(target=try_deliveries, daemon=True)
    trying.start()
    refill_dropped = crowd.dropped
    while trying.is_alive():
        crowd.step(wanted)  # the attacker reopens whatever the server drops
    refilled = crowd.dropped - refill_dropped
    watching, before = len(crowd.held) + len(crowd.connecting), crowd.dropped
    watch_started = time.monotonic()
    while time.monotonic() - watch_started < 10 and crowd.held:
        crowd.step(0)
    dropped = crowd.dropped - before
    crowd.close()
    *sends, health = deliveries
    ok = [s for s, t in sends if s is not None and 200 <= s < 300 and t <= 1.0]
    verdict = "HELD" if len(ok) == len(sends) and dropped >= 0.95 * watching else "FAILED"
    return (
        f"half-open{' (silent)' if silent else ''}: {verdict} | {at_start} held"
        f" ({crowd.refused} not connected) after {opened_s:.1f} s, server fds {server_fds}"
        f" | refilling ({refilled} reopened), deliveries "
        + ", ".join(f"{s or 'none'} in {t:.2f} s" for s, t in sends)
        + f", /healthz {health[0] or 'none'} in {health[1]:.2f} s"
        + f" | refilling stopped: server dropped {dropped}/{watching} within 10 s"
    )


def deliver_health(url: str) -> tuple[int | None, float]:
    started = time.monotonic()
    try:
        with socket.create_connection(_address(url), timeout=5) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = sock.recv(16)
        status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    except (OSError, ValueError, IndexError):
        status = None
    return status, time.monotonic() - started


def drip(url: str, drippers: int, budget_s: float = 20.0) -> str:
    request = delivery_request()
    head, body = request.split(b"\r\n\r\n", 1)
    socks = []
    for _ in range(drippers):
        sock = socket.create_connection(_address(url), timeout=5)
        sock.sendall(head + b"\r\n\r\n")
        sock.setblocking(False)
        socks.append(sock)
    started = time.monotonic()
    answers: dict[socket.socket, tuple[str, float]] = {}
    meanwhile: tuple[int | None, float] | None = None
    position = 0
    while len(answers) < len(socks) and time.monotonic() - started < budget_s:
        for sock in socks:
            if sock in answers:
                continue
            try:
                data = sock.recv(64)
                line = data.split(b"\r\n", 1)[0].decode(errors="replace") or "closed"
                answers[sock] = (line, time.monotonic() - started)
                continue
            except BlockingIOError:
                pass
            except OSError:
                answers[sock] = ("reset", time.monotonic() - started)
                continue
            with contextlib.suppress(OSError):
                sock.send(body[position : position + 1])
        position += 1
        if meanwhile is None and time.monotonic() - started > 2:
            meanwhile = deliver(url)
        time.sleep(1.0)
    for sock in socks:
        sock.close()
    times = sorted(t for _, t in answers.values())
    kinds = sorted({line.split(" ", 1)[-1][:20] for line, _ in answers.values()})
    delivered = meanwhile is not None and meanwhile[0] in range(200, 300) and meanwhile[1] <= 1
    held = len(answers) == drippers and times[-1] <= 15 and delivered
    return (
        f"drip x{drippers}: {'HELD' if held else 'FAILED'} | {len(answers)}/{drippers} answered"
        + (f" in {times[0]:.1f}-{times[-1]:.1f} s" if times else "")
        + f" ({', '.join(kinds)}) | delivery meanwhile "
        + (f"{meanwhile[0] or 'none'} in {meanwhile[1]:.2f} s" if meanwhile else "not sent")
    )


def run_attacks(url: str, pid: int, attacks: list[str], args: argparse.Namespace) -> list[str]:
    lines = []
    if "header" in attacks:
        for size in (16 * MIB, 128 * MIB):
            lines.append(huge_header(url, pid, size))
            print("  " + lines[-1], flush=True)
            time.sleep(2)
    if "half-open" in attacks:
        lines.append(half_open(url, pid, args.half_open, args.silent))
        print("  " + lines[-1], flush=True)
        time.sleep(2)
    if "drip" in attacks:
        lines.append(drip(url, args.drippers))
        print("  " + lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--server", nargs="+", choices=CANDIDATES, default=list(CANDIDATES))
    parser.add_argument(
        "--attack",
        nargs="+",
        choices=("header", "half-open", "drip"),
        default=["header", "half-open", "drip"],
    )
    parser.add_argument(
        "--half-open",
        type=int,
        default=20_000,
        help="connections to hold (one source address reaches ~28,000: its ephemeral ports)",
    )
    parser.add_argument("--drippers", type=int, default=20)
    parser.add_argument(
        "--silent", action="store_true", help="half-open connections send nothing at all"
    )
    parser.add_argument(
        "--server-fds",
        type=int,
        default=8192,
        help="descriptor limit (soft and hard) of the servers started here: below the\n"
        "attacker's, as when one client can open more connections than the server can hold",
    )
    parser.add_argument("--url", help="attack this running server instead (127.0.0.1 only)")
    parser.add_argument("--pid", type=int, help="its process id, for CPU and descriptors")
    parser.add_argument("--log", type=Path, default=Path("bench-attacks-servers.log"))
    args = parser.parse_args()
    print(f"{today()} | {machine()}")
    if args.url:
        if _address(args.url)[0] not in ("127.0.0.1", "localhost"):
            raise SystemExit("attacks only run against 127.0.0.1")
        run_attacks(args.url, args.pid or 0, args.attack, args)
        return
    fds = args.server_fds

    def limited(cmd: list[str]) -> list[str]:
        return ["prlimit", f"--nofile={fds}:{fds}", "--", *cmd]

    for name in args.server:
        print(f"{name} (server descriptor limit {fds}):", flush=True)
        with (
            fresh_database("bench_attacks") as db,
            launch(lambda port, n=name: limited(command(n, port)), db, log=args.log) as server,  # type: ignore[misc]
        ):
            run_attacks(server.url, server.process.pid, args.attack, args)


if __name__ == "__main__":
    main()

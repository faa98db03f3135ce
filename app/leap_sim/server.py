"""Running the fake Leap: `run()` for the CLI, `serve_in_thread()` for tests and benches."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime

import uvicorn

from app.leap_sim.api import create_app
from app.leap_sim.dispatch import Registration
from app.leap_sim.faults import FaultConfig, FaultInjector
from app.leap_sim.portfolio import Portfolio
from app.leap_sim.sender import Sender
from app.leap_sim.state import EVENT_TYPES, SimState, Subscription, default_api_key


def build_state(
    meters: int = 10_000,
    groups: int = 40,
    seed: int = 1,
    api_key: str | None = None,
    *,
    time_factor: float = 1.0,
    duplicate_probability: float = 0.0,
    shuffle: bool = False,
    faults: FaultConfig | None = None,
    receiver_url: str | None = None,
    receiver_headers: dict[str, str] | None = None,
    anchor: datetime | None = None,
) -> SimState:
    """A simulator state; with `receiver_url`, pre-subscribed to every event type."""
    state = SimState(
        Portfolio(meters, groups, seed, anchor=anchor),
        api_key=api_key or default_api_key(),
        sender=Sender(
            time_factor=time_factor,
            duplicate_probability=duplicate_probability,
            shuffle=shuffle,
            seed=seed,
        ),
        faults=FaultInjector(faults),
    )
    if receiver_url:
        headers = [{"name": k, "value": v} for k, v in (receiver_headers or {}).items()]
        sub = Subscription(
            "00000000-0000-4000-8000-000000000001", list(EVENT_TYPES), headers, receiver_url
        )
        state.webhooks[sub.webhook_id] = sub
    return state


def run(
    host: str = "127.0.0.1",
    port: int = 8900,
    meters: int = 10_000,
    groups: int = 40,
    seed: int = 1,
    api_key: str | None = None,
    *,
    time_factor: float = 1.0,
    duplicate_probability: float = 0.0,
    shuffle: bool = False,
    faults: FaultConfig | None = None,
    receiver_url: str | None = None,
    receiver_headers: dict[str, str] | None = None,
    anchor: datetime | None = None,
    log_level: str = "info",
    dispatch_every: float | None = None,
    dispatch_drift: int = 0,
) -> None:
    """Serve the fake Leap until interrupted. `api_key` None: $LEAP_SIM_API_KEY or `sim-key`."""
    state = build_state(
        meters, groups, seed, api_key,
        time_factor=time_factor, duplicate_probability=duplicate_probability, shuffle=shuffle,
        faults=faults, receiver_url=receiver_url, receiver_headers=receiver_headers, anchor=anchor,
    )  # fmt: skip
    if receiver_url and dispatch_every:
        # The demo's dispatches go to the receiver's dispatch surface, as Leap's would
        # after `meter-sync leap subscribe`.
        for kind in ("meter", "group"):
            state.dispatch.registrations[kind] = Registration(
                receiver_url.rstrip("/") + "/dispatch",
                [{"name": k, "value": v} for k, v in (receiver_headers or {}).items()],
            )
    for line in start_banner(state, host, port, receiver_url):
        print(line, flush=True)
    if dispatch_every:
        state.dispatch.demo_at_start = (dispatch_every, dispatch_drift)
        print(
            f"  dispatching    a group every {dispatch_every:g} s, drift {dispatch_drift} meters",
            flush=True,
        )
    uvicorn.run(create_app(state), host=host, port=port, log_level=log_level)


def start_banner(state: SimState, host: str, port: int, receiver_url: str | None) -> list[str]:
    """Where the fake Leap answers and with which key, printed once at start."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    base = f"http://{shown}:{port}"
    p = state.portfolio
    return [
        f"fake Leap on {base}  ({p.base_count} meters, {len(p.groups)} groups, seed {p.seed})",
        f"  API key        {state.api_key}  (Authorization: Bearer ...)",
        f"  Leap's API     {base}/v2/meters/search, {base}/v2/meters/{{meter_id}}",
        f"  webhooks API   {base}/v1.1/webhooks",
        f"  control API    {base}/sim/...  (documented at {base}/docs)",
        f"  sending to     {receiver_url or '(no receiver subscribed)'}",
        f"  for meter-sync LEAP_API_BASE_URL={base} LEAP_API_KEY={state.api_key}",
    ]


@dataclass
class RunningSim:
    state: SimState
    url: str
    _server: uvicorn.Server
    _thread: threading.Thread

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def serve_in_thread(state: SimState, host: str = "127.0.0.1", port: int = 0) -> RunningSim:
    """Start uvicorn with the sim app on a background thread; port 0 picks a free one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(create_app(state), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("leap-sim did not start")
        time.sleep(0.01)
    bound_port = sock.getsockname()[1]
    return RunningSim(state, f"http://{host}:{bound_port}", server, thread)

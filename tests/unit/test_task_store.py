"""The task list's store (vmdeck.store.tasks) on SQLite and PostgreSQL: a tracked body's outcome, progress
read from the core's lines, the log's cap, visibility by project, paging, and a dead process's tasks."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from pg_support import pg_server, pg_url  # noqa: F401 (fixtures)
from vmdeck.errors import Conflict
from vmdeck.store.db import TaskRow, open_database
from vmdeck.store.tasks import LOG_LINES, SERVER_STOPPED, Cancelled, Tasks


@pytest.fixture(params=["sqlite", "postgresql"])
def tasks(request: pytest.FixtureRequest, tmp_path: Path) -> Tasks:
    where = tmp_path / "db.sqlite" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    return Tasks(open_database(where))


def test_a_tracked_body_ends_done_failed_or_cancelled(tasks: Tasks) -> None:
    with tasks.track(kind="vm.clone", target="web02", user="alice", origin="api", project="p1", vm="web02") as task:
        report = task.reporter()
        report("copying vda (web01.qcow2)")
        report("copied 128 MiB of 512 MiB")
        task.result = "cloned web01 as web02"
    done = tasks.get(task.id)
    assert done is not None
    assert (done["state"], done["result"], done["user"], done["origin"]) == ("done", "cloned web01 as web02", "alice",
                                                                              "api")
    assert (done["done"], done["total"]) == (512, 512)  # a finished task is whole
    assert [line.split(" ", 1)[1] for line in done["log"]] == ["copying vda (web01.qcow2)", "copied 128 MiB of 512 MiB"]
    assert done["ended_at"] is not None and done["duration_s"] >= 0

    with pytest.raises(Conflict), tasks.track(kind="vm.create", target="web03", user="bob", origin="cli",
                                              project="p2", vm="web03") as failing:
        failing.reporter()("vda: 40%")
        raise Conflict("a VM named 'web03' already exists")
    failed = tasks.get(failing.id)
    assert failed is not None
    assert (failed["state"], failed["result"]) == ("failed", "a VM named 'web03' already exists")
    assert (failed["done"], failed["total"]) == (40, 100)

    with pytest.raises(Cancelled), tasks.track(kind="backup.create", target="web01", user="bob", origin="api",
                                               project="p2", vm="web01") as stopped:
        raise Cancelled("cancelled by bob")
    assert tasks.get(stopped.id)["state"] == "cancelled"  # type: ignore[index]


def test_listing_by_project_state_vm_and_pages(tasks: Tasks) -> None:
    for i in range(5):
        with tasks.track(kind="vm.snapshot", target=f"vm{i}", user="u", origin="api", project="a" if i % 2 else "b",
                         vm=f"vm{i}"):
            pass
    with tasks.track(kind="image.build", target="tiny (x86_64)", user="root", origin="cli"):
        pass
    everything = tasks.entries(None)
    assert [t["target"] for t in everything][:2] == ["tiny (x86_64)", "vm4"]  # newest first
    assert {t["target"] for t in tasks.entries(["a"])} == {"vm1", "vm3"}  # no project: administrators only
    assert [t["target"] for t in tasks.entries(None, vm="vm2")] == ["vm2"]
    assert tasks.entries(None, state="running") == []
    first = tasks.entries(["a", "b"], limit=2)
    rest = tasks.entries(["a", "b"], limit=10, before_id=first[-1]["id"])
    assert [t["target"] for t in first + rest] == ["vm4", "vm3", "vm2", "vm1", "vm0"]


def test_progress_is_written_while_running_and_the_log_is_capped(tasks: Tasks) -> None:
    with tasks.track(kind="iso.upload", target="big.iso", user="u", origin="api", project="a") as task:
        task.progress(0, 1000)
        for i in range(LOG_LINES + 50):
            task.log(f"line {i}")
        time.sleep(0.6)  # past the flush interval: the next change is written at once
        task.progress(600, 1000)
        running = tasks.get(task.id)
        assert running is not None
        assert (running["state"], running["done"], running["total"]) == ("running", 600, 1000)
        assert len(running["log"]) == LOG_LINES and running["log"][-1].endswith(f"line {LOG_LINES + 49}")
        assert [t["id"] for t in tasks.changed_since(time.time() - 5)] == [task.id]


def test_a_dead_process_tasks_fail_at_the_next_start(tasks: Tasks) -> None:
    # A process of this machine that began a task and died (SIGKILLed server) leaves it "running".
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                           check=True)
    from vmdeck.store.lease import owner

    here = owner().split(":", 1)[0]
    with tasks.db.begin() as s:
        s.add(TaskRow(kind="vm.create", target="web09", vm="web09", project="a", username="u", origin="api",
                      state="running", updated=time.time(), log="", owner=f"{here}:{child.stdout.strip()}:dead"))
        s.add(TaskRow(kind="vm.create", target="far", vm="far", project="a", username="u", origin="api",
                      state="running", updated=time.time(), log="", owner="another-machine/x/y:1:z"))
    live = tasks.begin(kind="vm.clone", target="web10", user="u", origin="api", project="a")
    assert tasks.fail_orphans() == 1
    states = {t["target"]: (t["state"], t["result"]) for t in tasks.entries(None)}
    assert states == {"web09": ("failed", SERVER_STOPPED), "far": ("running", None), "web10": ("running", None)}
    assert tasks.get(live.id)["ended_at"] is None  # type: ignore[index]

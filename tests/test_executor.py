"""The executor shared by sweeps, ``run --seeds`` and ``ablate --seeds``: jobs, engines, scheduling."""

from __future__ import annotations

import json

import pytest

from avood_core.errors import AvoodError, ConfigError
from avood_core.executor.jobs import Job, check_seeds, run_plain, run_seeds, schedule


def _job_fn(payload: dict, echo) -> dict:
    echo(f"job {payload['x']}")
    if payload["x"] < 0:
        raise ConfigError(f"x = {payload['x']} is negative")
    return {"square": payload["x"] ** 2}


def test_jobs_run_inline_and_each_records_its_result(tmp_path):
    jobs = [Job(f"j{x}", _job_fn, {"x": x, "run_dir": str(tmp_path / f"j{x}"), "hash": f"h{x}"}, label=f"x={x}")
            for x in (2, -1, 3)]
    done = run_plain(jobs, quiet=True)
    assert done["j2"]["status"] == "done" and done["j2"]["square"] == 4 and done["j3"]["square"] == 9
    assert done["j-1"] == {**done["j-1"], "status": "failed", "error": "x = -1 is negative"}
    record = json.loads((tmp_path / "j3" / "trial.json").read_text())
    assert record["status"] == "done" and record["hash"] == "h3" and record["attempt"] == 1
    assert (tmp_path / "j-1" / "log.txt").read_text().startswith("job -1\nTraceback")


def test_a_failed_seed_is_one_line_naming_its_log(tmp_path):
    def job(seed: int) -> Job:
        return Job(f"seed-{seed}", _job_fn, {"x": seed, "run_dir": str(tmp_path / f"seed-{seed}"), "hash": "h"})

    done = run_seeds(tmp_path, [2, 3], job, "local", 1, None, True, print)
    assert sorted(done) == [2, 3] and (done[2]["square"], done[3]["square"]) == (4, 9)
    with pytest.raises(AvoodError, match=r"^demo: seed -1 failed: x = -1 is negative \(log: .*seed--1/log.txt\)$"):
        run_seeds(tmp_path, [0, -1], job, "local", 1, None, True, print, "demo: ")
    for bad in ([], [1, 1], [2**64]):
        with pytest.raises(AvoodError, match="--seeds"):
            check_seeds(bad)


class _Recorder:
    """An engine that finishes one job per wait, recording what ran side by side."""

    def __init__(self) -> None:
        self.running: list[str] = []
        self.together: list[set[str]] = []

    def submit(self, fn, payload):
        self.running.append(payload["id"])
        self.together.append(set(self.running))
        return payload["id"]

    def wait(self, handles, timeout):
        return handles[:1]

    def result(self, handle):
        self.running.remove(handle)
        return {"status": "done"}

    def close(self, abort=False):
        self.closed = abort


def test_jobs_sharing_a_component_never_run_side_by_side():
    jobs = [Job(name, _job_fn, {"id": name}, keys) for name, keys in
            (("a", frozenset({"gen-1"})), ("b", frozenset({"gen-1"})), ("c", frozenset({"gen-2"})))]
    engine, order = _Recorder(), []
    schedule(jobs, engine, 2, lambda job, info: order.append(job.id))
    assert all(not {"a", "b"} <= ran for ran in engine.together)
    assert {"a", "c"} in engine.together and sorted(order) == ["a", "b", "c"] and engine.closed is False


class _Publisher(_Recorder):
    """A :class:`_Recorder` whose first job publishes ``key`` on the first wait and ends on the second."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key, self.published, self.waits = key, set(), 0

    def wait(self, handles, timeout):
        self.waits += 1
        if self.waits == 1:
            self.published.add(self.key)
            return []
        return handles[:1]


@pytest.mark.parametrize("b_keys, side_by_side", [({"seen-1"}, True), ({"seen-1", "gen-1"}, False)])
def test_a_job_waits_only_until_every_shared_key_is_released(b_keys, side_by_side):
    """b shares keys with a: it starts beside a once all of them are released (published), else after a."""
    engine = _Publisher("seen-1")
    jobs = [Job("a", _job_fn, {"id": "a"}, frozenset({"gen-1", "seen-1"})), Job("b", _job_fn, {"id": "b"}, frozenset(b_keys))]
    order: list[str] = []
    schedule(jobs, engine, 2, lambda job, info: order.append(job.id), released=lambda key: key in engine.published)
    assert ({"a", "b"} in engine.together) is side_by_side and sorted(order) == ["a", "b"]
    assert engine.together[0] == {"a"}  # b never starts before the release

"""The Dask engine on a local cluster of 2 worker processes: the same dataset as the local
engine row for row, workers dying mid-run, idempotent re-runs, --force, the CLI, and the
one-line errors (DuckDB target, Dask not installed). No worker process outlives the tests."""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from app.cli import main
from app.errors import UsageError
from app.pipeline import run_ingest
from app.pipeline.dask_engine import (
    LOCAL_CLUSTER_OPTIONS,
    DaskIngestJob,
    StoredBookRef,
    ingest_capture,
    run_dask_ingest,
    task_write_id,
)
from app.store import CaptureRecord, open_target
from app.store.journal import staged_name
from app.store.parquet import CapturePartsWriter, ParquetTarget
from tests.conftest import REPO
from tests.support import forkserver, synthetic

psutil = pytest.importorskip("psutil")


def _helper_pids() -> set[int]:
    """multiprocessing's resource tracker and forkserver live as long as the test process, by
    design (the module's cluster starts its workers through the forkserver). They are known by
    pid, not by command line: a worker forked by the forkserver keeps the forkserver's command
    line, and must still count as a process the test started."""
    from multiprocessing import forkserver as mp_forkserver
    from multiprocessing import resource_tracker

    pids = {getattr(mp_forkserver._forkserver, "_forkserver_pid", None),
            getattr(resource_tracker._resource_tracker, "_pid", None)}
    return {pid for pid in pids if pid}


def _children() -> set[int]:
    helpers = _helper_pids()
    return {p.pid for p in psutil.Process().children(recursive=True) if p.pid not in helpers}


def _assert_gone(pids: set[int], timeout: float = 10) -> None:
    procs = []
    for pid in pids:
        try:
            procs.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes left running: {[(p.pid, p.cmdline()) for p in alive]}"


@pytest.fixture(scope="module")
def client():
    """One 2-process cluster for the module; a task whose worker dies twice is given up on.

    Its nannies restart a dead worker. The cluster itself would also close for good the nanny
    of a worker still missing 15 s (lost-worker-timeout) after a death: a worker killed twice,
    or restarting slowly on a busy machine, could be missing at that instant, and the next
    test then met a cluster with a worker closing under it (the one flaky failure seen, in
    test_worker_dying_every_time_..., load 10). Here only the nannies decide.

    Its workers are forked by multiprocessing's forkserver (which imported distributed and its
    packages once) instead of each spawned as a new interpreter (dask's default, the product's
    --local-cluster, which test_cli_local_cluster_... runs): the same worker processes, killed
    and restarted the same way, ~0.6 s less to start the pair and ~0.9 s less per restart."""
    pytest.importorskip("distributed")
    import dask
    import distributed

    before = _children()
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.deploy.lost-worker-timeout": "1h",
                          "distributed.worker.multiprocessing-method": "forkserver"}):
        distributed.utils.get_mp_context()  # sets its own preload list once: ours (a superset) after it
        forkserver.context()
        cluster = distributed.LocalCluster(n_workers=2, **{**LOCAL_CLUSTER_OPTIONS, "silence_logs": logging.CRITICAL})
        client = distributed.Client(cluster)
        try:
            yield client
        finally:
            started = _children() - before
            client.close()
            cluster.close()
            _assert_gone(started)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three small captures (one with faults) of the universe the day's master names."""
    folder = tmp_path_factory.mktemp("dask-inputs")
    universe = synthetic.make_instruments(0)
    synthetic.generate_capture(folder / "a.dat", packets=2000, framing="raw", seed=1, instruments=universe)
    synthetic.generate_capture(folder / "b.bin", packets=1300, framing="u32len", seed=2, instruments=universe)
    synthetic.generate_capture(folder / "c.dat", packets=1700, framing="ts-u32len", seed=3, faults=True,
                               instruments=universe)
    master = folder / "instruments_20251013.csv"
    synthetic.write_instruments_csv(master, universe, synthetic.SESSION_DATE)
    files = [folder / "a.dat", folder / "b.bin", folder / "c.dat"]
    return files, master


@pytest.fixture(scope="module")
def local_dataset(tmp_path_factory, inputs):
    files, master = inputs
    target = tmp_path_factory.mktemp("local") / "dataset"
    report = run_ingest(files, target, instruments=[master], workers=2)
    assert [f.status for f in report.files] == ["done"] * 3
    return target


@pytest.fixture(scope="module")
def dask_dataset(tmp_path_factory, inputs, client):
    files, master = inputs
    target = tmp_path_factory.mktemp("dask") / "dataset"
    updates = []
    report = run_dask_ingest(files, target, instruments=[master], client=client, progress=updates.append)
    assert [f.status for f in report.files] == ["done"] * 3, [f.error for f in report.files]
    return target, report, updates


def snapshot(path: Path) -> dict:
    """Everything a reader sees in a dataset, in a comparable form."""
    with ParquetTarget(path, read_only=True) as t:
        captures = t.captures().drop_columns(["ingested_at"])
        captures = captures.take(pc.sort_indices(captures, [("file_id", "ascending")]))
        return {
            "ticks": t.ticks(), "bad": t.bad_packets(), "captures": captures,
            "unknown": t.unknown_tokens(), "instruments": t.instruments(), "counts": t.counts(),
        }


def files_on_disk(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()}


def part_layout(path: Path) -> list[tuple[str, str, str]]:
    """(folder, file id prefix, part number) of every part: the layout without write ids."""
    out = []
    for rel in files_on_disk(path):
        if rel.startswith(("ticks/", "bad_packets/")):
            folder, name = rel.rsplit("/", 1)
            pieces = name[: -len(".parquet")].split("-")
            out.append((folder, pieces[1], pieces[3] if len(pieces) > 3 else ""))
    return sorted(out)


def assert_clean(path: Path) -> None:
    """Only committed parts and the dataset's own files: no temporary or orphan parts."""
    with ParquetTarget(path, read_only=True) as t:
        listed = {p for parts in t.committed_parts().values() for p in parts}
    parts = {rel for rel in files_on_disk(path) if rel.startswith(("ticks/", "bad_packets/", "summary/"))}
    assert parts == listed
    assert not [rel for rel in files_on_disk(path) if rel.endswith((".tmp", ".staged"))]
    # (journal/ended.json, the record of the tasks' write ids, may stay: their tasks could outlive the run)
    assert not [rel for rel in files_on_disk(path) if rel.startswith("journal/") and rel != "journal/ended.json"]


# --- the same dataset as the local engine ------------------------------------------------


def test_dask_dataset_equals_local_row_for_row(local_dataset, dask_dataset):
    dask_target, report, _ = dask_dataset
    local, remote = snapshot(local_dataset), snapshot(dask_target)
    assert remote["counts"] == local["counts"]
    assert remote["counts"]["captures"] == 3 and remote["counts"]["bad_packets"] > 0
    assert remote["ticks"].num_rows == sum(f.ticks for f in report.files) > 3_000
    assert remote["ticks"].equals(local["ticks"])
    assert pc.sum(remote["ticks"]["resolved"]).as_py() > 0
    assert remote["bad"].equals(local["bad"])
    assert remote["captures"].equals(local["captures"])
    assert remote["unknown"].equals(local["unknown"])
    assert remote["instruments"].equals(local["instruments"])
    # Same folders, same parts per file and date; only the write ids differ.
    assert part_layout(dask_target) == part_layout(local_dataset)
    assert_clean(dask_target)


def test_parts_are_named_from_the_file_id(dask_dataset):
    """Each file's parts carry its id and one write id of its own (the run's, task_write_id)."""
    target, _, _ = dask_dataset
    with ParquetTarget(target, read_only=True) as t:
        committed = t.committed_parts()
        assert len(committed) == 3
        write_ids = set()
        for file_id, parts in committed.items():
            assert parts
            names = [rel.rsplit("/", 1)[1][: -len(".parquet")].split("-") for rel in parts]
            assert {tuple(n[1:3]) for n in names} == {(file_id[:16], names[0][2])}
            write_ids.add(names[0][2])
        assert len(write_ids) == 3


def test_progress_reports_each_stage_in_order(dask_dataset):
    _, report, updates = dask_dataset
    for index in range(3):
        stages = [u.stage for u in updates if u.index == index]
        assert stages == ["queued", "hashing", "decoding", "writing", "done"]
    finals = [u for u in updates if u.final]
    assert sorted(u.packets for u in finals) == sorted(f.packets for f in report.files)


def test_rerun_skips_everything_and_changes_nothing(inputs, dask_dataset, client):
    files, master = inputs
    target, _, _ = dask_dataset
    before = snapshot(target)
    on_disk = files_on_disk(target)
    report = run_dask_ingest(files, target, instruments=[master], client=client)
    assert [f.status for f in report.files] == ["skipped"] * 3
    assert all(f.error == "already in the target" for f in report.files)
    assert report.exit_code == 0
    after = snapshot(target)
    assert after["counts"] == before["counts"]
    assert after["ticks"].equals(before["ticks"])
    assert files_on_disk(target) == on_disk


def test_duplicate_content_in_one_job_is_ingested_once(tmp_path, inputs, client):
    files, _ = inputs
    twin = tmp_path / "twin.dat"
    twin.write_bytes(files[1].read_bytes())
    report = run_dask_ingest([files[1], twin], tmp_path / "dataset", client=client)
    assert sorted(f.status for f in report.files) == ["done", "skipped"]
    assert "same content as" in report.by_status("skipped")[0].error
    with open_target(tmp_path / "dataset") as t:
        assert t.counts()["captures"] == 1


# --- workers dying --------------------------------------------------------------------------


def _die_after_writing(marker_dir: str, victim: str, times: int, path, *args):
    """The real task, but the worker process dies after the parts are renamed, before the
    result reaches the client (the worst moment: complete parts on disk, none committed)."""
    if Path(path).name == victim:
        deaths = Path(marker_dir) / f"{victim}.deaths"
        died = len(deaths.read_text()) if deaths.exists() else 0
        if died < times:
            ingest_capture(path, *args)
            with open(deaths, "a") as fh:
                fh.write("x")
            os._exit(1)
    return ingest_capture(path, *args)


def test_worker_dying_once_is_retried_without_duplicates(tmp_path, inputs, local_dataset, client):
    files, master = inputs
    target = tmp_path / "dataset"
    task = functools.partial(_die_after_writing, str(tmp_path), "a.dat", 1)
    report = run_dask_ingest(files, target, instruments=[master], client=client, task=task)
    assert (tmp_path / "a.dat.deaths").read_text() == "x"  # it did die once
    assert [f.status for f in report.files] == ["done"] * 3, [f.error for f in report.files]
    result, clean = snapshot(target), snapshot(local_dataset)
    assert result["counts"] == clean["counts"]
    assert result["ticks"].equals(clean["ticks"])
    assert_clean(target)


def test_worker_dying_every_time_fails_that_file_and_a_rerun_completes_exactly(
        tmp_path, inputs, local_dataset, client):
    files, master = inputs
    target = tmp_path / "dataset"
    task = functools.partial(_die_after_writing, str(tmp_path), "c.dat", 99)
    first = run_dask_ingest(files, target, instruments=[master], client=client, task=task)
    by_name = {Path(f.path).name: f for f in first.files}
    assert by_name["c.dat"].status == "failed"
    assert "KilledWorker" in by_name["c.dat"].error and "again" in by_name["c.dat"].error
    assert first.exit_code == 4
    with ParquetTarget(target, read_only=True) as t:
        committed = t.counts()
        assert committed["captures"] == len(first.by_status("done"))
        assert committed["ticks"] == sum(f.ticks for f in first.files)
    assert_clean(target)  # the dead attempts' complete parts were removed, not committed

    second = run_dask_ingest(files, target, instruments=[master], client=client)
    assert {Path(f.path).name: f.status for f in second.files}["c.dat"] == "done"
    assert all(f.status in ("done", "skipped") for f in second.files)
    result, clean = snapshot(target), snapshot(local_dataset)
    assert result["counts"] == clean["counts"]
    assert result["ticks"].equals(clean["ticks"])
    assert result["bad"].equals(clean["bad"])
    assert_clean(target)


def test_leftovers_of_a_killed_client_are_removed_at_the_next_run(tmp_path, inputs, client):
    """Parts a task staged whose client died before committing: the next run removes them
    (the journal recorded their write id); a file nobody recorded stays."""
    files, _ = inputs
    target = tmp_path / "dataset"
    from app.pipeline.ingest import file_sha256

    file_id = file_sha256(files[1])
    dying = ParquetTarget(target)
    dying.record_write_id(file_id[16:24])
    orphan = ingest_capture(str(files[1]), (file_id, files[1].stat().st_size), file_id[16:24], str(target), None)
    dying._journal = None  # the client dies here: no commit, no clean close
    dying.close()
    stray = target / "ticks" / "trading_date=2025-10-13" / ".part-x.parquet.abcd.tmp"
    stray.write_bytes(b"half")
    staged = {rel for rel in files_on_disk(target) if rel.endswith(".staged")}
    assert len(staged) == len(orphan["parts"])
    report = run_dask_ingest([files[1]], target, client=client)
    assert report.files[0].status == "done"
    assert stray.read_bytes() == b"half"  # not provably ours: left alone
    stray.unlink()
    assert_clean(target)
    assert not staged & files_on_disk(target)
    with open_target(target) as t:
        assert t.counts()["ticks"] == report.files[0].ticks == sum(
            n for rel, n in orphan["parts"].items() if rel.startswith("ticks/"))


def test_a_damaged_capture_is_reingested_not_skipped(tmp_path, inputs, client):
    files, _ = inputs
    target = tmp_path / "dataset"
    run_dask_ingest(files[:2], target, client=client)
    before = snapshot(target)
    with ParquetTarget(target, read_only=True) as t:
        fid, parts = next(iter(t.committed_parts().items()))
    (target / parts[0]).unlink()
    report = run_dask_ingest(files[:2], target, client=client)
    statuses = sorted((f.status, "damaged" in (f.error or "")) for f in report.files)
    assert statuses == [("done", True), ("skipped", False)]
    with ParquetTarget(target) as t:
        assert t.verify() == []
    after = snapshot(target)
    assert after["ticks"].equals(before["ticks"]) and after["counts"] == before["counts"]
    assert_clean(target)


# --- --force and --scheduler -----------------------------------------------------------------


def test_force_through_a_scheduler_address_replaces_parts(tmp_path, inputs, local_dataset, client):
    files, master = inputs
    target = tmp_path / "dataset"
    address = client.scheduler.address
    run_dask_ingest(files[:2], target, instruments=[master], scheduler=address)
    with ParquetTarget(target, read_only=True) as t:
        old_parts = t.committed_parts()
    report = run_dask_ingest(files[:2], target, instruments=[master], scheduler=address, force=True)
    assert [f.status for f in report.files] == ["done"] * 2
    with ParquetTarget(target, read_only=True) as t:
        new_parts = t.committed_parts()
        assert set(t.captures()["status"].to_pylist()) == {"replaced"}
        ticks = t.ticks()
    assert len(new_parts) == 2 and set(new_parts) == set(old_parts)
    for file_id, parts in new_parts.items():
        assert not set(parts) & set(old_parts[file_id])  # new names, old files removed
    assert_clean(target)
    with ParquetTarget(local_dataset, read_only=True) as t:
        expected = t.ticks()
    expected = expected.filter(pc.is_in(expected["file_id"], ticks["file_id"].unique()))
    assert ticks.equals(expected)


def test_write_ids_are_one_per_run_and_avoid_the_parts_they_replace():
    file_id = "0123456789abcdef" + "fedcba98" + "0" * 40
    first = task_write_id(file_id, "0000aaaa")
    assert first == task_write_id(file_id, "0000aaaa") and len(first) == 8  # a retry: same names
    assert task_write_id(file_id, "0000bbbb") != first  # another run: other names
    replacing = [f"ticks/trading_date=2025-10-13/part-0123456789abcdef-{first}-{n}.parquet" for n in range(2)]
    again = task_write_id(file_id, "0000aaaa", replacing)
    assert again != first and len(again) == 8
    assert task_write_id(file_id, "0000aaaa", replacing) == again
    assert task_write_id(file_id, "0000aaaa", [p.replace(first, again) for p in replacing]) == first
    with pytest.raises(ValueError, match="run id"):
        task_write_id(file_id, "")


def test_a_task_of_an_ended_run_cannot_replace_what_a_rerun_commits(tmp_path, inputs):
    """A run is cancelled while its task runs (Dask does not stop it); the same capture is run
    again with the masters. The first run's task stages its parts (unnamed ticks) during the
    re-run, between the re-run's task and its commit: the re-run still commits its own rows,
    named, and the late parts are swept at the next open. Tasks are called as the engine calls
    them (its write id per file and run, the worker's function), no cluster."""
    from app.pipeline.ingest import file_sha256, store_masters

    files, master = inputs
    root = tmp_path / "dataset"
    path = files[0]
    fid = file_sha256(path)
    hashed = (fid, path.stat().st_size)

    cancelled = DaskIngestJob([path], root)
    with ParquetTarget(root) as target:  # the first run records its write id, submits, is cancelled
        cancelled._stored_parts = target.committed_parts()
        late_id = cancelled.write_id(fid)
        target.record_write_id(late_id)

    rerun = DaskIngestJob([path], root, instruments=[master])
    with ParquetTarget(root) as target:
        store_masters(target, [master])
        book_ref = StoredBookRef.of(target)
        rerun._stored_parts = target.committed_parts()
        write_id = rerun.write_id(fid)
        assert rerun.write_id(fid) == write_id  # within the run: one id, a retry rewrites the same names
        target.record_write_id(write_id)
        result = ingest_capture(str(path), hashed, write_id, str(root), book_ref)
        retried = ingest_capture(str(path), hashed, write_id, str(root), book_ref)  # a retry
        assert retried["parts"] == result["parts"]
        staged = {staged_name(rel): (root / staged_name(rel)).read_bytes() for rel in result["parts"]}
        named = sum(pq.read_table(root / staged_name(rel), columns=["resolved"])["resolved"].to_pylist().count(True)
                    for rel in result["parts"] if rel.startswith("ticks/"))
        assert named > 0
        late = ingest_capture(str(path), hashed, late_id, str(root), None)  # the zombie finishes now
        assert not {staged_name(rel) for rel in late["parts"]} & set(staged)
        assert {rel: (root / rel).read_bytes() for rel in staged} == staged
        target.commit_parts(result["capture"], result["parts"])
        ticks = target.ticks()
        assert ticks.num_rows == result["capture"].ticks
        assert pc.sum(ticks["resolved"]).as_py() == named  # the re-run's named rows, not the zombie's
        notes = target.verify()  # the zombie's staged parts: notes, not damage
        assert {f.subject for f in notes} == {staged_name(rel) for rel in late["parts"]}
        assert all(f.code == "staged_part" and not f.damage for f in notes)
    with ParquetTarget(root) as target:
        assert not [rel for rel in files_on_disk(root) if rel.endswith(".staged")]
        assert target.verify() == []
        assert pc.sum(target.ticks()["resolved"]).as_py() == named


def test_commit_parts_refuses_missing_or_short_parts(tmp_path, inputs):
    files, _ = inputs
    from app.pipeline.ingest import file_sha256

    file_id = file_sha256(files[0])
    with ParquetTarget(tmp_path / "dataset") as target:
        result = ingest_capture(str(files[0]), (file_id, files[0].stat().st_size), file_id[16:24],
                                str(target.path), None)
        parts = result["parts"]
        record = CaptureRecord(file_id=file_id, path=str(files[0]), size_bytes=1, framing="raw")
        first = next(iter(parts))
        with pytest.raises(ValueError, match="writer reported"):
            target.commit_parts(record, {**parts, first: parts[first] + 1})
        with pytest.raises(ValueError, match="not a part file"):
            target.commit_parts(record, {**parts, "captures/captures.parquet": 0})
        staged = target.path / staged_name(first)
        moved = target.path / (first + ".away")
        os.replace(staged, moved)
        with pytest.raises(ValueError, match="missing"):
            target.commit_parts(record, parts)
        assert target.file_ids() == set()
        os.replace(moved, staged)
        target.commit_parts(record, parts)
        assert target.counts()["ticks"] == result["capture"].ticks


def test_parts_writer_lays_out_what_the_target_writes(tmp_path, inputs):
    """CapturePartsWriter is the target's own writer: same names, rows per part reported."""
    files, _ = inputs
    from app.core.decode import CaptureReader
    from app.core.schema import unenriched

    reader = CaptureReader(files[2])
    parts = CapturePartsWriter(tmp_path, reader.file_id or "0" * 64, "0badcafe")
    rows = 0
    for batch in reader.batches():
        parts.add_ticks(unenriched(batch.ticks))
        parts.add_bad(batch.bad)
        rows += batch.ticks.num_rows
    assert not files_on_disk(tmp_path) - {rel for rel in files_on_disk(tmp_path) if rel.endswith(".tmp")}
    written = parts.finish()
    assert sum(n for rel, n in written.items() if rel.startswith("ticks/")) == rows
    assert any(rel.startswith("bad_packets/bad-") for rel in written)
    assert {staged_name(rel) for rel in written} == files_on_disk(tmp_path)  # staged: nothing published


# --- the command line --------------------------------------------------------------------------


def test_cli_local_cluster_ingests_and_leaves_no_process(tmp_path, inputs, local_dataset, capsys, client):
    files, master = inputs
    before = _children()
    # One worker process: starting it is most of the test's cost (the module's cluster has two),
    # spawned as the product starts it (dask's default, not the module cluster's forkserver).
    import dask

    with dask.config.set({"distributed.worker.multiprocessing-method": "spawn"}):
        code = main(["ingest", *map(str, files), "-i", str(master), "--target", str(tmp_path / "dataset"),
                     "--engine", "dask", "--local-cluster", "1", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out.strip().splitlines()[-1])
    assert doc["counts"]["ingested"] == 3
    assert "done" in err and "decoding" in err  # the local engine's progress lines
    _assert_gone(_children() - before)
    assert snapshot(tmp_path / "dataset")["ticks"].equals(snapshot(local_dataset)["ticks"])


def test_cli_refuses_a_duckdb_target_with_the_dask_engine(tmp_path, inputs, capsys):
    files, _ = inputs
    code = main(["ingest", str(files[0]), "--target", str(tmp_path / "t.duckdb"), "--engine", "dask"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "single-machine" in err and "--engine local" in err and "Parquet folder" in err
    assert not (tmp_path / "t.duckdb").exists()


def test_cli_cluster_options_need_the_dask_engine(tmp_path, inputs, capsys):
    files, _ = inputs
    code = main(["ingest", str(files[0]), "--target", str(tmp_path / "d"), "--local-cluster", "2"])
    assert code == 2
    assert "--engine dask" in capsys.readouterr().err
    with pytest.raises(UsageError, match="object storage"):
        DaskIngestJob([files[0]], "s3://bucket/dataset")


BLOCK_DASK = textwrap.dedent(
    """
    import sys

    class BlockDask:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("dask", "distributed"):
                raise ImportError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockDask())
    """
)


def test_cli_without_dask_says_how_to_install_it(tmp_path, inputs):
    files, _ = inputs
    code = BLOCK_DASK + textwrap.dedent(
        f"""
        from app.cli import main
        sys.exit(main(["ingest", {str(files[0])!r}, "--target", {str(tmp_path / "d")!r}, "--engine", "dask",
                       "--local-cluster", "2"]))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install tickscope[cluster]" in lines[0] and "--engine local" in lines[0]
    assert "Traceback" not in result.stderr


def test_pipeline_and_cli_import_without_dask():
    code = BLOCK_DASK + textwrap.dedent(
        """
        import importlib, pkgutil
        for package in ("app.core", "app.store", "app.pipeline"):
            pkg = importlib.import_module(package)
            for info in pkgutil.walk_packages(pkg.__path__, package + "."):
                importlib.import_module(info.name)
        import app.commands.ingest, app.pipeline.dask_engine
        from app.cli import build_parser
        build_parser()
        assert not any(m.split(".")[0] in ("dask", "distributed") for m in sys.modules)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --- what travels to the workers, and --memory-limit --------------------------------------------


def _recording_task(record_dir: str, path, hashed, write_id, root, book_ref, chunk_bytes, memory_limit):
    """The real task, recording what it was sent (its pickled size: what crossed to the worker)."""
    import pickle

    Path(record_dir, Path(path).name + ".sent").write_text(json.dumps({
        "book_ref": type(book_ref).__name__, "book_ref_bytes": len(pickle.dumps(book_ref)),
        "memory_limit": memory_limit, "chunk_bytes": chunk_bytes,
    }))
    return ingest_capture(path, hashed, write_id, root, book_ref, chunk_bytes, memory_limit)


def test_workers_get_where_the_masters_are_and_the_memory_limit(tmp_path, inputs, local_dataset, client):
    """Tasks receive a reference to the target's stored masters (a few hundred bytes, not the
    master's rows) and the per-task --memory-limit; the result is the local engine's, row for row."""
    files, master = inputs
    target = tmp_path / "dataset"
    task = functools.partial(_recording_task, str(tmp_path))
    report = run_dask_ingest(files, target, instruments=[master], client=client, task=task, memory_limit="200MB")
    assert [f.status for f in report.files] == ["done"] * 3, [f.error for f in report.files]
    for f in files:
        sent = json.loads((tmp_path / (f.name + ".sent")).read_text())
        assert sent["book_ref"] == "StoredBookRef" and sent["book_ref_bytes"] < 1_000, sent
        assert sent["memory_limit"] == 200 << 20 and sent["chunk_bytes"] is None
    with ParquetTarget(target, read_only=True) as t:
        assert t.master_catalog().num_rows == 1  # the master's rows stay in the target
    result, clean = snapshot(target), snapshot(local_dataset)
    assert result["counts"] == clean["counts"]
    assert result["ticks"].equals(clean["ticks"])


def test_a_task_reads_only_the_stored_master_of_its_days(tmp_path, inputs):
    """A worker's book opens the stored masters lazily: with masters of three days stored,
    naming a one-day capture does not read all of them (nor the rows of every master at once)."""
    import datetime as dt

    files, master = inputs
    root = tmp_path / "dataset"
    universe = synthetic.make_instruments(0)
    masters = [master]
    for day in (dt.date(2025, 10, 10), dt.date(2025, 10, 14)):
        other = tmp_path / f"instruments_{day:%Y%m%d}.csv"
        synthetic.write_instruments_csv(other, universe, day)
        masters.append(other)
    from app.pipeline.ingest import store_masters

    with ParquetTarget(root) as t:
        store_masters(t, masters)
        ref = StoredBookRef.of(t)
        assert t.master_catalog().num_rows == 3
    from app.pipeline import dask_engine

    dask_engine._BOOKS.clear()
    from app.pipeline.ingest import file_sha256

    file_id = file_sha256(files[0])
    result = ingest_capture(str(files[0]), (file_id, files[0].stat().st_size), file_id[16:24], str(root), ref)
    book = ref.get()
    stored = book.masters[0].store
    assert stored.loaded < len(stored.masters) == 3 and not stored.rows_read
    assert result["capture"].ticks > 0 and result["capture"].unresolved_ticks < result["capture"].ticks


def test_a_task_stays_within_its_memory_limit_on_a_capture_of_many_days(tmp_path):
    """--memory-limit bounds the rows a task buffers across trading days (a capture spanning
    days never fills a part for most of them): under the small limit it flushes before the
    buffers reach what the large limit lets them hold; the same rows are written."""
    import datetime as dt

    capture = tmp_path / "days.dat"
    with open(capture, "wb") as out:
        for day in range(6):
            one = tmp_path / f"day{day}.dat"
            synthetic.generate_capture(one, packets=20_000, seed=day, heartbeats=False,
                                       start=dt.datetime(2025, 10, 13 + day, 9, 15))
            out.write(one.read_bytes())
    from app.pipeline.ingest import file_sha256

    file_id = file_sha256(capture)
    results = {}
    for limit in ("128MB", "2GB"):
        root = tmp_path / f"dataset-{limit}"
        with ParquetTarget(root):
            pass
        results[limit] = ingest_capture(str(capture), (file_id, capture.stat().st_size), file_id[16:24], str(root),
                                        None, None, limit)
    small, large = results["128MB"], results["2GB"]
    assert small["buffered_peak"] <= small["buffer_limit"] < large["buffered_peak"]
    assert sum(small["parts"].values()) == sum(large["parts"].values()) == small["capture"].ticks


def test_a_lost_result_is_waited_for_not_reported_as_none(tmp_path, inputs):
    """A finished result lost with its worker (the scheduler recomputes it) is waited for;
    a failure without a message names its type instead of reading "None"."""
    pytest.importorskip("distributed")
    files, _ = inputs
    job = DaskIngestJob([files[0]], tmp_path / "dataset")
    f = job.files[0]

    class Lost:
        status = "lost"

        def __init__(self):
            self.calls = 0

        def result(self, timeout=None):
            self.calls += 1
            if self.calls < 3:
                raise TimeoutError()  # being recomputed
            return ("f" * 64, 10)

    lost = Lost()
    assert job._outcome(f, lost) == (("f" * 64, 10), None) and lost.calls == 3

    class Failed:
        status = "error"

        def result(self, timeout=None):
            raise RuntimeError()

    result, error = job._outcome(f, Failed())
    assert result is None and error == "the task failed (RuntimeError)"
    f.cancel.set()
    assert job._outcome(f, Lost()) == (None, None)

"""Window pieces driven with a fake job (timing under the test's control): per-row
buttons, the error dialog, the status bar's counts and severity."""

from __future__ import annotations

from PySide6.QtCore import Qt

from app.ui import queue_model as qm
from app.ui.dialogs import ErrorDialog
from tests.ui.fakes import FakeJob


def _slow_factory(*args, **kwargs):
    kwargs.update(steps=3000, step_s=0.002)
    return FakeJob(*args, **kwargs)


def _queue(window, tmp_path, names):
    paths = []
    for name in names:
        path = tmp_path / name
        path.write_bytes(b"\x00\x01\x00\x08" + bytes(8))
        paths.append(str(path))
    window.add_paths(paths)
    return paths


def test_row_buttons_cancel_and_retry(qtbot, make_window, tmp_path):
    window = make_window(job_factory=_slow_factory)
    window.set_target(str(tmp_path / "t.duckdb"))
    paths = _queue(window, tmp_path, ["a.dat", "b.dat"])
    window.start()
    qtbot.waitUntil(lambda: window.model.row(paths[0]).status == qm.DECODING, timeout=10_000)
    view = window.queue_view
    cell = view.visualRect(window.model.index(0, qm.Column.ACTION)).center()
    with qtbot.waitSignal(window.jobs.job_finished, timeout=30_000):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=cell)
        qtbot.waitUntil(lambda: window.model.row(paths[1]).status == qm.DECODING, timeout=10_000)
        window.cancel_paths([paths[1]])
    wait = lambda: not window.jobs.is_busy()  # noqa: E731
    qtbot.waitUntil(wait, timeout=10_000)
    assert [r.status for r in window.model.rows] == [qm.CANCELLED, qm.CANCELLED]
    assert window.counts_label.text().startswith("Running 0")
    assert "Cancelled 2" in window.counts_label.text()
    # The same cell is now a retry button.
    with qtbot.waitSignal(window.jobs.job_started, timeout=10_000):
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=cell)
    assert window.model.row(paths[0]).status in (qm.QUEUED, qm.DECODING)
    window.cancel_all()
    qtbot.waitUntil(wait, timeout=10_000)


def test_queued_rows_cancel_without_a_job_and_failures_show_in_the_status_bar(qtbot, make_window, tmp_path):
    window = make_window(job_factory=lambda *a, **k: FakeJob(*a, steps=20, step_s=0.001, **k))
    window.set_target(str(tmp_path / "t.duckdb"))
    paths = _queue(window, tmp_path, ["ok.dat", "fail.dat", "later.dat"])
    window.cancel_paths([paths[2]])
    assert window.model.row(paths[2]).status == qm.CANCELLED
    with qtbot.waitSignal(window.queue_done, timeout=20_000):
        window.start()
    assert window.model.row(paths[0]).status == qm.DONE
    failed = window.model.row(paths[1])
    assert failed.status == qm.FAILED and "broken on purpose" in failed.error
    assert window.severity.level == "error"
    assert "1 failed" in window.severity.text.text()
    assert window.exit_code() == 4


def test_error_dialog_keeps_details_behind_a_button(qtbot):
    dialog = ErrorDialog(None, "Export failed", "Couldn't write x.csv.", "Choose another folder.",
                         "Traceback (most recent call last): ...")
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.details.isVisible()
    dialog.toggle.click()
    assert dialog.details.isVisible() and "Traceback" in dialog.details.toPlainText()
    assert dialog.toggle.text() == "Hide details"

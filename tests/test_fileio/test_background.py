"""The background writer: order, bound, errors kept, no deadlock."""

import threading
import time

import pytest

from mmcam_ext.fileio import BackgroundWriter


def test_jobs_run_in_order_off_the_callers_thread():
    writer = BackgroundWriter(max_pending=4)
    seen = []
    for i in range(50):
        writer.submit(lambda i=i: seen.append((i, threading.get_ident())))
    assert writer.close() == []
    assert [i for i, _ in seen] == list(range(50))
    assert {t for _, t in seen} != {threading.get_ident()}


def test_the_queue_is_bounded():
    writer = BackgroundWriter(max_pending=2)
    gate = threading.Event()
    writer.submit(gate.wait)  # occupies the worker
    writer.submit(lambda: None)
    writer.submit(lambda: None)  # queue now full
    start = time.perf_counter()
    done = threading.Event()

    def submit_one_more():
        writer.submit(lambda: None)
        done.set()

    threading.Thread(target=submit_one_more).start()
    assert not done.wait(0.3), 'submit did not wait for room'
    gate.set()
    assert done.wait(5)
    assert writer.close() == []
    assert time.perf_counter() - start < 10


def test_errors_are_returned_by_flush_and_the_worker_survives():
    writer = BackgroundWriter(max_pending=8)
    done = []

    def fail(i):
        raise OSError(f'disk full {i}')

    for i in range(25):
        writer.submit(fail, i)
    writer.submit(done.append, 'after')
    errors = writer.flush()
    assert errors[0] == 'OSError: disk full 0'
    assert len(errors) == 21 and errors[-1] == '... 5 more failed'
    assert done == ['after']
    assert writer.flush() == []  # reported once
    writer.submit(fail, 99)
    assert writer.close() == ['OSError: disk full 99']


def test_inline_mode_runs_at_once():
    writer = BackgroundWriter(max_pending=0)
    seen = []
    writer.submit(seen.append, threading.get_ident())
    assert seen == [threading.get_ident()]
    writer.submit(lambda: 1 / 0)
    assert writer.close() == ['ZeroDivisionError: division by zero']


def test_bad_bound_is_refused():
    with pytest.raises(ValueError, match='max_pending'):
        BackgroundWriter(-1)

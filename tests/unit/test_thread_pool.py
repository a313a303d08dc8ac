"""The threading executor: bounded, runs everything submitted before shutdown, survives errors."""

import threading

from msgbus import options
from msgbus.executors.thread_pool import ThreadPoolExecutor


def _executor(size: int) -> ThreadPoolExecutor:
    conf = options.new_conf()
    conf.set_override("executor_thread_pool_size", size)
    return ThreadPoolExecutor(conf)


def test_runs_everything_submitted_before_shutdown() -> None:
    pool = _executor(4)
    done = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            done.append(i)

    for i in range(500):
        pool.submit(work, i)
    pool.shutdown(wait=True)
    assert sorted(done) == list(range(500))


def test_never_more_threads_than_the_limit_and_blocked_workers_do_not_stall_others() -> None:
    pool = _executor(3)
    release = threading.Event()
    running = threading.Semaphore(0)
    active = []
    lock = threading.Lock()

    def block() -> None:
        with lock:
            active.append(threading.get_ident())
        running.release()
        release.wait(10)

    for _ in range(3):
        pool.submit(block)
    for _ in range(3):
        assert running.acquire(timeout=10)
    finished = threading.Event()
    pool.submit(finished.set)
    assert not finished.wait(0.1)  # all three workers are busy: the fourth task waits
    release.set()
    assert finished.wait(10)
    pool.shutdown(wait=True)
    assert len(set(active)) == 3
    assert len(pool._threads) == 3


def test_errors_are_logged_and_workers_keep_going(caplog) -> None:
    pool = _executor(1)
    ok = threading.Event()

    def boom() -> None:
        raise RuntimeError("handler failed")

    pool.submit(boom)
    pool.submit(ok.set)
    assert ok.wait(10)
    pool.shutdown(wait=True)
    assert "handler failed" in caplog.text

"""A background writer: PNG encoding and disk writes off the caller's path.

One worker thread takes jobs from a bounded queue (cv2 and NumPy release
the GIL while they encode and copy, so the model's thread keeps running).
The bound keeps memory flat: when the disk is slower than the model,
:meth:`BackgroundWriter.submit` waits for room. A job that raises never
stops the worker; its error is kept and returned by :meth:`flush`, so the
caller reports it (the hook logs a warning) instead of losing it. Jobs run
in submission order.
"""

import queue
import threading
from typing import Any, Callable, List, Optional, Tuple

__all__ = ['BackgroundWriter']

Job = Tuple[Callable[..., Any], Tuple[Any, ...], dict]
#: Error messages kept per flush (the count is always exact).
MAX_MESSAGES = 20


class BackgroundWriter:
    """Run write jobs in one worker thread, in order.

    Args:
        max_pending (int): Jobs queued at most; ``0`` runs every job at
            once in the caller's thread (no thread). Defaults to 64.
        name (str): Thread name. Defaults to ``'mmcam_ext-writer'``.
    """

    def __init__(
        self, max_pending: int = 64, name: str = 'mmcam_ext-writer'
    ) -> None:
        if max_pending < 0:
            raise ValueError(f'max_pending must be >= 0, got {max_pending}.')
        self.max_pending = max_pending
        self.name = name
        self._queue: 'queue.Queue[Optional[Job]]' = queue.Queue(
            maxsize=max(max_pending, 1)
        )
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._messages: List[str] = []
        self._failed = 0

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any):
        """Queue ``fn(*args, **kwargs)``; waits while the queue is full."""
        if self.max_pending == 0:
            self._call((fn, args, kwargs))
            return
        self._ensure_thread()
        while True:
            try:
                self._queue.put((fn, args, kwargs), timeout=0.5)
                return
            except queue.Full:
                if not self._alive():
                    # Cannot happen unless the interpreter is shutting
                    # down; run inline rather than wait forever.
                    self._call((fn, args, kwargs))
                    return

    def flush(self) -> List[str]:
        """Wait until every queued job ran; their errors since the last
        flush (up to :data:`MAX_MESSAGES` messages plus a count line)."""
        if self._alive():
            self._queue.join()
        with self._lock:
            messages, failed = self._messages, self._failed
            self._messages, self._failed = [], 0
        if failed > len(messages):
            messages.append(f'... {failed - len(messages)} more failed')
        return messages

    def close(self) -> List[str]:
        """Flush, then stop the worker thread; the errors of the flush."""
        errors = self.flush()
        if self._alive():
            self._queue.put(None)
            assert self._thread is not None
            self._thread.join()
        self._thread = None
        return errors

    # ------------------------------------------------------------------
    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _ensure_thread(self) -> None:
        if not self._alive():
            self._thread = threading.Thread(
                target=self._run, name=self.name, daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is None:
                    return
                self._call(job)
            finally:
                self._queue.task_done()

    def _call(self, job: Job) -> None:
        fn, args, kwargs = job
        try:
            fn(*args, **kwargs)
        except Exception as err:  # kept and reported by flush()
            with self._lock:
                self._failed += 1
                if len(self._messages) < MAX_MESSAGES:
                    self._messages.append(f'{type(err).__name__}: {err}')

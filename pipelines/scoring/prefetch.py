"""Run one stage of a pipeline in a thread, a bounded number of items ahead.

Scoring reads a batch, builds its matrix and predicts, then writes it. Run one after
another, the stages share the cores badly: the booster waits for the reader, the
writer waits for the booster. `Prefetch` iterates a source in a background thread
and hands items over through a queue of at most `depth` items, so the next batch is
read (or scored) while the consumer works on the last one. The heavy parts (DuckDB
and ADBC reads, Arrow casts, `inplace_predict`) release the GIL.

Memory stays bounded: at most `depth` items wait in the queue, plus the one the
producer is making and the one the consumer holds.

An exception in the producer is re-raised in the consumer, as the same object (same
type and message). Closing (leaving the `with` block) stops the producer and waits
for its thread, so whatever the source reads from can be closed safely afterwards.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_ITEM, _DONE, _ERROR = "item", "done", "error"
_POLL_SECONDS = 0.05


class Prefetch(Generic[T]):
    def __init__(self, source: Iterable[T], depth: int = 1, name: str = "prefetch") -> None:
        if depth < 1:
            raise ValueError("depth must be at least 1")
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, message: tuple[str, object]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterable[T]) -> None:
        try:
            for item in source:
                if not self._put((_ITEM, item)):
                    return
                del item  # don't keep a reference to a batch while waiting for the next one
            self._put((_DONE, None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, who re-raises it
            self._put((_ERROR, exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - closing a generator; the outcome is already decided
                    pass

    def __iter__(self) -> Iterator[T]:
        while not self._finished:
            kind, value = self._queue.get()
            if kind == _ITEM:
                yield value
                continue
            self._finished = True
            if kind == _ERROR:
                raise value

    def close(self) -> None:
        """Stop the producer and wait for its thread to end."""
        self._stop.set()
        while self._thread.is_alive():
            # Empty the queue so no finished batch lingers, then wait for the thread.
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(_POLL_SECONDS)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

"""Pipeline plumbing: stage timing and threaded stages joined by bounded queues.

:class:`Pipe` runs a producer (a generator function) in its own thread and hands its items to
the consumer through a bounded queue, so that consecutive stages of the live pipeline overlap
(OpenCV decoding, MediaPipe, ONNX Runtime and large NumPy operations release the GIL).
:class:`StageTimer` collects milliseconds per frame per stage, from any thread.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable

import numpy as np

STAGES = ("decode", "wait", "landmarks", "align", "encoder", "mesh", "render", "view", "write")


class StageTimer:
    """Milliseconds per frame for each stage: ``add(stage, ms)``; ``summary()`` mean/p50/p90."""

    def __init__(self):
        self.ms: dict[str, list[float]] = {s: [] for s in STAGES}

    def add(self, stage: str, ms: float) -> None:
        self.ms.setdefault(stage, []).append(ms)

    def mean(self, stage: str, last: int | None = None) -> float:
        v = self.ms.get(stage) or []
        v = v[-last:] if last else v
        return float(np.mean(v)) if v else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for s, v in self.ms.items():
            if v:
                a = np.asarray(v)
                out[s] = {"mean": round(float(a.mean()), 3), "p50": round(float(np.median(a)), 3),
                          "p90": round(float(np.percentile(a, 90)), 3)}
        return out


_END = object()


class Pipe:
    """A pipeline stage in its own thread: ``produce()`` yields items into a bounded queue.

    Iterating a pipe yields the items in order and ends when the producer ends. :meth:`stop`
    asks the producer to stop after its current item (items already queued are still delivered
    — the graceful path after Ctrl-C); :meth:`close` stops it and waits for the thread.
    An exception in the producer ends the stream and is kept in :attr:`error`.
    """

    def __init__(self, produce: Callable[[threading.Event], Any], depth: int, name: str):
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self._t = threading.Thread(target=self._run, args=(produce,), daemon=True, name=name)
        self._t.start()

    def _run(self, produce) -> None:
        try:
            for item in produce(self.stopped):
                while not self.stopped.is_set():
                    try:
                        self.q.put(item, timeout=0.05)
                        break
                    except queue.Full:
                        continue
                if self.stopped.is_set():
                    return
        except BaseException as e:  # reported by the consumer (summary / re-raised)
            self.error = e
        finally:
            try:
                self.q.put_nowait(_END)
            except queue.Full:
                pass  # the consumer notices that the thread has ended

    def __iter__(self):
        while True:
            try:
                item = self.q.get(timeout=0.05)
            except queue.Empty:
                if not self._t.is_alive() and self.q.empty():
                    return
                continue
            if item is _END:
                return
            yield item

    def stop(self) -> None:
        self.stopped.set()

    def close(self) -> None:
        self.stopped.set()
        self._t.join(timeout=5.0)

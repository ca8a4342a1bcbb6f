"""Graceful interruption: SIGINT (Ctrl-C) / SIGTERM ask the run to stop after the current step
(it then writes a checkpoint and returns); a second Ctrl-C aborts at once."""

from __future__ import annotations

import logging
import signal
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger("recon.train")


@contextmanager
def stop_on_signals(request_stop: Callable[[], None], is_requested: Callable[[], bool],
                    announce: bool = True) -> Iterator[None]:
    """While active, SIGINT/SIGTERM call ``request_stop()``; a SIGINT when ``is_requested()``
    already raises :class:`KeyboardInterrupt`. Outside the main thread it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if is_requested() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request_stop()
        if announce:
            log.warning("interrupt: finishing this step and saving a checkpoint (Ctrl-C again to abort)")

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)

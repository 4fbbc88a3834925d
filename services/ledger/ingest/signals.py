"""`loyalty consume`'s signals: the first asks for a graceful stop, a second stops now."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("loyalty.consume")


def stop_on_signals(stop: Callable[[], None]) -> None:
    """SIGTERM/SIGINT: the first asks for a graceful stop, a second stops at once."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if getattr(handler, "asked", False):
            log.warning("%s again: stopping now; the current batch is read again later", name)
            raise KeyboardInterrupt
        handler.asked = True  # type: ignore[attr-defined]
        log.info("%s: finishing the current batch, committing, then closing", name)
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)

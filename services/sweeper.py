"""The sweep runs by itself (SPEC §8): maturation, expiry and the referral rewards they
release are recorded without anyone calling `tick`.

`loyalty serve` on the embedded store and `loyalty project` (production) start a
`Sweeper`: one sweep at start, then one every `sweep_interval_seconds` (a program setting,
read again after each sweep, so a rule change takes effect without a restart). Several
processes may sweep the same store at once: a sweep is idempotent (a lot changes state
once) and a sweep that loses a race to another writer is re-run on fresh state
(`Ledger.tick`), so nothing is recorded twice. A sweep that fails (the store restarting)
is tried again after `RETRY_SECONDS`, not a whole interval later. `POST /v1/admin/tick` and
`loyalty tick` stay, for a chosen `now`.

Each finished sweep is reported to `on_sweep` (`loyalty project` prints it): someone who
waits for a quiet store (an operator, the soak's drain) knows the start-up sweep is over.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from services.ledger.domain.clock import utcnow

log = logging.getLogger(__name__)

RETRY_SECONDS = 5.0


class Sweeper:
    """Sweeps `container` at start and every `sweep_interval_seconds` on a daemon thread."""

    def __init__(
        self,
        container: Any,
        clock: Callable[[], datetime] = utcnow,
        on_sweep: Callable[[int | None], None] | None = None,
    ) -> None:
        """`on_sweep(recorded)` after each sweep: how many were recorded, None if it failed."""
        self.container = container
        self.clock = clock
        self.on_sweep = on_sweep
        self.sweeps = 0
        self.last_error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="sweeper", daemon=True)
            self._thread.start()

    def sweep_once(self) -> int:
        """One sweep at the clock's now; the number of maturations and expiries recorded."""
        result = self.container.tick(self.clock(), effects=False)
        self.sweeps += 1
        return result.total

    def _run(self) -> None:
        while not self._stop.is_set():
            interval = float(self.container.ledger.rules.sweep_interval_seconds)
            recorded: int | None = None
            try:
                recorded = self.sweep_once()
                if recorded:
                    log.info("sweep: %d maturations and expiries recorded", recorded)
            except Exception as error:  # tried again soon; the API stays up
                self.last_error = error
                interval = min(interval, RETRY_SECONDS)
                log.exception("the sweep failed; retrying in %.0f s", interval)
            if self.on_sweep is not None:
                self.on_sweep(recorded)
            self._stop.wait(interval)

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=30)

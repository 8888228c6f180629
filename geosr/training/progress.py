"""Training progress: a bar on stderr, ``progress`` events on stdout, or nothing."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from geosr.console import EventStream

#: Losses shown next to the bar.
BAR_KEYS = ("g_total", "d_loss", "g_pixel")


class StepProgress:
    """Reports steps done; only the main process reports (``enabled``)."""

    def __init__(self, mode: str, total: int, start: int, enabled: bool) -> None:
        self.mode = mode if enabled else "none"
        self.total = total
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=total, initial=start, unit="step", desc="geosr-train", dynamic_ncols=True
            )
        self.events = EventStream(self.mode == "jsonl")
        self.last_emit = 0.0

    def update(self, step: int, logs: Mapping[str, float]) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)
            shown = {k: f"{v:.4g}" for k, v in logs.items() if k.startswith(BAR_KEYS)}
            self.bar.set_postfix(shown, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_emit > 0.5 or step == self.total:  # at most two events a second
            self.last_emit = now
            self.events.progress(step, self.total, **{k: round(v, 5) for k, v in logs.items()})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

"""The monthly report's 12-month revenue chart: a PNG from matplotlib (Agg backend, no display).
No I/O beyond the bytes it returns; callers run it off the event loop (it takes ~50 ms)."""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: a headless daemon has no display

import matplotlib.pyplot as plt  # noqa: E402

_LOCK = threading.Lock()  # pyplot's figure registry is global state


def revenue_chart(months: Sequence[tuple[str, int]], currency: str, color: str = "#2563eb",
                  title: str = "Revenue, last 12 months") -> bytes:
    """A bar per (YYYY-MM, revenue micros), in currency units; PNG bytes, deterministic for its input."""
    labels = [m for m, _ in months]
    values = [micros / 1_000_000 for _, micros in months]
    with _LOCK:
        figure, axes = plt.subplots(figsize=(8, 3.2), dpi=100)
        try:
            axes.bar(labels, values, color=color)
            axes.set_title(title)
            axes.set_ylabel(currency)
            axes.tick_params(axis="x", labelrotation=45, labelsize=8)
            axes.grid(axis="y", alpha=0.3)
            figure.tight_layout()
            buffer = io.BytesIO()
            # No Software/date metadata: the same figures give the same bytes.
            figure.savefig(buffer, format="png", metadata={"Software": None})
        finally:
            plt.close(figure)
    return buffer.getvalue()

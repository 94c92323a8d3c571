"""Prometheus metrics with VolSync's names and labels, plus a success/failure counter.

- `volsync_missed_intervals_total` (counter): completions more than one schedule period late;
- `volsync_volume_out_of_sync` (gauge 0/1): never synced, or a deadline missed, until the next
  successful sync;
- `volsync_sync_duration_seconds` (summary with 0.5/0.9/0.99 quantiles over the last 24 h, as
  VolSync's): duration of each completed iteration;
- `volsync_sync_results_total` (counter, label `result` = success|failure): ours; VolSync users
  asked for it.
Labels: `obj_name`, `obj_namespace`, `role` (source|destination), `method` (rsync).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import Metric, SummaryMetricFamily
from prometheus_client.samples import Sample

LABELS = ("obj_name", "obj_namespace", "role", "method")
WINDOW = 24 * 3600.0
QUANTILES = (0.5, 0.9, 0.99)


class _DurationSummary:
    """A summary whose quantiles are exact over a sliding 24 h window (bounded sample count)."""

    def __init__(self, max_samples: int = 10_000) -> None:
        self._samples: dict[tuple[str, ...], deque[tuple[float, float]]] = {}
        self._totals: dict[tuple[str, ...], tuple[int, float]] = {}
        self._max = max_samples
        self._lock = threading.Lock()

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        with self._lock:
            window = self._samples.setdefault(labels, deque(maxlen=self._max))
            window.append((time.monotonic(), value))
            count, total = self._totals.get(labels, (0, 0.0))
            self._totals[labels] = (count + 1, total + value)

    def collect(self) -> Iterator[Metric]:
        family = SummaryMetricFamily(
            "volsync_sync_duration_seconds", "Duration of the sync interval in seconds", labels=LABELS
        )
        cutoff = time.monotonic() - WINDOW
        with self._lock:
            for labels, window in self._samples.items():
                while window and window[0][0] < cutoff:
                    window.popleft()
                values = sorted(v for _, v in window)
                count, total = self._totals[labels]
                quantiles = [
                    (q, values[min(int(q * len(values)), len(values) - 1)] if values else float("nan"))
                    for q in QUANTILES
                ]
                family.add_metric(list(labels), count_value=count, sum_value=total)
                for q, v in quantiles:
                    sample_labels = {**dict(zip(LABELS, labels, strict=True)), "quantile": str(q)}
                    family.samples.append(Sample("volsync_sync_duration_seconds", sample_labels, v))
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.missed = Counter(
            "volsync_missed_intervals",
            "Number of times a synchronization deadline was missed",
            LABELS,
            registry=self.registry,
        )
        self.out_of_sync = Gauge(
            "volsync_volume_out_of_sync",
            "Set to 1 if the volume is not properly synchronized",
            LABELS,
            registry=self.registry,
        )
        self.results = Counter(
            "volsync_sync_results",
            "Completed synchronization attempts by result",
            (*LABELS, "result"),
            registry=self.registry,
        )
        self.durations = _DurationSummary()
        self.registry.register(self.durations)

    def completed(self, labels: tuple[str, ...], duration: float, missed: bool) -> None:
        self.durations.observe(labels, duration)
        if missed:
            self.missed.labels(*labels).inc()
        self.out_of_sync.labels(*labels).set(0)
        self.results.labels(*labels, "success").inc()

    def failed(self, labels: tuple[str, ...]) -> None:
        self.results.labels(*labels, "failure").inc()

    def set_out_of_sync(self, labels: tuple[str, ...], value: bool) -> None:
        self.out_of_sync.labels(*labels).set(1 if value else 0)

    def forget(self, labels: tuple[str, ...]) -> None:
        for metric in (self.missed, self.out_of_sync):
            with contextlib.suppress(KeyError):
                metric.remove(*labels)

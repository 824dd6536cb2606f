"""One daemon's metrics: the process-wide families plus gauges read when scraped.

A gauge here costs nothing between scrapes: ``read`` is called by the scrape (calls in
progress from the call tracker, connection states, pool use), and ``on_scrape`` refreshers
(database counts) run just before it, each bounded by a timeout so a slow query delays
a scrape, never the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import asyncpg
import structlog
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controlplane.metrics.families import STATIC

log = structlog.get_logger(__name__)

Sample = tuple[tuple[str, ...], float]
Read = Callable[[], Iterable[Sample]]
Refresh = Callable[[], Awaitable[None]]
REFRESH_SECONDS = 2.0


@dataclass(frozen=True)
class _Gauge:
    name: str
    doc: str
    labels: tuple[str, ...]
    read: Read


class _LiveCollector(Collector):
    def __init__(self, gauges: list[_Gauge]) -> None:
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for gauge in self._gauges:
            family = GaugeMetricFamily(gauge.name, gauge.doc, labels=gauge.labels)
            try:
                for values, value in gauge.read():
                    family.add_metric(list(values), value)
            except Exception:
                log.warning("metrics.read_failed", metric=gauge.name, exc_info=True)
                continue
            yield family


@dataclass
class QueryGauge:
    """Rows of (label values..., number) from one query, taken at each scrape."""

    pool: asyncpg.Pool
    sql: str
    # A table another capability's migration adds: no samples until it exists.
    needs_table: str | None = None
    samples: list[Sample] = field(default_factory=list)

    async def refresh(self) -> None:
        if self.needs_table is not None and await self.pool.fetchval("SELECT to_regclass($1)",
                                                                     self.needs_table) is None:
            self.samples = []
            return
        rows = await self.pool.fetch(self.sql)
        self.samples = [(tuple(str(v) for v in row[:-1]), float(row[-1])) for row in rows]

    def read(self) -> list[Sample]:
        return self.samples


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        for family in STATIC:
            self.registry.register(family)
        self._gauges: list[_Gauge] = []
        self._refresh: list[tuple[str, Refresh]] = []
        self.registry.register(_LiveCollector(self._gauges))

    def gauge(self, name: str, doc: str, labels: Sequence[str], read: Read) -> None:
        """A gauge whose samples ``read`` returns at scrape time."""
        self._gauges.append(_Gauge(name, doc, tuple(labels), read))

    def query_gauge(self, name: str, doc: str, labels: Sequence[str], pool: asyncpg.Pool, sql: str,
                    needs_table: str | None = None) -> None:
        """A gauge from one query (its rows: the label values, then the number), run per scrape."""
        query = QueryGauge(pool, sql, needs_table)
        self.gauge(name, doc, labels, query.read)
        self._refresh.append((name, query.refresh))

    async def render(self) -> bytes:
        """The exposition text, after the refreshers had their chance."""
        if self._refresh:
            await asyncio.gather(*(self._bounded(name, refresh) for name, refresh in self._refresh))
        return generate_latest(self.registry)

    @staticmethod
    async def _bounded(name: str, refresh: Refresh) -> None:
        try:
            async with asyncio.timeout(REFRESH_SECONDS):
                await refresh()
        except Exception:  # the previous value stays; the scrape still answers
            log.warning("metrics.refresh_failed", metric=name, exc_info=True)


def pool_samples(pool: asyncpg.Pool) -> list[Sample]:
    size, idle = pool.get_size(), pool.get_idle_size()
    return [(("in_use",), float(size - idle)), (("idle",), float(idle)),
            (("max",), float(pool.get_max_size()))]

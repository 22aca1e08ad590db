"""Prometheus metrics. Labels are low-cardinality: channel, queue, kind — never ids or text."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGEST_TOTAL = Counter(
    "careline_ingest_total", "Inbound messages by channel and result", ["channel", "result"]
)
INGEST_SECONDS = Histogram(
    "careline_ingest_seconds",
    "Time to persist one inbound message (verify to commit)",
    ["channel"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
QUEUE_DEPTH = Gauge("careline_queue_depth", "Open unassigned conversations per queue", ["queue"])
OUTBOX_BACKLOG = Gauge("careline_outbox_backlog", "Outbox items not yet delivered or dead")
OUTBOX_RESULTS = Counter(
    "careline_outbox_deliveries_total",
    "Delivery attempts by channel and result",
    ["channel", "result"],
)
SLA_BREACHES = Counter("careline_sla_breaches_total", "SLA breaches", ["queue", "kind"])
SLA_WARNINGS = Counter("careline_sla_warnings_total", "SLA warnings", ["queue", "kind"])

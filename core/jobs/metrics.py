"""Prometheus metrics of the jobs, recorded by the worker.

The worker's processes write them to PROMETHEUS_MULTIPROC_DIR and the worker's
main process serves the sum on WORKER_METRICS_PORT (see worker/metrics.py).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

FINISHED = Counter(
    "appstack_jobs_finished",
    "Jobs that reached a final status in this worker, by kind and status.",
    ["kind", "status"],
)
DURATION = Histogram(
    "appstack_job_duration_seconds",
    "Run time of a job's final attempt, from claim to its final status.",
    ["kind", "status"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)
QUEUE_DEPTH = Gauge(
    "appstack_jobs_queued",
    "Jobs waiting for a worker, as counted by the last relay pass.",
    multiprocess_mode="mostrecent",
)
OLDEST_QUEUED_AGE = Gauge(
    "appstack_jobs_oldest_queued_age_seconds",
    "How long the oldest queued job has waited, as seen by the last relay pass.",
    multiprocess_mode="mostrecent",
)
RELAY_LAST_RUN = Gauge(
    "appstack_jobs_relay_last_run_timestamp_seconds",
    "Unix time the last relay pass finished.",
    multiprocess_mode="mostrecent",
)

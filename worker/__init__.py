"""The Celery worker and beat scheduler."""

import os
import shutil
import sys

# Prometheus multiprocess mode for `celery ... worker`: the prefork children
# record job metrics into files in this directory, and the main process
# serves their sum (worker/metrics.py). Emptied once per start (stale files
# would count twice); the children, forked later, inherit it. Beat and
# `celery inspect` (the healthcheck) record nothing and leave it alone.
if "worker" in sys.argv[1:]:
    _dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/appstack-worker-metrics")  # noqa: S108
    shutil.rmtree(_dir, ignore_errors=True)
    os.makedirs(_dir, exist_ok=True)
    # prometheus_client picks its value store when first imported, and
    # Celery's command line may have imported it already (Flower's command
    # plugin does): pick again now that the directory is set.
    from prometheus_client import values

    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]

"""The Celery worker and beat scheduler."""

import sys

from core.metrics import start_multiprocess_metrics

# `celery ... worker`: the prefork children record job metrics and the main
# process serves their sum (worker/metrics.py). Beat and `celery inspect`
# (the healthcheck) record nothing and leave the directory alone.
if "worker" in sys.argv[1:]:
    start_multiprocess_metrics("/tmp/appstack-worker-metrics")  # noqa: S108

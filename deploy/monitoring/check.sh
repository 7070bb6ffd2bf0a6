#!/usr/bin/env bash
# Checks the monitoring configuration with promtool from the Prometheus image
# (PROMETHEUS_IMAGE): the Prometheus config, the alert rules, and the rules'
# unit tests (tests/*.yml). Run by `make test` (tests/run.sh); alone:
#   deploy/monitoring/check.sh
set -euo pipefail
cd "$(dirname "$0")"
image="${PROMETHEUS_IMAGE:-prom/prometheus:v2.53.3}"
# The config's token file exists only in the running container: an empty one
# stands in for it.
docker run --rm --network none --user 65534:65534 \
    -v "$PWD:/etc/prometheus:ro" --tmpfs /tmp \
    --entrypoint /bin/sh "$image" -c '
        set -e
        cd /etc/prometheus
        : > /tmp/metrics-token
        promtool check config prometheus.yml
        promtool check rules rules/*.yml
        promtool test rules tests/*.yml
    '

#!/usr/bin/env bash
# Write an env file for running the production stack on this machine:
#   deploy/prod-env.sh OUT [KEY=VALUE ...]
# .env.prod.example with DOMAIN=localhost, ports 8080/8443 on 127.0.0.1,
# fresh random secrets, then the given overrides. `make prod-up` writes
# .env.prod.local this way (once; later runs keep its secrets and data).
#
#   deploy/prod-env.sh --add-missing FILE
# An existing env file (a VM's .env.prod, say) written before a release that
# added a secret: appends a fresh random value for each generated secret it
# lacks (METRICS_TOKEN, POSTGRES_APP_PASSWORD, REDIS_PASSWORD, ...) and
# changes nothing else. `make prod-up` runs it on its existing file.
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: deploy/prod-env.sh OUT [KEY=VALUE ...] | --add-missing FILE"
add_missing=""
if [ "${1:-}" = --add-missing ]; then
    add_missing=1
    shift
fi
out=${1:?$usage}
shift

random() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

set_var() {  # set_var KEY VALUE: replace KEY=... in $out, or append it
    local key=$1 value=$2
    if grep -q "^${key}=" "$out"; then
        # | as the sed delimiter: values are hex, hostnames, paths and numbers.
        sed -i "s|^${key}=.*|${key}=${value}|" "$out"
    else
        printf '%s=%s\n' "$key" "$value" >> "$out"
    fi
}

# The secrets this script generates, and their sizes in random bytes.
SECRETS="SECRET_KEY:32 POSTGRES_PASSWORD:24 POSTGRES_APP_PASSWORD:24 REDIS_PASSWORD:24 METRICS_TOKEN:32"

if [ -n "$add_missing" ]; then
    [ -f "$out" ] || { echo "$out does not exist; $usage" >&2; exit 2; }
    added=""
    for entry in $SECRETS; do
        key=${entry%%:*}
        if ! grep -q "^${key}=." "$out"; then
            set_var "$key" "$(random "${entry#*:}")"
            added="$added $key"
        fi
    done
    if [ -n "$added" ]; then
        echo "$out: added$added"
    else
        echo "$out: every generated secret was already set"
    fi
    exit 0
fi

cp .env.prod.example "$out"
chmod 600 "$out"
set_var DOMAIN localhost
set_var BIND_ADDRESS 127.0.0.1
set_var HTTP_PORT 8080
set_var HTTPS_PORT 8443
set_var APP_ENV_FILE "$out"
for entry in $SECRETS; do
    set_var "${entry%%:*}" "$(random "${entry#*:}")"
done
set_var BACKUP_DIR "$PWD/backups"
for pair in "$@"; do
    set_var "${pair%%=*}" "${pair#*=}"
done
echo "wrote $out (DOMAIN=localhost, generated secrets)"

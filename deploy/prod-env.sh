#!/usr/bin/env bash
# Write an env file for running the production stack on this machine:
#   deploy/prod-env.sh OUT [KEY=VALUE ...]
# .env.prod.example with DOMAIN=localhost, ports 8080/8443 on 127.0.0.1,
# fresh random secrets, then the given overrides. `make prod-up` writes
# .env.prod.local this way (once; later runs keep its secrets and data).
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:?usage: deploy/prod-env.sh OUT [KEY=VALUE ...]}
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

cp .env.prod.example "$out"
chmod 600 "$out"
set_var DOMAIN localhost
set_var BIND_ADDRESS 127.0.0.1
set_var HTTP_PORT 8080
set_var HTTPS_PORT 8443
set_var APP_ENV_FILE "$out"
set_var SECRET_KEY "$(random 32)"
set_var POSTGRES_PASSWORD "$(random 24)"
set_var METRICS_TOKEN "$(random 32)"
set_var BACKUP_DIR "$PWD/backups"
for pair in "$@"; do
    set_var "${pair%%=*}" "${pair#*=}"
done
echo "wrote $out (DOMAIN=localhost, generated secrets)"

# Shared by deploy.sh, backup.sh and restore.sh (sourced, not run).
#
# ENV_FILE      the stack's env file (default .env.prod in the checkout)
# COMPOSE_FILE  the compose file (default docker-compose.prod.yml)
# Run from anywhere: paths are relative to the checkout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
ENV_FILE=${ENV_FILE:-.env.prod}
COMPOSE_FILE=${COMPOSE_FILE:-docker-compose.prod.yml}
[ -f "$ENV_FILE" ] || { echo "no $ENV_FILE in $ROOT (copy .env.prod.example)" >&2; exit 2; }

compose() { docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" "$@"; }

# env_value KEY [DEFAULT]: a variable as compose sees it (the shell's value
# wins over the env file's, as in compose's own interpolation).
env_value() {
    local key=$1 default=${2:-} value
    value=${!key:-}
    if [ -z "$value" ]; then
        value=$(sed -n "s/^${key}=//p" "$ENV_FILE" | tail -n 1)
    fi
    printf '%s' "${value:-$default}"
}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }

# only_local_db: backup.sh and restore.sh work on the db service; with a
# managed DATABASE_URL that service idles, and they would copy (or replace)
# an empty database while the real one goes unprotected.
only_local_db() {
    if [ -n "$(env_value DATABASE_URL)" ]; then
        echo "DATABASE_URL points at a database outside this stack: back it up (and restore" >&2
        echo "it) with its provider's tools; $(basename "$0") works on the db service only" >&2
        exit 2
    fi
}

# take_lock WAIT: one deploy, backup or restore at a time (two deploys would
# stop each other's api containers; a backup must not read a half-restored
# database). Waits up to WAIT seconds. A script run by one that holds the lock
# (restore.sh runs backup.sh) passes. flock needs only a readable file, so
# root (the backup timer) and the deploying user share it.
take_lock() {
    [ -n "${APPSTACK_LOCKED:-}" ] && return 0
    local lock="$ROOT/.git/appstack-ops.lock"
    [ -d "$ROOT/.git" ] || lock=/tmp/appstack-ops.lock
    [ -e "$lock" ] || : > "$lock"
    exec 9< "$lock"
    if ! flock -w "$1" 9; then
        echo "another deploy, backup or restore is running (lock: $lock)" >&2
        exit 75
    fi
    export APPSTACK_LOCKED=1
}

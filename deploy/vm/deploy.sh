#!/usr/bin/env bash
# Update the running stack: deploy/vm/deploy.sh [GIT_REF]
#
#   1. with GIT_REF: fetch it and check it out (detached); without: deploy
#      the checkout as it is;
#   2. build the app image (or pull APP_IMAGE when PULL=1);
#   3. run the migrations (they must be compatible with the running code:
#      add first, remove in a later release);
#   4. replace the api containers without failed requests: start API_REPLICAS
#      new ones beside the old, wait until they are healthy, then stop the old
#      ones gracefully (Caddy balances over every replica Docker's DNS names
#      and retries a refused connection on another);
#   5. restart the worker replicas (running jobs are handed back and resumed)
#      and the scheduler, and reload Caddy's configuration.
# The first deploy is the same command: it starts whatever is not running.
source "$(dirname "$0")/lib.sh"
take_lock 0

ref=${1:-}
started=$SECONDS
previous=$(git rev-parse HEAD 2>/dev/null || true)
deployed=0

# A deploy that fails after checking out another ref goes back to the ref
# that was running, and rebuilds its image (from the build cache), so that
# the next `up` (a reboot, the systemd unit) does not start the failed build.
# The old api containers kept serving throughout. A migration that already
# ran stays: migrations must be additive (see the README).
back_to_previous() {
    local status=$?
    [ "$deployed" = 1 ] || [ -z "$ref" ] || [ -z "$previous" ] && return "$status"
    [ "$(git rev-parse HEAD)" = "$previous" ] && return "$status"
    log "deploy failed (exit $status); checking out ${previous:0:12} again"
    if git checkout --quiet --detach "$previous" && { [ "${PULL:-0}" = 1 ] || compose build --quiet; }; then
        [ "${PULL:-0}" = 1 ] && log "PULL=1: pull the previous APP_IMAGE again before the next up"
    else
        log "could not restore the previous build; run: deploy/vm/deploy.sh $previous"
    fi
    return "$status"
}
trap back_to_previous EXIT

if [ -n "$ref" ]; then
    log "checking out $ref"
    git fetch --force --tags --prune origin
    # A branch name means the branch as just fetched, not a stale local copy.
    if commit=$(git rev-parse --verify --quiet "refs/remotes/origin/$ref^{commit}"); then :
    else commit=$(git rev-parse --verify "$ref^{commit}"); fi
    git checkout --detach "$commit"
fi
log "deploying $(git rev-parse --short HEAD 2>/dev/null || echo 'this checkout')"

if [ "${PULL:-0}" = 1 ]; then
    compose pull api
else
    compose build
fi

compose up -d --wait db redis
log "migrating"
compose run --rm migrate

mapfile -t old < <(compose ps -q api)
if [ "${#old[@]}" -eq 0 ]; then
    log "first start"
    compose up -d --wait
    deployed=1
    log "deployed in $((SECONDS - started))s"
    exit 0
fi

# As many new containers as API_REPLICAS asks for (the compose file's
# deploy.replicas), however many old ones run: a deploy also scales.
replicas=$(env_value API_REPLICAS 1)
log "starting $replicas new api container(s) beside the ${#old[@]} old"
compose up -d --no-deps --no-recreate --scale "api=$((${#old[@]} + replicas))" api

health() { docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1"; }
is_old() { local id; for id in "${old[@]}"; do [[ "$1" == "$id"* || "$id" == "$1"* ]] && return 0; done; return 1; }
deadline=$((SECONDS + ${HEALTH_TIMEOUT:-120}))
while :; do
    new=()
    ready=0
    for id in $(compose ps -q api); do
        is_old "$id" && continue
        new+=("$id")
        [ "$(health "$id")" = healthy ] && ready=$((ready + 1))
    done
    [ "$ready" -ge "$replicas" ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
        log "new api containers not healthy in time; removing them, the old ones keep serving"
        docker rm -f "${new[@]}" >/dev/null
        exit 1
    fi
    sleep 1
done

log "new api healthy; stopping the old ones (in-flight requests finish)"
# gunicorn's graceful shutdown: the old containers stop accepting, finish what
# they hold, and exit; Caddy's retries reach the new ones meanwhile.
docker stop --time 30 "${old[@]}" >/dev/null
docker rm "${old[@]}" >/dev/null
compose up -d --no-deps --no-recreate --scale "api=$replicas" api

log "restarting worker and scheduler"
compose up -d --no-deps --wait worker scheduler
compose up -d --no-deps caddy
compose exec -T caddy caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile >/dev/null

deployed=1
log "deployed in $((SECONDS - started))s"

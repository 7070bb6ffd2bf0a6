#!/usr/bin/env bash
# Restore the database from a backup: deploy/vm/restore.sh FILE
#
# Checks that FILE (a pg_dump -Fc archive from backup.sh) is readable, backs
# the current database up first, stops the api, worker and scheduler,
# recreates the database empty, loads FILE in one transaction, applies any
# newer migrations, and starts the services again. Everything written since
# the backup is lost. If the load fails, the services stay stopped and the
# message names the backup of the state before.
set -euo pipefail
file=${1:?usage: deploy/vm/restore.sh FILE.dump}
[ -s "$file" ] || { echo "$file: no such backup (or empty)" >&2; exit 2; }
file=$(realpath -- "$file")  # lib.sh changes to the checkout
source "$(dirname "$0")/lib.sh"
only_local_db
take_lock 0

compose up -d --wait db
log "checking $file"
if ! compose exec -T db pg_restore --list < "$file" > /dev/null; then
    echo "$file is not a pg_dump archive pg_restore can read; nothing was changed" >&2
    exit 2
fi
log "backing up the current database first"
before=$("$ROOT/deploy/vm/backup.sh")
trap 'status=$?; [ "$status" = 0 ] || log "restore failed (exit $status); api, worker and scheduler are stopped; the database as it was before is in $before: deploy/vm/restore.sh $before"' EXIT

log "stopping api, worker, scheduler"
compose stop api worker scheduler

log "recreating the database"
compose exec -T db sh -c \
    'dropdb -U "$POSTGRES_USER" --if-exists --force "$POSTGRES_DB" &&
     createdb -U "$POSTGRES_USER" "$POSTGRES_DB"'

# --no-privileges: the app role may not exist yet (a new volume); the
# migrate service below creates it and grants its rights again.
log "loading $file"
compose exec -T db sh -c \
    'pg_restore -U "$POSTGRES_USER" -d "$POSTGRES_DB" --no-owner --no-privileges --exit-on-error --single-transaction' < "$file"

log "migrating (and granting the app role its rights), starting the services"
compose run --rm migrate
compose up -d --wait
log "restored $file"

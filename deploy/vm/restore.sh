#!/usr/bin/env bash
# Restore the database from a backup: deploy/vm/restore.sh FILE
#
# Stops the api, worker and scheduler, recreates the database empty, loads
# FILE (a pg_dump -Fc archive from backup.sh), applies any newer migrations,
# and starts the services again. Everything written since the backup is lost.
source "$(dirname "$0")/lib.sh"

file=${1:?usage: deploy/vm/restore.sh FILE.dump}
[ -s "$file" ] || { echo "$file: no such backup (or empty)" >&2; exit 2; }

log "stopping api, worker, scheduler"
compose stop api worker scheduler
compose up -d --wait db

log "recreating the database"
compose exec -T db sh -c \
    'dropdb -U "$POSTGRES_USER" --if-exists --force "$POSTGRES_DB" &&
     createdb -U "$POSTGRES_USER" "$POSTGRES_DB"'

log "loading $file"
compose exec -T db sh -c \
    'pg_restore -U "$POSTGRES_USER" -d "$POSTGRES_DB" --no-owner --exit-on-error' < "$file"

log "migrating and starting the services"
compose run --rm migrate
compose up -d --wait
log "restored $file"

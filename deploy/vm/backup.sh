#!/usr/bin/env bash
# Back up the database: deploy/vm/backup.sh
#
# pg_dump -Fc (compressed, restorable with restore.sh or pg_restore) through
# `docker compose exec -T db`, written to BACKUP_DIR as
# appstack-<UTC timestamp>.dump; the newest BACKUP_KEEP files are kept.
# Prints the path of the new file. Safe to run while the stack serves traffic.
source "$(dirname "$0")/lib.sh"
only_local_db
take_lock 1800  # behind a running deploy or restore
# The dumps hold every row, password hashes included: owner-only.
umask 077

dir=$(env_value BACKUP_DIR /var/backups/appstack)
keep=$(env_value BACKUP_KEEP 14)
[[ "$keep" =~ ^[1-9][0-9]*$ ]] || { echo "BACKUP_KEEP must be a positive number" >&2; exit 2; }
mkdir -p "$dir"

file="$dir/appstack-$(date -u +%Y%m%dT%H%M%SZ).dump"
partial="$file.partial"
trap 'rm -f "$partial"' EXIT
# Written under a temporary name: a failed dump never looks like a backup.
compose exec -T db sh -c 'pg_dump -Fc -U "$POSTGRES_USER" -d "$POSTGRES_DB"' > "$partial"
[ -s "$partial" ] || { echo "pg_dump wrote nothing" >&2; exit 1; }
mv "$partial" "$file"

# Keep the newest $keep dumps (names sort by time).
ls -1 "$dir"/appstack-*.dump | sort | head -n -"$keep" | xargs -r rm -f --
log "backup written: $file ($(du -h "$file" | cut -f1)); keeping the newest $keep" >&2
echo "$file"

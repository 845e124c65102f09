#!/usr/bin/env bash
# Dumps each service's Postgres schema to its own dated file (pg_dump custom format), plus the
# roles, and prunes old backups.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

SCHEMAS=(vk telegram okdesk amocrm messenger)

usage() {
  cat <<'EOF'
Usage: scripts/backup.sh [--dir DIR] [--keep-days N] [--schema NAME]... [--database-url URL]

Writes DIR/<YYYY-mm-ddTHHMMSSZ>-<schema>.dump for every service schema that exists
(vk telegram okdesk amocrm messenger), and DIR/<date>-roles.sql (roles, with password hashes).
Each dump is checked with pg_restore --list. Files are private to the user (umask 077).

Options:
  --dir DIR           target directory (default $BACKUP_DIR, else /var/backups/messenger-gateway)
  --keep-days N       delete this script's backups older than N days (default 14; 0 keeps all)
  --schema NAME       back up only this schema (repeatable)
  --database-url URL  dump from this server with the local pg_dump, instead of the compose
                      postgres container (pg_dump must be as new as the server)

Restore with scripts/restore.sh (one schema or all of one run; refuses without --yes):
  scripts/restore.sh /var/backups/messenger-gateway/<stamp>-vk.dump --yes
  scripts/restore.sh /var/backups/messenger-gateway/<stamp> --yes        # every schema of that run
Cron, daily at 03:17:
  17 3 * * * cd /opt/messenger-gateway && scripts/backup.sh >>/var/log/gateway-backup.log 2>&1
EOF
}

dir=${BACKUP_DIR:-/var/backups/messenger-gateway}
keep_days=14
only=()
url=""
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --dir) dir=${2:?}; shift ;;
    --keep-days) keep_days=${2:?}; shift ;;
    --schema) only+=("${2:?}"); shift ;;
    --database-url) url=${2:?}; shift ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done
[[ $keep_days =~ ^[0-9]+$ ]] || die "--keep-days must be a number"
[[ ${#only[@]} -eq 0 ]] || SCHEMAS=("${only[@]}")

umask 077
mkdir -p "$dir"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)

if [[ -n $url ]]; then
  have pg_dump || die "pg_dump not found (apt-get install postgresql-client)"
  pg_psql() { psql -X -At -v ON_ERROR_STOP=1 "$url" "$@"; }
  pg_dump_schema() { pg_dump --format=custom "--schema=$1" "$url"; }
  pg_roles() { pg_dumpall --roles-only -d "$url"; }
  pg_check() { pg_restore --list "$1" >/dev/null; }
  where="$url"
else
  db=$(env_get POSTGRES_DB)
  db=${db:-gateway}
  pg_psql() { compose exec -T postgres psql -X -At -v ON_ERROR_STOP=1 -U postgres -d "$db" "$@"; }
  pg_dump_schema() { compose exec -T postgres pg_dump -U postgres -d "$db" --format=custom "--schema=$1"; }
  pg_roles() { compose exec -T postgres pg_dumpall -U postgres --roles-only; }
  pg_check() { compose exec -T postgres pg_restore --list <"$1" >/dev/null; }
  where="compose service postgres, database $db"
fi

log "backup of $where into $dir"
existing=$(pg_psql -c "select nspname from pg_namespace") || die "cannot query the database"
failed=0
done_any=0
for schema in "${SCHEMAS[@]}"; do
  if ! grep -qx "$schema" <<<"$existing"; then
    info "$schema: no such schema, skipped"
    continue
  fi
  out="$dir/$stamp-$schema.dump"
  if pg_dump_schema "$schema" >"$out.part" && [[ -s $out.part ]] && pg_check "$out.part"; then
    mv "$out.part" "$out"
    info "$schema: $out ($(du -h "$out" | cut -f1))"
    done_any=1
  else
    rm -f "$out.part"
    warn "$schema: dump failed"
    failed=1
  fi
done
if pg_roles >"$dir/$stamp-roles.sql.part" 2>/dev/null; then
  mv "$dir/$stamp-roles.sql.part" "$dir/$stamp-roles.sql"
  info "roles: $dir/$stamp-roles.sql"
else
  rm -f "$dir/$stamp-roles.sql.part"
  warn "roles: pg_dumpall --roles-only failed (needs superuser); skipped"
fi

if [[ $keep_days -gt 0 && $failed -eq 0 ]]; then
  pruned=$(find "$dir" -maxdepth 1 -type f \( -name '*Z-*.dump' -o -name '*Z-roles.sql' \) -mtime "+$keep_days" -print -delete | wc -l)
  [[ $pruned -eq 0 ]] || info "pruned $pruned backup file(s) older than $keep_days days"
fi

[[ $failed -eq 0 ]] || die "some schemas were not backed up"
[[ $done_any -eq 1 ]] || warn "no service schema found: nothing dumped"
log "backup done"

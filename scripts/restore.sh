#!/usr/bin/env bash
# Brings a service schema back from the dumps of scripts/backup.sh, replacing what is there.
set -euo pipefail
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

usage() {
  cat <<'EOF'
Usage: scripts/restore.sh <dump> [--schema S]... [--yes] [--database-url URL]

<dump> is what scripts/backup.sh wrote:
  a file   DIR/<stamp>-<schema>.dump      restores that schema
  a stamp  DIR/<stamp>  (no suffix)       restores every DIR/<stamp>-<schema>.dump of that run
--schema S picks one schema (repeatable) among them; without it, all of them.

For each schema: stops its service (vk -> vk-connector, …), DROP SCHEMA … CASCADE, pg_restore
--single-transaction as the superuser (the dump keeps the owner, so the schema comes back owned
by its role), then starts the service again when COMPOSE_PROFILES enables it. The role must
exist (deploy/postgres/init.sql, or <stamp>-roles.sql of the same backup).

Without --yes it only prints what it would replace and exits 1: a restore overwrites the
schema's data written since the dump.
  --yes               really replace the schemas
  --database-url URL  restore into this server with the local pg_restore and psql (as a
                      superuser), instead of the compose postgres container; no service is
                      stopped or started then
Schemas: vk telegram okdesk amocrm messenger
EOF
}

dump=""
only=()
yes=0
url=""
while [[ $# -gt 0 ]]; do
  case $1 in
    -h | --help) usage; exit 0 ;;
    --schema) only+=("${2:?--schema needs a name}"); shift ;;
    --yes) yes=1 ;;
    --database-url) url=${2:?}; shift ;;
    -*) usage >&2; exit 2 ;;
    *)
      [[ -z $dump ]] || { usage >&2; exit 2; }
      dump=$1
      ;;
  esac
  shift
done
[[ -n $dump ]] || { usage >&2; exit 2; }
known=$(service_schemas)
for s in "${only[@]}"; do
  grep -qxF -- "$s" <<<"$known" || die "unknown schema '$s' (known: $(tr '\n' ' ' <<<"$known"))"
done

# schema -> file
declare -A files=()
if [[ -f $dump ]]; then
  base=$(basename "$dump" .dump)
  schema=${base##*-}
  grep -qxF -- "$schema" <<<"$known" || die "$dump: the name does not end in -<schema>.dump (scripts/backup.sh names its files so)"
  files[$schema]=$dump
else
  for s in $known; do
    [[ -f $dump-$s.dump ]] && files[$s]=$dump-$s.dump
  done
  [[ ${#files[@]} -gt 0 ]] || die "no dump: $dump is no file, and there is no $dump-<schema>.dump"
fi
selected=()
for s in $known; do
  [[ -n ${files[$s]:-} ]] || continue
  if [[ ${#only[@]} -gt 0 ]] && ! printf '%s\n' "${only[@]}" | grep -qxF -- "$s"; then
    continue
  fi
  selected+=("$s")
done
for s in "${only[@]}"; do
  [[ -n ${files[$s]:-} ]] || die "no dump of schema $s in $dump"
done
[[ ${#selected[@]} -gt 0 ]] || die "nothing to restore"

cd "$REPO_ROOT"
if [[ -n $url ]]; then
  have pg_restore || die "pg_restore not found (apt-get install postgresql-client)"
  pg_sql() { psql -X -q -v ON_ERROR_STOP=1 "$url" -c "$1"; }
  pg_list() { pg_restore --list "$1"; }
  pg_load() { pg_restore --single-transaction --exit-on-error -d "$url" "$1"; }
  where="$url"
else
  db=$(env_get POSTGRES_DB)
  db=${db:-gateway}
  pg_sql() { compose exec -T postgres psql -X -q -v ON_ERROR_STOP=1 -U postgres -d "$db" -c "$1"; }
  pg_list() { compose exec -T postgres pg_restore --list <"$1"; }
  pg_load() { compose exec -T postgres pg_restore --single-transaction --exit-on-error -U postgres -d "$db" <"$1"; }
  where="compose service postgres, database $db"
fi

log "restore into $where"
for s in "${selected[@]}"; do
  f=${files[$s]}
  # the dump must be readable and hold that schema, before anything is dropped
  listing=$(pg_list "$f") || die "$f: pg_restore --list failed (not a pg_dump custom-format file?)"
  grep -qE "[0-9]+ SCHEMA - $s( |$)" <<<"$listing" || die "$f holds no schema $s"
  info "$s <- $f ($(grep -cE '^[0-9]+; [0-9]+ [0-9]+ TABLE DATA ' <<<"$listing" || true) tables with data)"
done

if [[ $yes -ne 1 ]]; then
  warn "refusing to overwrite schema(s) ${selected[*]} without --yes: everything written there since the dump is lost"
  exit 1
fi

failed=0
for s in "${selected[@]}"; do
  f=${files[$s]}
  svc=$(service_of_schema "$s")
  if [[ -z $url ]]; then
    log "$s: stopping $svc"
    compose stop "$svc" >/dev/null 2>&1 || true
  fi
  log "$s: DROP SCHEMA $s CASCADE, then pg_restore $f"
  if pg_sql "DROP SCHEMA IF EXISTS \"$s\" CASCADE" && pg_load "$f"; then
    info "$s restored"
  else
    warn "$s: restore failed (the schema may now be missing: run this again, or init.sql to recreate it empty)"
    failed=1
  fi
  if [[ -z $url ]] && service_enabled "$svc"; then
    log "$s: starting $svc"
    compose up -d --no-deps "$svc" >/dev/null || warn "$svc did not start: scripts/logs.sh $svc"
  fi
done
[[ $failed -eq 0 ]] || die "some schemas were not restored"
log "restore done; check with scripts/verify.sh"

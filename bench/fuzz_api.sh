#!/usr/bin/env bash
# Fuzz the API with schemathesis as one role, against `healthos serve` on PostgreSQL
# holding the demo (issue 9: no server error, no schema-violating request accepted, every
# status and content type documented).
#
#   bench/fuzz_api.sh ROLE [SECONDS] [PORT]
#
#   ROLE     clinician, nurse, finance, operations, leadership or admin (token dev-ROLE)
#   SECONDS  time budget of `st run` (default 300)
#   PORT     where the server listens (default 8799)
#
# Needs PostgreSQL at 127.0.0.1:5432 (trust, user postgres). The database is
# $HEALTHOS_FUZZ_DB (default hos_fuzz), created and loaded with `healthos demo` when
# missing; it is never dropped. Runs every check but positive_data_acceptance: that one
# wants a 2xx for any schema-valid body, and the API refuses some with a 422 by rule
# (a dismissal needs a reason, valid_to before valid_from, text with NUL).
# Prints schemathesis' summary and the server's unexpected errors (there must be none);
# exits non-zero if either found something.
set -euo pipefail

role=${1:?usage: bench/fuzz_api.sh ROLE [SECONDS] [PORT]}
seconds=${2:-300}
port=${3:-8799}
repo=$(cd "$(dirname "$0")/.." && pwd)
bin="$repo/.venv/bin"
db=${HEALTHOS_FUZZ_DB:-hos_fuzz}
url="postgresql+psycopg://postgres@127.0.0.1:5432/$db"
work=$(mktemp -d)
cd "$work"

if ! psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" \
    | grep -q 1; then
    createdb -h 127.0.0.1 -U postgres "$db"
    "$bin/healthos" demo --no-serve --db "$url" > demo.log
fi

"$bin/healthos" serve --db "$url" --port "$port" > serve.log 2>&1 &
server=$!
trap 'kill "$server" 2> /dev/null; wait "$server" 2> /dev/null || true' EXIT
for _ in $(seq 60); do
    curl -sf "http://127.0.0.1:$port/health" > /dev/null && break
    sleep 1
done

status=0
"$bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --header "Authorization: Bearer dev-$role" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-time "$seconds" --workers 2 \
    --report junit --report-dir "$work/report" || status=$?

errors=$(grep -c "unexpected" serve.log || true)
echo "server: $errors unexpected errors (serve.log and the junit report in $work)"
grep "unexpected" serve.log | head -5 || true
if [ "$errors" -ne 0 ]; then
    status=1
fi
exit "$status"

#!/bin/sh
# Runs the ticket service's tests on PostgreSQL from Debian's packages, as
# .ci/run does after the SQLite run. Needs root (apt-get, pg_ctlcluster).
# Usage: tickets/ci-postgres.sh   (from the repository root)
set -eu
if ! command -v pg_ctlcluster >/dev/null; then
	apt-get install -y postgresql
fi
ver=$(ls /usr/lib/postgresql | sort -n | tail -1)
pg_ctlcluster "$ver" main start 2>/dev/null || true
until su postgres -c "pg_isready -q"; do sleep 0.2; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='sluice'\"" | grep -q 1 ||
	su postgres -c "psql -qc \"CREATE ROLE sluice LOGIN PASSWORD 'sluice'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='sluice_test'\"" | grep -q 1 ||
	su postgres -c "createdb -O sluice sluice_test"
SLUICE_TEST_POSTGRES="postgres://sluice:sluice@127.0.0.1:5432/sluice_test?sslmode=disable" \
	go test -count=1 ./tickets/...

#!/bin/bash
# Creates the non-root user n8n connects as, at the database's first start
# (n8n-io/n8n-hosting's docker-compose/withPostgres/init-data.sh does the
# same). A restore with `sidecar restore --to-database` brings the user back
# too: pg_dumpall holds every role.
set -e

if [ -n "${POSTGRES_NON_ROOT_USER:-}" ] && [ -n "${POSTGRES_NON_ROOT_PASSWORD:-}" ]; then
	psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<-EOSQL
		CREATE USER "${POSTGRES_NON_ROOT_USER}" WITH PASSWORD '${POSTGRES_NON_ROOT_PASSWORD}';
		GRANT ALL PRIVILEGES ON DATABASE "${POSTGRES_DB}" TO "${POSTGRES_NON_ROOT_USER}";
		GRANT CREATE ON SCHEMA public TO "${POSTGRES_NON_ROOT_USER}";
	EOSQL
else
	echo "init-data.sh: POSTGRES_NON_ROOT_USER or POSTGRES_NON_ROOT_PASSWORD is not set; no user created" >&2
fi

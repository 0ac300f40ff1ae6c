#!/bin/bash
# docker-entrypoint.sh of platback's test database images (internal/testbed/dbimage).
#
# One script for both engines, chosen by the command, as the official images
# choose by image: "postgres" (or options starting with "-" on the postgres
# image) runs PostgreSQL 15, "mariadbd"/"mysqld" runs MariaDB; anything else is
# exec'd as is. It reads the same variables as the official postgres and
# mariadb images' entrypoints, each also as VAR_FILE (a file holding the value),
# initialises an empty data directory once, and then execs the server as PID 1
# under its own user (setpriv from util-linux, like gosu in the official
# images).
set -Eeo pipefail
shopt -s nullglob

note() { printf '%s [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$*"; }
die() {
	note "error: $*" >&2
	exit 1
}

# file_env VAR [DEFAULT] sets VAR from $VAR or from the file named by
# $VAR_FILE (trailing newlines dropped), else to DEFAULT.
file_env() {
	local var=$1 fileVar="${1}_FILE" def=${2:-} val
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		die "both $var and $fileVar are set (but are exclusive)"
	fi
	val=$def
	if [ "${!var:-}" ]; then
		val=${!var}
	elif [ "${!fileVar:-}" ]; then
		val=$(<"${!fileVar}")
	fi
	export "$var"="$val"
	unset "$fileVar"
}

# drop_to USER ARGS...: re-run this script as USER (root only).
drop_to() {
	local user=$1
	shift
	exec setpriv --reuid="$user" --regid="$user" --init-groups "${BASH_SOURCE[0]}" "$@"
}

# ---------------------------------------------------------------- PostgreSQL

pg_main() {
	export PGDATA=${PGDATA:-/var/lib/postgresql/data}
	# As root, before dropping privileges, so *_FILE secrets only root can
	# read work (the values pass on in the environment), as in the official image.
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	export POSTGRES_HOST_AUTH_METHOD=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
	if [ "$(id -u)" = 0 ]; then
		mkdir -p "$PGDATA" /var/run/postgresql
		chmod 00700 "$PGDATA" || :
		find "$PGDATA" /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
		chmod 03775 /var/run/postgresql
		drop_to postgres "$@"
	fi

	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		pg_init
	else
		note "PostgreSQL database directory appears to contain a database; skipping initialization"
	fi
	exec "$@"
}

pg_init() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		die "Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, \"-e POSTGRES_PASSWORD=password\" on \"docker run\".
       (or set POSTGRES_HOST_AUTH_METHOD=trust to allow all connections without a password)"
	fi

	local -a args=(--username="$POSTGRES_USER")
	# Word splitting of POSTGRES_INITDB_ARGS is intended, as in the official image.
	# shellcheck disable=SC2206
	args+=($POSTGRES_INITDB_ARGS)
	if [ -n "$POSTGRES_PASSWORD" ]; then
		initdb "${args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
	else
		initdb "${args[@]}"
	fi
	# The official image listens on all addresses.
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

	# A temporary server on the unix socket only, so nothing outside sees a
	# half-initialised database (and TCP readiness checks wait for the real one).
	export PGPASSWORD=${PGPASSWORD:-$POSTGRES_PASSWORD}
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p ${PGPORT:-5432}" -w start
	local -a psql=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ "$POSTGRES_DB" != postgres ]; then
		"${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
	fi
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			note "running $f"
			# shellcheck disable=SC1090
			. "$f"
			;;
		*.sql)
			note "running $f"
			"${psql[@]}" --dbname "$POSTGRES_DB" -f "$f"
			;;
		*.sql.gz)
			note "running $f"
			gunzip -c "$f" | "${psql[@]}" --dbname "$POSTGRES_DB"
			;;
		*) note "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD

	printf '\nhost all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD" >>"$PGDATA/pg_hba.conf"
	note "PostgreSQL init process complete; ready for start up."
}

# ------------------------------------------------------------------- MariaDB

readonly MARIADB_SOCKET=/run/mysqld/mysqld.sock

mariadb_main() {
	mariadb_setup_env # as root first: see pg_main
	if [ "$(id -u)" = 0 ]; then
		mkdir -p /var/lib/mysql /run/mysqld
		find /var/lib/mysql /run/mysqld \! -user mysql -exec chown mysql:mysql '{}' +
		chmod 1777 /run/mysqld
		drop_to mysql "$@"
	fi

	if [ ! -d /var/lib/mysql/mysql ]; then
		mariadb_init "$@"
	else
		note "MariaDB database directory appears to contain a database; skipping initialization"
	fi
	exec "$@"
}

# mariadb_env VAR [DEFAULT]: MARIADB_VAR, else MYSQL_VAR (each also as _FILE),
# exported under both names, as the official mariadb image does.
mariadb_env() {
	local m="MARIADB_$1" y="MYSQL_$1"
	file_env "$y" "${2:-}"
	file_env "$m" "${!y}"
	export "$y"="${!m}"
}

sql_string() { # a single-quoted SQL string literal
	local s=${1//\\/\\\\}
	s=${s//$'\n'/\\n}
	printf "'%s'" "${s//\'/\\\'}"
}

sql_name() { # a backquoted SQL identifier
	printf '`%s`' "${1//\`/\`\`}"
}

mariadb_setup_env() {
	mariadb_env ROOT_PASSWORD
	mariadb_env ROOT_HOST %
	mariadb_env DATABASE
	mariadb_env USER
	mariadb_env PASSWORD
	mariadb_env RANDOM_ROOT_PASSWORD
	# MARIADB_ALLOW_EMPTY_ROOT_PASSWORD pairs with MYSQL_ALLOW_EMPTY_PASSWORD.
	file_env MYSQL_ALLOW_EMPTY_PASSWORD
	file_env MARIADB_ALLOW_EMPTY_ROOT_PASSWORD "$MYSQL_ALLOW_EMPTY_PASSWORD"
	export MYSQL_ALLOW_EMPTY_PASSWORD=$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD
}

mariadb_init() {
	if [ -z "$MARIADB_ROOT_PASSWORD" ] && [ -z "$MARIADB_ALLOW_EMPTY_ROOT_PASSWORD" ] && [ -z "$MARIADB_RANDOM_ROOT_PASSWORD" ]; then
		die "Database is uninitialized and password option is not specified
       You need to specify one of MARIADB_ROOT_PASSWORD, MARIADB_ROOT_PASSWORD_HASH, MARIADB_ALLOW_EMPTY_ROOT_PASSWORD and MARIADB_RANDOM_ROOT_PASSWORD"
	fi
	if [ -n "$MARIADB_USER" ] && [ "$MARIADB_USER" = root ]; then
		die "MARIADB_USER=root: use MARIADB_ROOT_PASSWORD for the root user"
	fi
	if [ -n "$MARIADB_RANDOM_ROOT_PASSWORD" ] && [ -z "$MARIADB_ROOT_PASSWORD" ]; then
		MARIADB_ROOT_PASSWORD=$(tr -dc 'A-Za-z0-9' </dev/urandom | head -c 32)
		note "GENERATED ROOT PASSWORD: $MARIADB_ROOT_PASSWORD"
	fi

	note "Initializing database files"
	mariadb-install-db --datadir=/var/lib/mysql --rpm --auth-root-authentication-method=normal \
		--skip-test-db --default-time-zone=SYSTEM --enforce-storage-engine= --skip-log-bin \
		--expire-logs-days=0 --loose-innodb_buffer_pool_load_at_startup=0 \
		--loose-innodb_buffer_pool_dump_at_shutdown=0

	# A temporary server without networking (see the postgres part).
	note "Starting temporary server"
	"$@" --skip-networking --default-time-zone=SYSTEM --socket="$MARIADB_SOCKET" --wsrep_on=OFF \
		--expire-logs-days=0 --skip-slave-start --loose-innodb_buffer_pool_load_at_startup=0 &
	local pid=$! i
	local -a client=(mariadb --protocol=socket --socket="$MARIADB_SOCKET" -uroot --database=mysql)
	for i in {120..0}; do
		if "${client[@]}" -e 'SELECT 1' >/dev/null 2>&1; then
			break
		fi
		kill -0 "$pid" 2>/dev/null || die "the temporary server exited during initialization"
		sleep 0.5
	done
	[ "$i" -gt 0 ] || die "the temporary server did not start"

	local rootpw db=${MARIADB_DATABASE} sql
	rootpw=$(sql_string "$MARIADB_ROOT_PASSWORD")
	sql="SET @@SESSION.SQL_LOG_BIN=0;
SET @@SESSION.SQL_MODE=REPLACE(@@SESSION.SQL_MODE, 'NO_BACKSLASH_ESCAPES', '');
DROP USER IF EXISTS root@'127.0.0.1', root@'::1';
EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS root@\'', @@hostname,'\'');
SET PASSWORD FOR 'root'@'localhost' = PASSWORD(${rootpw});"
	if [ -n "$MARIADB_ROOT_HOST" ] && [ "$MARIADB_ROOT_HOST" != localhost ]; then
		local host
		host=$(sql_string "$MARIADB_ROOT_HOST")
		sql+="
CREATE USER 'root'@${host} IDENTIFIED BY ${rootpw};
GRANT ALL ON *.* TO 'root'@${host} WITH GRANT OPTION;
GRANT PROXY ON ''@'%' TO 'root'@${host} WITH GRANT OPTION;"
	fi
	if [ -n "$db" ]; then
		note "Creating database ${db}"
		sql+="
CREATE DATABASE IF NOT EXISTS $(sql_name "$db");"
	fi
	if [ -n "$MARIADB_USER" ] && [ -n "$MARIADB_PASSWORD" ]; then
		note "Creating user ${MARIADB_USER}"
		sql+="
CREATE USER $(sql_string "$MARIADB_USER")@'%' IDENTIFIED BY $(sql_string "$MARIADB_PASSWORD");"
		if [ -n "$db" ]; then
			note "Giving user ${MARIADB_USER} access to schema ${db}"
			sql+="
GRANT ALL ON $(sql_name "${db//_/\\_}").* TO $(sql_string "$MARIADB_USER")@'%';"
		fi
	fi
	"${client[@]}" --binary-mode <<<"$sql"

	local -a run=(mariadb --protocol=socket --socket="$MARIADB_SOCKET" -uroot --password="$MARIADB_ROOT_PASSWORD")
	if [ -n "$db" ]; then
		run+=(--database="$db")
	fi
	local f
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			note "running $f"
			# shellcheck disable=SC1090
			. "$f"
			;;
		*.sql)
			note "running $f"
			"${run[@]}" <"$f"
			;;
		*.sql.gz)
			note "running $f"
			gunzip -c "$f" | "${run[@]}"
			;;
		*) note "ignoring $f" ;;
		esac
	done

	note "Stopping temporary server"
	kill "$pid"
	wait "$pid" || :
	note "MariaDB init process done. Ready for start up."
}

# --------------------------------------------------------------------- main

case "${1:-}" in
postgres) pg_main "$@" ;;
mariadbd | mysqld) mariadb_main "$@" ;;
-*)
	# Options only: the image's own server (PLATBACK_DB_ENGINE, set by each image).
	case "${PLATBACK_DB_ENGINE:-}" in
	postgres) pg_main postgres "$@" ;;
	mariadb) mariadb_main mariadbd "$@" ;;
	*) die "options given without a command and PLATBACK_DB_ENGINE is not set" ;;
	esac
	;;
*) exec "$@" ;;
esac

// Package dbengine dumps and restores the database server of a container
// with the engine's own tools run inside that container (pg_dumpall and psql
// for postgres, mariadb-dump and mariadb, mysqldump and mysql), reading the
// login the way the official images do, and knows what planning needs about
// each engine: its data directories and credential variables.
//
// Everything goes through the Docker Engine API (the exec and archive
// endpoints): the database image needs its client tools, nothing else.
// Passwords travel in the exec's environment (PGPASSWORD, MYSQL_PWD), never
// in a command line or an error. ExecStream, which Dump is built on, streams
// a command's output in constant memory whatever its size and stops, inside
// the container, a command whose output is given up.
package dbengine

// Package discover finds what a backup sidecar must back up in its own Docker
// Compose stack — and only there — from stack-back compatible container
// labels, and returns it as a Plan: plain data that prints as a table or JSON.
//
// A Discoverer first finds the sidecar's own container (Self: the container
// named by PLATBACK_CONTAINER if set, else the container id in
// /proc/self/mountinfo, else the hostname as an id prefix), takes its
// com.docker.compose.project label (or PLATBACK_PROJECT) as the scope, and
// reads the labels of the containers of that project only:
//
//	stack-back.volumes=true                     back up the container's volumes and bind mounts
//	stack-back.volumes.include=a,b              only mounts whose source contains "a" or "b"
//	stack-back.volumes.exclude=a,b              all mounts but those whose source contains "a" or "b"
//	stack-back.volumes.stop-during-backup=true  stop this container while volumes are backed up
//	stack-back.postgres=true                    dump all databases (also mysql=true, mariadb=true)
//
// Include and exclude patterns are plain substrings matched against the
// mount's source as the engine reports it — the host path of a bind mount,
// /var/lib/docker/volumes/<name>/_data for a named volume — exactly as
// stack-back matches them, so existing labels keep their meaning. When both
// are set, include wins (as in stack-back) and a warning says exclude is
// ignored. Boolean labels accept true/false/1/0 in any case; any other value
// is reported as a Warning naming the container, label and value.
//
// A dump holds every database of the server, and for postgres its roles
// (pg_dumpall): its snapshot path is /databases/<service>/all_databases.sql.
//
// Pure plan building (BuildPlan) is separate from the Docker calls so it can
// be used and tested without an engine. Package dbengine dumps and restores
// the database targets of a plan; discover only says what to back up.
package discover

#!/bin/sh
# mmdebstrap --customize-hook of platback's test database images: $1 is the
# finished root filesystem (seen from outside it); the other recipe files sit
# beside this script. It adds the entrypoint, removes what the packages set
# up for a Debian host (their own clusters, host files) and what a test
# database never uses.
set -eu
root=$1
here=$(dirname "$0")

install -m 0755 "$here/docker-entrypoint.sh" "$root/usr/local/bin/docker-entrypoint.sh"
install -m 0644 "$here/99-platback.cnf" "$root/etc/mysql/mariadb.conf.d/99-platback.cnf"

# pg_dumpall, psql, postgres, initdb… on PATH as in the official image
# (Debian only puts pg_wrapper links in /usr/bin).
for f in "$root"/usr/lib/postgresql/15/bin/*; do
	ln -sf "/usr/lib/postgresql/15/bin/${f##*/}" "$root/usr/local/bin/${f##*/}"
done

# The packages' own "main" cluster and datadir: the entrypoint initialises the
# data directory (a volume) on first start, as the official images do.
rm -rf "$root/var/lib/postgresql/15" "$root/etc/postgresql/15" "$root/var/lib/mysql"
mkdir -p "$root/var/lib/postgresql/data" "$root/var/lib/mysql" "$root/run/mysqld" \
	"$root/var/run/postgresql" "$root/docker-entrypoint-initdb.d"
chroot "$root" chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql
chroot "$root" chown mysql:mysql /var/lib/mysql /run/mysqld
chmod 0700 "$root/var/lib/postgresql/data"

# PostgreSQL's LLVM JIT (about 130 MB with libLLVM and libz3, used by nothing
# else): without llvmjit.so the server runs with JIT silently unavailable.
rm -rf "$root"/usr/lib/postgresql/15/lib/llvmjit* "$root/usr/lib/postgresql/15/lib/bitcode" \
	"$root"/usr/lib/*-linux-gnu/libLLVM-14.so* "$root"/usr/lib/*-linux-gnu/libz3.so*

# Host files (the engine provides its own) and leftovers of the install.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname" "$root"/var/cache/debconf/*-old \
	"$root"/var/lib/dpkg/*-old "$root/var/cache/ldconfig/aux-cache"
find "$root/var/log" -type f -delete
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*

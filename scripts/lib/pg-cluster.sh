# A throwaway PostgreSQL cluster owned by one script run: initdb into a temporary directory,
# reached over a unix socket in that directory (plus whatever the caller adds, e.g. TLS on a
# loopback port), stopped and deleted by `pg_cluster_stop`. Sourced by scripts/test.sh and
# scripts/bench-nodes.sh.
#
# The server binaries are not on PATH (Debian keeps them in /usr/lib/postgresql/VERSION/bin); as
# root, the cluster runs as the `postgres` user the package creates, since PostgreSQL refuses to
# run as root. After `pg_cluster_prepare` the caller may use: pg_bin, pg_dir, pg_user, pg_as
# (the command prefix to run as the cluster's owner); after `pg_cluster_start`: pg_port.

# pg_cluster_prepare TEMPLATE: finds the binaries and makes the cluster's directory
# (mktemp TEMPLATE); exits with an error when PostgreSQL is not installed.
pg_cluster_prepare() {
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ ! -x "$pg_bin/initdb" ]; then
        echo "error: PostgreSQL server binaries not found (apt-get install postgresql)" >&2
        exit 1
    fi
    pg_dir=$(mktemp -d "$1")
    pg_as=()
    pg_user=$(id -un)
    if [ "$(id -u)" = 0 ]; then
        pg_as=(runuser -u postgres --)
        pg_user=postgres
        chown postgres "$pg_dir"
    fi
}

# pg_cluster_stop: stops the cluster (if it runs) and deletes its directory.
pg_cluster_stop() {
    ${pg_as[@]+"${pg_as[@]}"} "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_dir"
}

# pg_cluster_initdb: an empty cluster, local connections trusted, no fsync at creation.
pg_cluster_initdb() {
    ${pg_as[@]+"${pg_as[@]}"} "$pg_bin/initdb" -D "$pg_dir/data" -U "$pg_user" -A trust -E UTF8 --no-sync >/dev/null
}

# pg_cluster_start "SERVER OPTIONS": starts the cluster on a free port number (the socket's, and
# the TCP port's if the options listen on an address), waiting until it accepts connections.
pg_cluster_start() {
    pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    ${pg_as[@]+"${pg_as[@]}"} "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w \
        -o "-k $pg_dir -p $pg_port -c max_connections=200 $1" start >/dev/null
}

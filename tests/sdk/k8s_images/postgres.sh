#!/usr/bin/env bash
# Stand-in for the postgres image's entrypoint, on Debian's PostgreSQL: on an empty PGDATA,
# initialise it with POSTGRES_USER/POSTGRES_PASSWORD and create POSTGRES_DB, as the image
# does; then serve on every address of the pod. Its socket folder is private to the container
# (the test kubelet mounts one), as in the image.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
sockets=/var/run/postgresql
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pw=$(mktemp -p "$sockets")
  printf '%s' "$POSTGRES_PASSWORD" > "$pw"
  "$bin/initdb" -D "$PGDATA" -U "$POSTGRES_USER" --pwfile="$pw" --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
  rm -f "$pw"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  "$bin/pg_ctl" -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$sockets" -w start >/dev/null
  "$bin/psql" -h "$sockets" -U "$POSTGRES_USER" -d postgres -q -c "CREATE DATABASE \"$POSTGRES_DB\""
  "$bin/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null
  echo "initialised $PGDATA"
fi
# The image stops on SIGINT (a fast shutdown); the kubelet sends SIGTERM.
trap 'kill -INT "$child"; wait "$child"' TERM
"$bin/postgres" -D "$PGDATA" -c listen_addresses='*' -c "unix_socket_directories=$sockets" &
child=$!
wait "$child"

# Sourced by the bench scripts (after common.sh): starts a throwaway PostgreSQL server of its own from Debian's
# postgresql package (default settings, fsync on) and exports DATABASE_URL; pg_stop removes it.
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
PGDIR=$(mktemp -d /tmp/bench-pg.XXXXXX)
PG_AS=(); if [ "$(id -u)" -eq 0 ]; then chown postgres "$PGDIR"; PG_AS=(runuser -u postgres --); fi
PGPORT=$(free_port)
"${PG_AS[@]}" "$PGBIN/initdb" -A trust -U postgres -D "$PGDIR/data" >/dev/null
"${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
  -o "-p $PGPORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
export DATABASE_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
pg_stop() { "${PG_AS[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null; rm -rf "$PGDIR"; }
pg_count() { "$PGBIN/psql" -tA "$DATABASE_URL" -c "$1"; }
echo "on PostgreSQL ($("$PGBIN/postgres" --version))"

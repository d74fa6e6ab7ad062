#!/usr/bin/env bash
# wire-bench: OmenDB and PostgreSQL 15 side by side over the wire, in one
# run, on this machine: pgbench select-only (-S -M prepared), pgbench's
# default tpcb-like script, and a CSV COPY into the time-series table
#   cpu (ts timestamptz, device_id int, cpu float8, mem float8,
#        PRIMARY KEY (device_id, ts))
# Each workload runs --runs times, PostgreSQL and OmenDB alternating, and
# the medians and their ratio (OmenDB / PostgreSQL) are printed.
#
#   crates/omendb-bench/scripts/wire-bench.sh [--quick] [--scale N]
#       [--clients N] [--threads N] [--duration S] [--runs N] [--copy-rows N]
#
# Defaults are the issue's: scale 10, 8 clients, 2 threads, 20 s, 3 runs,
# 5,000,000 COPY rows. --quick: scale 1, 5 s, 1 run, 200,000 rows.
# PostgreSQL is a throwaway cluster (initdb, stock settings, loopback,
# trust); as root it runs as the `postgres` OS user. OmenDB is
# target/release/omendb (built first if missing), or $OMENDB_BIN.
set -euo pipefail

scale=10 clients=8 threads=2 duration=20 runs=3 copy_rows=5000000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) scale=1 duration=5 runs=1 copy_rows=200000 ;;
    --scale) scale=$2; shift ;;
    --clients) clients=$2; shift ;;
    --threads) threads=$2; shift ;;
    --duration) duration=$2; shift ;;
    --runs) runs=$2; shift ;;
    --copy-rows) copy_rows=$2; shift ;;
    *) sed -n '2,17p' "$0"; exit 2 ;;
  esac
  shift
done

repo=$(cd "$(dirname "$0")/../../.." && pwd)
omendb=${OMENDB_BIN:-$repo/target/release/omendb}
[ -x "$omendb" ] || (cd "$repo" && cargo build --release -p omendb-server)

work=$(mktemp -d /tmp/wire-bench.XXXXXX)
chmod 755 "$work"
pg_bin=$(dirname "$(readlink -f "$(command -v postgres)")")
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pg_port=$(free_port); om_port=$(free_port); om_http=$(free_port)
omendb_pid=
cleanup() {
  [ -n "$omendb_pid" ] && kill "$omendb_pid" 2>/dev/null && wait "$omendb_pid" 2>/dev/null
  as_pg "$pg_bin/pg_ctl" -D "$work/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

mkdir "$work/pg"
[ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
chmod 700 "$work/pg"
as_pg "$pg_bin/initdb" -D "$work/pg" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
printf "listen_addresses = '127.0.0.1'\nport = %s\nunix_socket_directories = ''\ntimezone = 'UTC'\n" \
  "$pg_port" >>"$work/pg/postgresql.conf"
as_pg "$pg_bin/pg_ctl" -D "$work/pg" -l "$work/pg/server.log" -w start >/dev/null

"$omendb" serve --data-dir "$work/omendb" --pg-listen "127.0.0.1:$om_port" \
  --http-listen "127.0.0.1:$om_http" >"$work/omendb.log" 2>&1 &
omendb_pid=$!
for _ in $(seq 100); do
  psql -X -q -h 127.0.0.1 -p "$om_port" -U omendb omendb -c 'SELECT 1' >/dev/null 2>&1 && break
  sleep 0.1
done

# Connection arguments of each system: host, port, user, database.
conn() {
  case "$1" in
    postgres) echo "-h 127.0.0.1 -p $pg_port -U postgres postgres" ;;
    omendb) echo "-h 127.0.0.1 -p $om_port -U omendb omendb" ;;
  esac
}

# The rows COPY loads: 1,000 devices per second of time, from 2026-01-01.
awk -v n="$copy_rows" 'BEGIN { srand(42);
  for (i = 0; i < n; i++) {
    t = int(i / 1000); d = i % 1000;
    printf "2026-01-%02d %02d:%02d:%02d+00,%d,%.3f,%.3f\n",
      1 + int(t / 86400), int(t / 3600) % 24, int(t / 60) % 60, t % 60, d, rand() * 100, rand() * 100
  } }' >"$work/cpu.csv"

declare -A results failures
record() { results[$1]="${results[$1]:-} $2"; }

pgbench_tps() { # system, label, pgbench args...
  local system=$1 label=$2; shift 2
  # shellcheck disable=SC2046
  local out; out=$(pgbench $(conn "$system") "$@" 2>&1) || true
  local tps; tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out")
  local failed; failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$out")
  record "$system/$label" "$(printf '%.0f' "${tps:-0}")"
  failures[$system/$label]=$(( ${failures[$system/$label]:-0} + ${failed:-0} ))
}

copy_rate() { # system
  local system=$1
  # shellcheck disable=SC2046
  psql -X -q $(conn "$system") -c 'DROP TABLE IF EXISTS cpu' \
    -c 'CREATE TABLE cpu (ts timestamptz, device_id int, cpu float8, mem float8, PRIMARY KEY (device_id, ts))' >/dev/null 2>&1
  local start end
  start=$(date +%s.%N)
  # shellcheck disable=SC2046
  psql -X -q $(conn "$system") -c "\\copy cpu FROM '$work/cpu.csv' WITH (FORMAT csv)" >/dev/null
  end=$(date +%s.%N)
  record "$system/copy" "$(awk -v n="$copy_rows" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", n / (e - s) }')"
}

echo "scale $scale, $clients clients, $threads threads, ${duration}s, $runs run(s), $copy_rows COPY rows" >&2
for system in postgres omendb; do
  echo "pgbench -i -s $scale on $system" >&2
  # shellcheck disable=SC2046
  pgbench $(conn "$system") -i -q -s "$scale" >/dev/null 2>&1
done
for run in $(seq "$runs"); do
  for system in postgres omendb; do
    echo "run $run: $system" >&2
    pgbench_tps "$system" select-only -S -M prepared -c "$clients" -j "$threads" -T "$duration"
    pgbench_tps "$system" tpcb-like -c "$clients" -j "$threads" -T "$duration"
    copy_rate "$system"
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
printf "%-22s %14s %14s %8s  %s\n" workload postgres omendb ratio "omendb failed transactions"
for label in select-only tpcb-like copy; do
  pg=$(median <<<"${results[postgres/$label]}")
  om=$(median <<<"${results[omendb/$label]}")
  unit=tps; [ "$label" = copy ] && unit=rows/s
  ratio=$(awk -v a="$om" -v b="$pg" 'BEGIN { printf (b > 0) ? "%.2fx" : "-", a / b }')
  failed=${failures[omendb/$label]:-}
  printf "%-22s %14s %14s %8s  %s\n" "$label ($unit)" "$pg" "$om" "$ratio" "${failed:-}"
done

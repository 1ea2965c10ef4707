#!/usr/bin/env bash
# Starts the services the test suite talks to, installing them with apt-get when absent,
# and waits until each answers. Safe to run when they are already up.
set -euo pipefail

need() { # need COMMAND PACKAGE
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2" >&2
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # wait_port NAME PORT
  for _ in $(seq 1 120); do
    port_open "$2" && return 0
    sleep 0.5
  done
  echo "$1 did not answer on 127.0.0.1:$2 within 60 s" >&2
  exit 1
}

# PostgreSQL: metadata backend tests (trust auth, database "test").
need pg_ctlcluster postgresql
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
for _ in $(seq 1 120); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.5; done
pg_isready -q -h 127.0.0.1 -p 5432 || { echo "PostgreSQL did not start" >&2; exit 1; }
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
fi
echo "services: postgresql up"

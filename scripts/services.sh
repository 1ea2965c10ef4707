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

# libfaketime: retention tests run the server 30 days ahead.
need faketime faketime
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
# Redis and NATS (with JetStream): queue target tests.
need redis-server redis-server
if ! port_open 6379; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi
wait_port Redis 6379
need nats-server nats-server
if ! port_open 4222; then
  mkdir -p /tmp/switchyard-nats
  nohup nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/switchyard-nats >/tmp/switchyard-nats.log 2>&1 &
fi
wait_port NATS 4222
# RabbitMQ: the amqp target tests (guest/guest on 127.0.0.1:5672).
need rabbitmq-server rabbitmq-server
if ! port_open 5672; then
  rabbitmq-server -detached
fi
wait_port RabbitMQ 5672
# Mosquitto: the mqtt target tests.
need mosquitto mosquitto
if ! port_open 1883; then
  mosquitto -d
fi
wait_port Mosquitto 1883
# Chromium: the console tests drive a real (headless) browser.
need chromium chromium
echo "services: postgresql, redis, nats, rabbitmq, mosquitto up; chromium $(chromium --version 2>/dev/null | awk '{print $2}')"

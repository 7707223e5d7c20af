#!/usr/bin/env bash
# Start the servers hepcat's tests talk to, if they are not running, and wait for each:
# PostgreSQL (127.0.0.1:5432, db test), MariaDB (127.0.0.1:3306, db test) and ActiveMQ
# (STOMP on 127.0.0.1:61613, see .ci/activemq.sh). Idempotent.
#   bash .ci/services.sh           start them (what a developer runs)
#   source .ci/services.sh         only export HEPCAT_TEST_* URLs and define start_services
# Timeout per service: SERVICES_TIMEOUT (seconds, default 60).

: "${HEPCAT_TEST_POSTGRESQL_URL:=postgresql+psycopg://postgres@127.0.0.1:5432/test}"
: "${HEPCAT_TEST_MARIADB_URL:=mysql+pymysql://root@127.0.0.1:3306/test}"
: "${HEPCAT_TEST_STOMP:=stomp://127.0.0.1:61613}"
export HEPCAT_TEST_POSTGRESQL_URL HEPCAT_TEST_MARIADB_URL HEPCAT_TEST_STOMP

_SERVICES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# wait_for NAME COMMAND...: retry COMMAND every 0.5 s until it succeeds or the timeout.
wait_for() {
  local name=$1 t0=$SECONDS timeout=${SERVICES_TIMEOUT:-60}; shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS - t0 >= timeout)); then
      echo "services: ERROR: $name not accepting connections after ${timeout}s ($*)" >&2
      return 1
    fi
    sleep 0.5
  done
  echo "services: $name ready ($((SECONDS - t0))s)"
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p 5432; }
mariadb_ready() { mariadb-admin -uroot -h127.0.0.1 --connect-timeout=2 ping; }

start_postgresql() {
  if ! pg_ready; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start || true
  fi
  wait_for PostgreSQL pg_ready || return 1
  psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 ||
    createdb -h 127.0.0.1 -U postgres test
}

start_mariadb() {
  if ! mariadb_ready >/dev/null 2>&1; then
    echo "services: starting MariaDB"
    install -d -o mysql -g mysql /run/mysqld
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  fi
  wait_for MariaDB mariadb_ready || return 1
  mariadb -uroot -h127.0.0.1 -e 'CREATE DATABASE IF NOT EXISTS test'
}

start_activemq() { bash "$_SERVICES_DIR/activemq.sh" start; }

start_services() { start_postgresql && start_mariadb && start_activemq; }

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then  # run, not sourced
  set -euo pipefail
  start_services
  echo "services: up. For tests in this shell:"
  echo "  export HEPCAT_TEST_POSTGRESQL_URL=$HEPCAT_TEST_POSTGRESQL_URL"
  echo "  export HEPCAT_TEST_MARIADB_URL=$HEPCAT_TEST_MARIADB_URL HEPCAT_TEST_STOMP=$HEPCAT_TEST_STOMP"
fi

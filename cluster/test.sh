#!/usr/bin/env bash
# The one test command: installs and starts tansu, InfluxDB 1.x and VictoriaMetrics on
# loopback (cluster/services.sh), runs the whole suite against them, and stops what it
# started, also when a test fails. Extra arguments go to cargo nextest.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$(mktemp -d)
cleanup() {
  MAXQ_SERVICES_DIR=${MAXQ_SERVICES_DIR:-.services} cluster/services.sh stop || true
  rm -rf "$started"
}
trap cleanup EXIT INT TERM

cluster/services.sh start >"$started/env"
set -a
# shellcheck disable=SC1091
. "$started/env"
set +a

cargo build --all-targets --locked
cargo nextest run --locked --no-fail-fast "$@"

#!/usr/bin/env bash
# Installs (once, cached) and starts the services the integration tests talk to, on loopback:
#   tansu (Kafka protocol, sqlite storage)  127.0.0.1:${MAXQ_KAFKA_PORT:-19092}
#   influxd 1.x (Debian influxdb)           127.0.0.1:${MAXQ_INFLUX_V1_PORT:-18086}
#   victoria-metrics (InfluxDB v2 write)    127.0.0.1:${MAXQ_VM_PORT:-18428}
#
#   cluster/services.sh install   apt packages and the tansu binary (cached in ~/.cache/maxq)
#   cluster/services.sh start [tansu|influxdb|vm ...]
#                                 install, then start what is not already up (default: all
#                                 three); prints env lines
#   cluster/services.sh stop [tansu|influxdb|vm ...]   stop what this script started
#   cluster/services.sh env       the environment the tests read
#
# Safe to run twice, and when the services are already up (started by us or anyone else):
# a port that answers is used as it is and never stopped by us.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
state=${MAXQ_SERVICES_DIR:-$here/../.services}
mkdir -p "$state"
state=$(cd "$state" && pwd)
kafka_port=${MAXQ_KAFKA_PORT:-19092}
influx_port=${MAXQ_INFLUX_V1_PORT:-18086}
vm_port=${MAXQ_VM_PORT:-18428}
tansu_version=0.6.0
tansu_root=${MAXQ_TANSU_ROOT:-$HOME/.cache/maxq/tansu-$tansu_version}
tansu=$tansu_root/bin/tansu

log() { printf 'services: %s\n' "$*" >&2; }

sudo_if_needed() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

install() {
  local missing=()
  command -v influxd >/dev/null || missing+=(influxdb)
  command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
  command -v curl >/dev/null || missing+=(curl)
  command -v busybox >/dev/null || missing+=(busybox-static)
  # The compose tests: Debian's Compose tool (the engine must already run).
  command -v docker-compose >/dev/null || missing+=(docker-compose)
  command -v cmake >/dev/null || missing+=(cmake)
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  dpkg -s pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} (apt)"
    # Installers print to stderr: `start` prints only the environment on stdout.
    sudo_if_needed apt-get update -q >&2
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
  fi
  if [ ! -x "$tansu" ]; then
    log "building tansu $tansu_version with sqlite storage (about 15 minutes on 2 cores, once)"
    cargo install tansu --version "$tansu_version" --features libsql --locked --root "$tansu_root" >&2
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"
    cargo install cargo-nextest --locked >&2
  fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() { # name port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    port_open "$2" && return 0
    sleep 0.1
  done
  log "$1 did not open port $2 within $3 s; its log:"
  tail -n 30 "$state/$1.log" >&2 || true
  return 1
}

spawn() { # name port command...
  local name=$1 port=$2
  shift 2
  if port_open "$port"; then
    log "$name already listening on $port"
    return 0
  fi
  log "starting $name on 127.0.0.1:$port"
  (cd "$state" && exec setsid "$@" >"$state/$name.log" 2>&1 </dev/null) &
  echo $! >"$state/$name.pid"
  wait_for "$name" "$port" 60
}

wanted() { # name: whether the command line asked for it (no names: all)
  [ ${#names[@]} -eq 0 ] || [[ " ${names[*]} " == *" $1 "* ]]
}

start() {
  install
  mkdir -p "$state/tansu" "$state/influxdb" "$state/vm"
  wanted tansu && spawn tansu "$kafka_port" env -C "$state/tansu" "$tansu" broker \
    --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine "sqlite://tansu.db"
  cat >"$state/influxdb.conf" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:$((influx_port + 2))"
[meta]
  dir = "$state/influxdb/meta"
[data]
  dir = "$state/influxdb/data"
  wal-dir = "$state/influxdb/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$influx_port"
  log-enabled = false
CONF
  wanted influxdb && spawn influxdb "$influx_port" influxd -config "$state/influxdb.conf"
  # MAXQ_VM_AUTH=user:password turns on HTTP basic auth (a test's rejected-token server).
  local auth=()
  if [ -n "${MAXQ_VM_AUTH:-}" ]; then
    auth=(-httpAuth.username="${MAXQ_VM_AUTH%%:*}" -httpAuth.password="${MAXQ_VM_AUTH#*:}")
  fi
  wanted vm && spawn vm "$vm_port" victoria-metrics -storageDataPath="$state/vm" \
    -httpListenAddr="127.0.0.1:$vm_port" -retentionPeriod=100y -loggerLevel=WARN "${auth[@]}"
  env_lines
}

stop() {
  local name pid
  for name in vm influxdb tansu; do
    wanted "$name" || continue
    [ -f "$state/$name.pid" ] || continue
    pid=$(cat "$state/$name.pid")
    if kill -0 "$pid" 2>/dev/null; then
      log "stopping $name ($pid)"
      kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$state/$name.pid"
  done
}

env_lines() {
  echo "MAXQ_TEST_BROKERS=127.0.0.1:$kafka_port"
  echo "MAXQ_TEST_INFLUX_V1=http://127.0.0.1:$influx_port"
  echo "MAXQ_TEST_INFLUX_V2=http://127.0.0.1:$vm_port"
}

command=${1:-}
shift || true
names=("$@")
case "$command" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  env) env_lines ;;
  *) echo "usage: $0 install|start|stop|env" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Builds the images the compose tests swap in for the official ones, from what is on this
# machine (the Docker engine here has no registry): each is FROM scratch with one binary,
# the shared libraries it links and busybox for health checks.
#   maxq-test/maxq     the maxq binary given as $1 (default target/debug/maxq), datasets
#   maxq-test/tansu    tansu with sqlite storage, for Kafka
#   maxq-test/influxdb Debian's influxd 1.x, for InfluxDB
# Images whose inputs did not change are kept as they are (docker's build cache).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
maxq=$(realpath "${1:-$root/target/debug/maxq}")
tansu=${MAXQ_TANSU_ROOT:-$HOME/.cache/maxq/tansu-0.6.0}/bin/tansu
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# image name, binary, its path in the image, Dockerfile lines after COPY
build() {
  local name=$1 binary=$2 target=$3 rest=$4 ctx="$work/$1"
  mkdir -p "$ctx/root/bin" "$ctx/root/tmp" "$(dirname "$ctx/root$target")"
  cp "$binary" "$ctx/root$target"
  cp "$(command -v busybox)" "$ctx/root/bin/busybox"
  ldd "$binary" | grep -o '/[^ ]*' | while read -r lib; do
    mkdir -p "$ctx/root$(dirname "$lib")"
    cp -L "$lib" "$ctx/root$lib"
  done
  printf 'FROM scratch\nCOPY root /\n%s\n' "$rest" >"$ctx/Dockerfile"
  local out
  if ! out=$(docker build -q -t "$name" "$ctx" 2>&1); then
    echo "$out" >&2
    return 1
  fi
  echo "images: built $name" >&2
}

mkdir -p "$work/maxq-test/maxq/root"
cp -r "$root/datasets" "$work/maxq-test/maxq/root/datasets"
build maxq-test/maxq "$maxq" /usr/local/bin/maxq \
  'USER 10001:10001
EXPOSE 2101
ENTRYPOINT ["/usr/local/bin/maxq"]'

build maxq-test/tansu "$tansu" /bin/tansu \
  'WORKDIR /data
ENTRYPOINT ["/bin/tansu"]'

mkdir -p "$work/maxq-test/influxdb/root/etc/influxdb"
cat >"$work/maxq-test/influxdb/root/etc/influxdb/influxdb.conf" <<'CONF'
reporting-disabled = true
[meta]
  dir = "/var/lib/influxdb/meta"
[data]
  dir = "/var/lib/influxdb/data"
  wal-dir = "/var/lib/influxdb/wal"
  query-log-enabled = false
[http]
  log-enabled = false
CONF
build maxq-test/influxdb "$(command -v influxd)" /usr/bin/influxd \
  'ENTRYPOINT ["/usr/bin/influxd", "-config", "/etc/influxdb/influxdb.conf"]'

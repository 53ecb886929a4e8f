#!/usr/bin/env bash
# Throughput of `maxq run --until-end` over a preloaded topic: readings/s, CPU and peak RSS.
#   cluster/bench-run.sh [readings_millions=5] [workers...=1 2]
# Needs the services (cluster/services.sh start). The topic `bench-<N>m` (8 partitions,
# 1 000 sensors, generated with seed 1) is created and loaded once, then reused.
set -euo pipefail
cd "$(dirname "$0")/.."
millions=${1:-5}
shift || true
workers=("${@:-1 2}")
eval "$(cluster/services.sh env | sed 's/^/export /')"
cargo build --release --locked -q
maxq=target/release/maxq
topic=bench-${millions}m
seconds=$((millions * 100)) # 1 000 sensors at 10 Hz: 10 000 readings per second of flight
marker=.services/$topic.loaded
if [ ! -f "$marker" ]; then
  echo "loading $topic: $millions M readings (generate --sensors 1000 --hz 10 --duration ${seconds}s --seed 1)"
  $maxq generate --sensors 1000 --hz 10 --duration "${seconds}s" --seed 1 \
    --topic "$topic" --partitions 8 --brokers "$MAXQ_TEST_BROKERS" 2>&1 | tail -1
  touch "$marker"
fi
for w in ${workers[*]}; do
  db=bench_w${w}_$$
  curl -s -XPOST "$MAXQ_TEST_INFLUX_V1/query" --data-urlencode "q=CREATE DATABASE $db" >/dev/null
  log=$(mktemp)
  /usr/bin/time -v $maxq run --brokers "$MAXQ_TEST_BROKERS" --topic "$topic" --group "bench-$$-$w" \
    --until-end -w "$w" --influx-url "$MAXQ_TEST_INFLUX_V1" --influx-api v1 --influx-db "$db" \
    --progress-interval 1h 2>"$log"
  readings=$(grep -o 'readings=[0-9]*' "$log" | tail -1 | cut -d= -f2)
  wall=$(grep -o 'seconds=[0-9.]*' "$log" | tail -1 | cut -d= -f2)
  user=$(grep 'User time' "$log" | awk '{print $NF}')
  sys=$(grep 'System time' "$log" | awk '{print $NF}')
  rss=$(grep 'Maximum resident' "$log" | awk '{print $NF}')
  awk -v w="$w" -v r="$readings" -v t="$wall" -v u="$user" -v s="$sys" -v m="$rss" 'BEGIN {
    printf "-w %s: %d readings in %.1f s = %.0f readings/s; CPU %.1f s = %.2f us/reading; peak RSS %.0f MiB\n",
      w, r, t, r / t, u + s, (u + s) * 1e6 / r, m / 1024 }'
  rm -f "$log"
done

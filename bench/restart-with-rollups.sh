#!/usr/bin/env bash
# What a restart with --rollups 1h,1d costs: 1 000 sensors at 0.1 Hz over 100 minutes
# (about 600 k readings) into a fresh topic, a streaming run until it has caught up, kill -9,
# then a restart timed until it has caught up again and until its first commit. Prints the
# restart's changelog and replay figures. Needs the services' variables (cluster/services.sh
# start prints them) and a release build (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${MAXQ_TEST_BROKERS:?load the variables cluster/services.sh start prints}"
: "${MAXQ_TEST_INFLUX_V1:?load the variables cluster/services.sh start prints}"
maxq=target/release/maxq
logs=$(mktemp -d)
topic=restart-$(date +%s)
db=restart_$(date +%s)
curl -sf -XPOST "$MAXQ_TEST_INFLUX_V1/query" --data-urlencode "q=CREATE DATABASE $db" >/dev/null
$maxq generate --sensors 1000 --hz 0.1 --duration 100m --topic "$topic" --partitions 4 \
  --brokers "$MAXQ_TEST_BROKERS" 2>&1 | tail -1
args=(run --brokers "$MAXQ_TEST_BROKERS" --topic "$topic" --group "g-$topic"
  --influx-url "$MAXQ_TEST_INFLUX_V1" --influx-api v1 --influx-db "$db"
  --rollups 1h,1d -w 2 --idle-timeout 1s --progress-interval 1s)
export RUST_LOG=info,maxq::commit=debug
wait_for() { until grep -q "$1" "$2"; do kill -0 "$3" || exit 1; sleep 0.1; done; }

$maxq "${args[@]}" 2>"$logs/first.log" & pid=$!
wait_for "lag=0" "$logs/first.log" $pid
sleep 5
kill -9 $pid; wait $pid || true
grep progress "$logs/first.log" | tail -1

start=$(date +%s.%N)
$maxq "${args[@]}" 2>"$logs/restart.log" & pid=$!
wait_for "lag=0" "$logs/restart.log" $pid
caught=$(date +%s.%N)
wait_for "committing" "$logs/restart.log" $pid
committed=$(date +%s.%N)
kill -TERM $pid; wait $pid || true
grep -E "seeded|progress" "$logs/restart.log" | head -2
echo "restart: caught up after $(echo "$caught - $start" | bc) s, first commit after $(echo "$committed - $start" | bc) s (logs in $logs)"

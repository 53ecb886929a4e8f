#!/usr/bin/env bash
# Each thread's CPU time and wake-ups over an interval, from /proc/PID/task/*/schedstat
# (run time in ns, times scheduled). Shows what a process costs while idle or reading, and
# which threads wake up how often: `bench/thread-cpu.sh "$(pgrep -n maxq)" 20`.
set -euo pipefail
pid=${1:?usage: bench/thread-cpu.sh PID SECONDS}
seconds=${2:?usage: bench/thread-cpu.sh PID SECONDS}
snapshot() {
  for task in /proc/"$pid"/task/*; do
    read -r ran _ scheduled <"$task/schedstat" || continue
    echo "${task##*/} $(tr ' ' '_' <"$task/comm") $ran $scheduled"
  done | sort
}
before=$(snapshot)
sleep "$seconds"
after=$(snapshot)
join <(echo "$before") <(echo "$after") | awk -v s="$seconds" '
  { ms = ($6 - $3) / 1e6; woken = $7 - $4; total += ms; wakeups += woken
    if (ms > 0.05) printf "%-16s %9.2f ms %7d wake-ups\n", $2, ms, woken }
  END { printf "all threads      %9.2f ms over %d s: %.2f ms/s, %.0f wake-ups/s\n",
        total, s, total / s, wakeups / s }'

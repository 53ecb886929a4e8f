#!/usr/bin/env bash
# Runs one maxq cluster of N local processes with W workers each:
#   cluster/launch.sh N W -- <maxq run flags>
# writes the hostfile (127.0.0.1:PORT+index, PORT from MAXQ_BASE_PORT, default 2101),
# starts process 0..N-1, forwards Ctrl-C / SIGTERM to all of them, and exits with the first
# non-zero exit code (0 when all exited 0). When one process exits non-zero the others are
# stopped: a cluster runs whole or not at all. MAXQ_BIN names the binary (default: maxq
# on PATH, else target/release/maxq).
set -euo pipefail
usage() { echo "usage: $0 N W -- <maxq run flags>" >&2; exit 2; }
[ $# -ge 3 ] && [ "$3" = "--" ] || usage
n=$1 w=$2
shift 3
[[ $n =~ ^[1-9][0-9]*$ && $w =~ ^[1-9][0-9]*$ ]] || usage
here=$(cd "$(dirname "$0")" && pwd)
bin=${MAXQ_BIN:-$(command -v maxq || echo "$here/../target/release/maxq")}
base=${MAXQ_BASE_PORT:-2101}
dir=$(mktemp -d)
hosts=$dir/hosts
for ((i = 0; i < n; i++)); do echo "127.0.0.1:$((base + i))"; done >"$hosts"

pids=()
stop() { kill -TERM "${pids[@]}" 2>/dev/null || true; }
trap 'stop' INT TERM
trap 'rm -rf "$dir"' EXIT
for ((i = 0; i < n; i++)); do
  # Own sessions: a Ctrl-C reaches the script alone, which passes one SIGTERM on (maxq
  # takes a second signal as "exit at once, without flushing").
  setsid "$bin" run -w "$w" -n "$n" -p "$i" -h "$hosts" "$@" &
  pids+=($!)
done

status=0
while :; do
  alive=()
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  [ ${#alive[@]} -gt 0 ] || break
  code=0
  wait -n "${alive[@]}" || code=$?
  # `wait -n` also returns when a trapped signal arrives: then nobody exited.
  left=0
  for pid in "${alive[@]}"; do kill -0 "$pid" 2>/dev/null && left=$((left + 1)); done
  [ "$left" -lt ${#alive[@]} ] || continue
  if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
    status=$code
    stop
  fi
done
exit "$status"

# Source this file: helpers for the daemons scripts/cluster.sh, connect.sh and kafka.sh start by pid.

# running PIDFILE: the process the file names is alive.
running_pid() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pid PIDFILE: end that process (TERM, then KILL after 10 s) and wait until it is gone, so that
# a start right after finds its ports free; removes the file.
stop_pid() {
  if running_pid "$1"; then
    local pid; pid=$(cat "$1")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

# wait_up TAG PIDFILE LOG TEXT [CHECK...]: wait (up to 120 s) until LOG holds TEXT and the command CHECK
# (if given) succeeds; on failure (the process died, or time is up) print the log's tail and fail.
wait_up() {
  local tag=$1 pidfile=$2 log=$3 text=$4; shift 4
  for _ in $(seq 240); do
    if grep -q "$text" "$log" 2>/dev/null && { [ $# -eq 0 ] || "$@"; }; then return 0; fi
    running_pid "$pidfile" || break
    sleep 0.5
  done
  echo "[$tag] ERROR: it did not start; its log:" >&2; tail -30 "$log" >&2; return 1
}

# stop_service TAG PIDFILE: stop the process the file names, if running, and say so.
stop_service() {
  if running_pid "$2"; then stop_pid "$2"; echo "[$1] stopped"; fi
  rm -f "$2"
}

# status_service LABEL PIDFILE DETAIL: "LABEL: running (pid N), DETAIL" or "LABEL: stopped".
status_service() {
  if running_pid "$2"; then echo "$1: running (pid $(cat "$2")), $3"; else echo "$1: stopped"; fi
}

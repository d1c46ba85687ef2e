# Source this file: helpers for the daemons scripts/cluster.sh and scripts/connect.sh start by pid.

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

#!/usr/bin/env bash
# Stop the one-node SLURM started by .ci/slurm_up.sh (by pid file; nothing else is touched).
set -uo pipefail

stop() {
    local name=$1 pidfile=$2
    [ -s "$pidfile" ] || return 0
    local pid
    pid=$(cat "$pidfile")
    kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
    kill -TERM "$pid"
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        echo "slurm_down.sh: $name ($pid) ignored TERM; sending KILL" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "slurm_down.sh: stopped $name ($pid)"
}

stop slurmd /run/slurmd.pid
stop slurmctld /run/slurmctld.pid
stop munged /run/munge/munged.pid

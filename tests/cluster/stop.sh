#!/usr/bin/env bash
# Stop the cluster that start.sh started in SCRATCH: the daemons by the PIDs it recorded (never by name):
#   tests/cluster/stop.sh SCRATCH
# Jobs still in the queue are cancelled first; then slurmd, slurmctld, slurmdbd, mariadbd and munged get
# SIGTERM in that order, and SIGKILL if they have not exited within 30 s; job steps left behind by a slurmd
# that died first are ended last. Safe to run twice, or after a start that failed half-way; a PID that now
# belongs to another program is left alone.
set -uo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 SCRATCH_DIR" >&2
  exit 2
fi
S=$(realpath -m "$1")
PIDS=$S/pids

# the process's command name, or nothing when the PID is gone or a zombie
program() {
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ] && return
  cat "/proc/$1/comm" 2>/dev/null
}

if [ -f "$S/env.sh" ] && [ -f "$PIDS/slurmctld.pid" ] && kill -0 "$(cat "$PIDS/slurmctld.pid")" 2>/dev/null; then
  export SLURM_CONF=$S/etc/slurm.conf
  jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    echo "stop.sh: cancelling jobs $(echo $jobs)"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs || true
    for _ in $(seq 30); do
      [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null)" ] && break
      sleep 1
    done
  fi
fi

status=0
for name in slurmd slurmctld slurmdbd mariadbd munged; do
  file=$PIDS/$name.pid
  [ -f "$file" ] || continue
  pid=$(cat "$file")
  exe=$(program "$pid")
  if [ -z "$exe" ]; then
    echo "stop.sh: $name (pid $pid) already gone"
  elif [ "$exe" != "$name" ]; then
    echo "stop.sh: pid $pid is now '$exe', not $name; leaving it alone"
  else
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 60); do
      [ -n "$(program "$pid")" ] || break
      sleep 0.5
    done
    if [ -n "$(program "$pid")" ]; then
      echo "stop.sh: $name (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null
      sleep 0.5
    fi
    if [ -n "$(program "$pid")" ]; then
      echo "stop.sh: $name (pid $pid) still running" >&2
      status=1
    else
      echo "stop.sh: $name (pid $pid) stopped"
    fi
  fi
  rm -f "$file"
done
# Job steps outlive slurmd (slurmstepd runs in its own session). When the jobs could not be cancelled (slurmctld
# already gone, e.g. the whole test run was killed), end what is left of this cluster's jobs: the slurmstepd
# processes started by our slurmd (they carry its SLURM_CONF in their environment) and all their descendants.
steps=()
for dir in /proc/[0-9]*; do
  pid=${dir#/proc/}
  [ "$(cat "$dir/comm" 2>/dev/null)" = slurmstepd ] || continue
  tr '\0' '\n' <"$dir/environ" 2>/dev/null | grep -qx "SLURM_CONF=$S/etc/slurm.conf" && steps+=("$pid")
done
if [ ${#steps[@]} -gt 0 ]; then
  tree=("${steps[@]}")
  children=$(ps -eo pid=,ppid=)
  for ((i = 0; i < ${#tree[@]}; i++)); do
    while read -r child parent; do
      [ "$parent" = "${tree[$i]}" ] && tree+=("$child")
    done <<<"$children"
  done
  echo "stop.sh: ending leftover job processes ${tree[*]}"
  kill -TERM "${tree[@]}" 2>/dev/null
  sleep 2
  kill -KILL "${tree[@]}" 2>/dev/null
fi
exit $status

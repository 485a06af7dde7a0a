#!/usr/bin/env bash
# Start a single-node SLURM cluster with accounting, everything inside one scratch directory:
#   tests/cluster/start.sh SCRATCH
# Order: munged -> mariadbd -> slurmdbd -> slurmctld -> slurmd; each runs in the foreground of a background job
# (stdin/stdout/stderr detached, so a caller that captures output is not held open), its PID is written to
# SCRATCH/pids/<daemon>.pid, and the next one starts only when the previous one answers. Ports are free ones
# picked at start, the munge socket and the database live in SCRATCH, so this cluster touches no system
# configuration and does not collide with another one on the same machine.
# On success SCRATCH/env.sh exports SLURM_CONF (source it before sbatch/sacct/snakemake); stop.sh SCRATCH
# stops the daemons by PID. Needs root and the packages of install.sh.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 SCRATCH_DIR" >&2
  exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S=$(realpath -m "$1")
mkdir -p "$S"
if compgen -G "$S/pids/*.pid" >/dev/null; then
  echo "start.sh: $S has PID files of a previous cluster; stopping it first"
  "$HERE/stop.sh" "$S"
fi

ETC=$S/etc PIDS=$S/pids LOG=$S/log RUN=$S/run
chmod 755 "$S"
mkdir -p "$ETC" "$PIDS" "$LOG" "$RUN" "$S/state" "$S/spool"
rm -rf "$S/munge" "$S/mysql" "$S/mysql-run" "$S/state"/* "$S/spool"/*
install -d -o munge -g munge -m 700 "$S/munge"
install -d -o mysql -g mysql -m 755 "$S/mysql" "$S/mysql-run"

log() { echo "start.sh: $*"; }
fail() {
  echo "start.sh: $*" >&2
  for file in "$LOG"/*.log; do
    [ -f "$file" ] && { echo "--- tail of $file" >&2; tail -n 20 "$file" >&2; }
  done
  exit 1
}
# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND (each try bounded) until it succeeds
wait_for() {
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until timeout 10 "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${seconds}s waiting for $what"
    sleep 0.5
  done
}
# start_daemon NAME COMMAND...: run COMMAND in the background, record its PID
start_daemon() {
  local name=$1
  shift
  "$@" </dev/null >>"$LOG/$name.log" 2>&1 &
  echo $! >"$PIDS/$name.pid"
  log "$name started (pid $!)"
}
alive() { kill -0 "$(cat "$PIDS/$1.pid")" 2>/dev/null || fail "$1 exited during start-up"; }

# --- this machine ------------------------------------------------------------------------------------------
# slurmd -C prints the node line as slurmd sees the hardware, e.g.
# NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
node_line=$(slurmd -C | head -n 1)
NODE=$(sed -n 's/^NodeName=\([^ ]*\).*/\1/p' <<<"$node_line")
[ -n "$NODE" ] || fail "cannot read the node name from 'slurmd -C': $node_line"
total_mb=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node_line")
# leave room for the daemons and the submitting process; slurmd refuses a RealMemory above the real one
real_mb=$((total_mb * 8 / 10))
hardware=$(sed -e 's/^NodeName=[^ ]* //' -e 's/ *RealMemory=[0-9]*//' <<<"$node_line")
# two stand-in GPUs, so that jobs that request `gpu:` are accepted: SLURM counts a GPU per device file, and
# /dev/null and /dev/zero are device files that exist everywhere (with task/none nothing is bound to them;
# jobs just see CUDA_VISIBLE_DEVICES set)
GPU_FILES=/dev/null,/dev/zero
GPUS=2
# their type (profiles/slurm-test asks for it as gpu_model, and as a node feature: constraint)
GPU_TYPE=stand_in

read -r PORT_MYSQL PORT_DBD PORT_CTLD PORT_SLURMD < <("${PYTHON:-python3}" - <<'PY'
import socket
sockets = [socket.socket() for _ in range(4)]
for s in sockets:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in sockets))
PY
)
DB_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

# --- configuration -----------------------------------------------------------------------------------------
cat >"$ETC/slurm.conf" <<CONF
# single-node test cluster written by tests/cluster/start.sh
ClusterName=maskbench
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$PORT_CTLD
SlurmdPort=$PORT_SLURMD
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$RUN/munge.socket
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
ReturnToService=2
MinJobAge=300
KillWait=5
InactiveLimit=0
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$PORT_DBD
# the munge socket for connections to slurmdbd (clients read it from here, not from AuthInfo)
AccountingStoragePass=$RUN/munge.socket
AccountingStoreFlags=job_comment
# the stand-in GPUs in accounting: sacct ReqTRES shows gres/gpu:<type> (tests/test_slurm.py checks it)
AccountingStorageTRES=gres/gpu,gres/gpu:$GPU_TYPE
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 $hardware RealMemory=$real_mb Gres=gpu:$GPU_TYPE:$GPUS Feature=$GPU_TYPE State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
CONF

cat >"$ETC/gres.conf" <<CONF
NodeName=$NODE Name=gpu Type=$GPU_TYPE File=$GPU_FILES
CONF

# slurmdbd reads slurmdbd.conf next to $SLURM_CONF; it refuses one that others can read
(
  umask 077
  cat >"$ETC/slurmdbd.conf" <<CONF
AuthType=auth/munge
AuthInfo=socket=$RUN/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$PORT_DBD
SlurmUser=root
PidFile=$RUN/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$PORT_MYSQL
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
CONF
)
chmod 600 "$ETC/slurmdbd.conf"
export SLURM_CONF=$ETC/slurm.conf

# --- 1. munged ---------------------------------------------------------------------------------------------
head -c 1024 /dev/urandom >"$S/munge/munge.key"
chown munge:munge "$S/munge/munge.key"
chmod 400 "$S/munge/munge.key"
touch "$LOG/munged.log"
chown munge:munge "$LOG/munged.log"
chown munge:munge "$RUN"
start_daemon munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged --foreground \
  --socket="$RUN/munge.socket" --key-file="$S/munge/munge.key" --pid-file="$S/munge/munged.pid" \
  --seed-file="$S/munge/munged.seed" --log-file="$LOG/munged.log"
wait_for 30 "munged" bash -c "munge -n -S '$RUN/munge.socket' | unmunge -S '$RUN/munge.socket'"
alive munged

# --- 2. mariadbd -------------------------------------------------------------------------------------------
mysql_options=(--no-defaults --datadir="$S/mysql")
mariadb-install-db "${mysql_options[@]}" --user=mysql --auth-root-authentication-method=socket \
  --skip-test-db >"$LOG/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed (see $LOG/mariadb-install.log)"
start_daemon mariadbd /usr/sbin/mariadbd "${mysql_options[@]}" --user=mysql --bind-address=127.0.0.1 \
  --port="$PORT_MYSQL" --socket="$S/mysql-run/mysqld.sock" --pid-file="$S/mysql-run/mysqld.pid" \
  --skip-name-resolve --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 --log-error="$LOG/mariadbd.err"
wait_for 60 "mariadbd" mariadb-admin --no-defaults --socket="$S/mysql-run/mysqld.sock" -u root ping
alive mariadbd
timeout 30 mariadb --no-defaults --socket="$S/mysql-run/mysqld.sock" -u root <<SQL
CREATE DATABASE slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

# --- 3. slurmdbd -------------------------------------------------------------------------------------------
start_daemon slurmdbd /usr/sbin/slurmdbd -D
wait_for 60 "slurmdbd on port $PORT_DBD" sacctmgr -n list cluster
alive slurmdbd
# the cluster, an account and root's association, as an administrator would set them up
timeout 30 sacctmgr -i add cluster maskbench >/dev/null
timeout 30 sacctmgr -i add account maskbench Cluster=maskbench Description=tests Organization=maskbench >/dev/null
timeout 30 sacctmgr -i add user root Account=maskbench DefaultAccount=maskbench >/dev/null

# --- 4. slurmctld ------------------------------------------------------------------------------------------
start_daemon slurmctld /usr/sbin/slurmctld -D -f "$SLURM_CONF"
wait_for 60 "slurmctld" scontrol ping
wait_for 30 "slurmctld answering sinfo" sinfo
alive slurmctld

# --- 5. slurmd ---------------------------------------------------------------------------------------------
start_daemon slurmd /usr/sbin/slurmd -D -f "$SLURM_CONF"
wait_for 60 "node $NODE to be idle" bash -c "sinfo -h -n '$NODE' -o %T | grep -qx idle"
alive slurmd

# Inside a job, snakemake's slurm-jobstep executor runs the rule through `srun` with every SLURM_* variable
# but the job's identity removed from the environment, SLURM_CONF included; srun then looks for
# /etc/slurm/slurm.conf (a real cluster has one) and fails. A wrapper first on PATH (PATH is passed on) puts
# SLURM_CONF back, without writing anything outside SCRATCH.
mkdir -p "$S/bin"
cat >"$S/bin/srun" <<WRAPPER
#!/bin/sh
: "\${SLURM_CONF:=$SLURM_CONF}"
export SLURM_CONF
exec $(command -v srun) "\$@"
WRAPPER
chmod 755 "$S/bin/srun"

cat >"$S/env.sh" <<ENV
export SLURM_CONF=$SLURM_CONF
export PATH=$S/bin:\$PATH
ENV
log "cluster 'maskbench' is up: node $NODE ($hardware, RealMemory=$real_mb MB, gpu:$GPUS stand-in); " \
  "source $S/env.sh"

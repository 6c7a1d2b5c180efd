#!/usr/bin/env bash
# A single-node Slurm cluster on loopback for the tests marked `slurm`: munged, slurmctld and
# slurmd as root, every file under one folder. Installs slurm-wlm and munge with apt-get when
# they are missing. Idempotent: if the cluster answers it does nothing. Prints the slurm.conf
# path to export (everything else goes to stderr):
#   export ABLATE_TEST_SLURM_CONF=$(bash .ci/start_slurm.sh)
#   bash .ci/start_slurm.sh stop
# Requeued jobs wait cred_expire (10 s here, 120 s by default) before they start again.
set -euo pipefail

DIR="${ABLATE_SLURM_DIR:-/tmp/ablate-slurm}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"
CPUS="${ABLATE_SLURM_CPUS:-2}"
export SLURM_CONF="$CONF"

stop() {
  local daemon pid
  for daemon in slurmd slurmctld munged; do
    pid="$(cat "$DIR/$daemon.pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid"
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$DIR/$daemon.pid"
  done
}

answers() {  # true when the controller answers and the node takes jobs
  [ -s "$CONF" ] && timeout 5 scontrol ping 2>/dev/null | grep -q UP \
    && timeout 5 sinfo -h -N -o %t 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

if [ "${1:-start}" = stop ]; then
  stop
  exit 0
fi

if answers; then
  echo "$CONF"
  exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  echo "installing slurm-wlm and munge with apt-get" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq slurm-wlm munge >&2
fi

stop
mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
mkdir -p -m 0755 "$DIR/munge"   # munged refuses a socket folder that is not world-readable
[ -s "$DIR/munge.key" ] || mungekey -c -k "$DIR/munge.key" >&2
chmod 0400 "$DIR/munge.key"
cat >"$CONF" <<EOF
ClusterName=ablate
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmctldPort=${ABLATE_SLURMCTLD_PORT:-6817}
SlurmdPort=${ABLATE_SLURMD_PORT:-6818}
AuthType=auth/munge
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge.key" --pid-file="$DIR/munged.pid" \
  --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge.seed" >&2
slurmctld -f "$CONF" >&2
slurmd -f "$CONF" >&2
for _ in $(seq 100); do
  if answers; then
    echo "$CONF"
    exit 0
  fi
  sleep 0.2
done
echo "Slurm did not come up (see $DIR/log/)" >&2
exit 1

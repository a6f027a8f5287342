#!/usr/bin/env bash
# Start a one-node SLURM (munge + slurmctld + slurmd) on this machine so that
# `snakemake --profile profiles/slurm` submits real sbatch jobs. Idempotent; needs root.
# No slurmdbd: the profile polls with squeue, which needs MinJobAge >= 3 x the first
# status-check delay, or the executor falls back to sacct and waits forever.
set -euo pipefail

CONF=/etc/slurm/slurm.conf
MARK="# compressflow one-node test cluster (.ci/slurm_up.sh)"
PARTITION=${SLURM_TEST_PARTITION:-debug}
LOGDIR=/var/log/slurm

[ "$(id -u)" = 0 ] || { echo "slurm_up.sh: needs root (apt-get and the daemons); rerun with sudo" >&2; exit 1; }

node_idle() { sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

if command -v sinfo >/dev/null && node_idle; then
    echo "slurm_up.sh: SLURM already up"; sinfo; exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

if [ -f "$CONF" ] && ! head -1 "$CONF" | grep -qF "$MARK"; then
    echo "slurm_up.sh: $CONF exists and was not written by this script; not touching a real cluster's config" >&2
    exit 1
fi

HOST=$(hostname -s)
CPUS=$(nproc)
MEM_MB=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGDIR" /run/munge
cat > "$CONF" <<EOF
$MARK
ClusterName=compressflow
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
MinJobAge=600
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

# munge: Debian's postinst makes a key; make one if that did not happen. munged runs as munge.
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge 2>/dev/null || true
chmod 0400 /etc/munge/munge.key
chmod 0700 /etc/munge

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

alive /run/munge/munged.pid || runuser -u munge -- munged
for _ in $(seq 20); do munge -n >/dev/null 2>&1 && break; sleep 0.5; done
munge -n | unmunge >/dev/null || { echo "slurm_up.sh: munged is not answering" >&2; exit 1; }

alive /run/slurmctld.pid || slurmctld
alive /run/slurmd.pid || slurmd

# slurmctld restores its saved state: a node drained by an earlier run (a full disk, a killed job) stays
# drained, and every job would wait. This cluster is the script's own, so return the node to service.
for _ in $(seq 10); do
    state=$(sinfo -h -N -o '%T' 2>/dev/null || true)
    case "$state" in
        drain*|down*|fail*) echo "slurm_up.sh: node $HOST was $state ($(sinfo -h -R -o '%E' 2>/dev/null)); resuming it"
            scontrol update NodeName="$HOST" State=RESUME || true; break ;;
        "") sleep 1 ;;
        *) break ;;
    esac
done

for _ in $(seq 60); do
    if node_idle; then
        sinfo
        echo "slurm_up.sh: SLURM up (node $HOST, $CPUS CPUs, ${MEM_MB} MB, partition $PARTITION)"
        exit 0
    fi
    sleep 1
done
echo "slurm_up.sh: node did not become idle in 60 s; see $LOGDIR/slurmctld.log and $LOGDIR/slurmd.log" >&2
sinfo -N -l >&2 || true
tail -n 20 "$LOGDIR/slurmctld.log" "$LOGDIR/slurmd.log" >&2 || true
exit 1

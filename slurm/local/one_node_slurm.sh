#!/usr/bin/env bash
# A one-node Slurm on localhost, for tests and for trying slurm/train.sbatch without a
# cluster (docs/CLUSTER_TESTING.md). Needs root and Debian's slurm-wlm (22.05: auth/none).
#
#   slurm/local/one_node_slurm.sh start DIR [CPUS]   write DIR/slurm.conf, start slurmctld and slurmd,
#                                             wait until the node is idle
#   slurm/local/one_node_slurm.sh stop DIR           cancel every job still there (their steps and
#                                                   processes end with them), scontrol shutdown,
#                                                   then kill the daemons left by PID
#
# After start, `export SLURM_CONF=DIR/slurm.conf` points sbatch, squeue and scontrol at it.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR [CPUS]" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$(realpath -m "$2")
cpus=${3:-4}
export SLURM_CONF=$dir/slurm.conf

write_conf() {
  mkdir -p "$dir"/{state,spool,run,log,tmp}
  # SlurmdParameters=config_overrides lets a small machine declare CPUS cpus;
  # EnforcePartLimits=ALL rejects a job that can never fit instead of leaving it pending;
  # cred_expire (default 120 s) is also how long a requeued job waits before it may start
  # again: short here, so preemption tests need not wait two minutes; and a scheduling
  # pass every second (default 60 s) starts it as soon as it may.
  cat >"$SLURM_CONF" <<CONF
ClusterName=imlocal
SlurmctldHost=localhost
AuthType=auth/none
AuthInfo=cred_expire=5
CredType=cred/none
SlurmUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
TmpFS=$dir/tmp
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=1
SlurmdParameters=config_overrides
EnforcePartLimits=ALL
MpiDefault=pmix
ReturnToService=2
KillWait=10
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

kill_pidfile() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid
  pid=$(cat "$f" 2>/dev/null || true)
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
  rm -f "$f"
}

case $action in
  start)
    command -v slurmctld >/dev/null || { echo "one_node_slurm: slurmctld not found (apt-get install slurm-wlm)" >&2; exit 1; }
    write_conf
    slurmctld -i
    slurmd -N localhost
    for _ in $(seq 1 100); do
      state=$(sinfo -h -n localhost -o %T 2>/dev/null || true)
      [ "$state" = idle ] && { echo "one_node_slurm: localhost idle ($cpus CPUs), SLURM_CONF=$SLURM_CONF"; exit 0; }
      sleep 0.1
    done
    echo "one_node_slurm: node did not become idle (state '$state'); logs in $dir/log" >&2
    exit 1
    ;;
  stop)
    [ -f "$SLURM_CONF" ] || exit 0
    # A job left running (a test that failed half-way) would outlive the daemons.
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086 # one word per job id
      timeout 10 scancel --full $jobs 2>/dev/null || true
      for _ in $(seq 1 150); do
        [ -z "$(timeout 10 squeue -h -o %i 2>/dev/null || true)" ] && break
        sleep 0.1
      done
    fi
    timeout 10 scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do
      [ -f "$dir/run/slurmctld.pid" ] || [ -f "$dir/run/slurmd.pid" ] || break
      alive=0
      for f in "$dir"/run/*.pid; do [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1; done
      [ $alive = 0 ] && break
      sleep 0.1
    done
    kill_pidfile "$dir/run/slurmd.pid"
    kill_pidfile "$dir/run/slurmctld.pid"
    ;;
  *) usage ;;
esac

#!/usr/bin/env bash
# slurm_e2e.sh — scripts/slurm/train.sbatch on a private one-node SLURM cluster on localhost:
#   - munged (own key and socket), slurmctld and slurmd with a generated slurm.conf, ports chosen
#     at run time, everything bound to 127.0.0.1, all under a temp dir; stopped and removed on
#     exit, failure and interruption included
#   - each rank gets --cpus-per-task CPUs: a 1-rank job with 2 CPUs a task sees 2 CPUs
#   - a 2-rank job (srun, MPI through PMIx: "rank 0 of 2 (mpi)") gets SIGTERM on its steps as
#     SLURM sends it before the time limit (--signal=TERM@120): the worker checkpoints and exits
#     0, the script requeues the job, the second start (SLURM_RESTART_COUNT 1) passes
#     --resume latest and finishes train.steps; the job ends COMPLETED, exit 0, 1 restart
#   - metrics hold steps 1..N once each and equal, bit for bit (loss, grad norm, weights' hash
#     every step), those of a run that was never stopped; the final checkpoint verifies
#     (cotrain inspect) and its model.h5 and optim.h5 equal that run's
# Usage: slurm_e2e.sh PATH/TO/cotrain-worker PATH/TO/cotrain
# Exits 77 (skipped) without SLURM and munge (scripts/setup installs them) or when not root.
set -euo pipefail
worker=$(realpath "$1")
cotrain=$(realpath "$2")
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
script=$root/scripts/slurm/train.sbatch
PATH=$PATH:/usr/sbin:/sbin

for cmd in munged munge slurmctld slurmd sbatch srun scontrol squeue scancel sinfo; do
    command -v "$cmd" > /dev/null \
        || { echo "SKIP: $cmd not found (scripts/setup installs slurm-wlm and munge)"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: slurmd runs jobs as their user: run this test as root"; exit 77; }
node=$(slurmd -C | head -n 1 | sed 's/^NodeName=[^ ]* //')
cpus=$(sed -n 's/^CPUs=\([0-9]*\) .*/\1/p' <<< "$node")
[ "${cpus:-0}" -ge 2 ] || { echo "SKIP: 2 ranks need 2 CPUs, slurmd -C says: $node"; exit 77; }

# A SLURM job around this test (a developer on a cluster) must not leak into the private one.
for v in $(compgen -e | grep -E '^(SLURM|SBATCH|SRUN|SALLOC)_' || true); do unset "$v"; done
# Open MPI's TCP transport listens on every interface; one node needs shared memory only.
export OMPI_MCA_btl=self,vader
export OMP_WAIT_POLICY=PASSIVE

# In sanitizer builds (scripts/test --full): Open MPI's and PMIx's plugins keep allocations past
# MPI_Finalize, unloaded by then, so LeakSanitizer cannot tell them from ours (as in mpi_e2e.sh;
# worker_e2e and ckpt_e2e check the same code for leaks on the local backend).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
tmp=$(mktemp -d)
conf=$tmp/slurm.conf
pids=()
fail() {
    echo "FAIL: $*" >&2
    for f in "$tmp"/*.out "$tmp/log/slurmctld.log" "$tmp/log/slurmd.log"; do
        [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 25 "$f" >&2; }
    done
    exit 1
}
# Only the daemons and the jobs of this cluster have SLURM_CONF=$conf in their environment:
# this shell passes it to each command and never exports it.
ours() { { tr '\0' '\n' < "/proc/$1/environ"; } 2> /dev/null | grep -qxF "SLURM_CONF=$conf"; }
gone() { local st; st=$(ps -o stat= -p "$1") || return 0; [[ $st == Z* ]]; }
cleanup() {
    set +e
    if [ ${#pids[@]} -ge 2 ] && ! gone "${pids[1]}"; then # jobs first, while slurmctld still runs
        mapfile -t jobs < <(sl squeue -h -o %i 2> /dev/null)
        [ ${#jobs[@]} -eq 0 ] || sl scancel --full --quiet "${jobs[@]}"
        for _ in $(seq 50); do [ -z "$(sl squeue -h 2> /dev/null)" ] && break; sleep 0.2; done
    fi
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do # slurmd, slurmctld, munged
        kill "${pids[i]}" 2> /dev/null
        for _ in $(seq 50); do gone "${pids[i]}" && break; sleep 0.2; done
        kill -9 "${pids[i]}" 2> /dev/null
    done
    wait 2> /dev/null
    # slurmstepd and tasks outlive a killed slurmd by design: a moment to finish, then SIGKILL
    strays() {
        for p in /proc/[0-9]*; do [ "${p#/proc/}" != $$ ] && ours "${p#/proc/}" && echo "${p#/proc/}"; done
    }
    for _ in $(seq 25); do [ -z "$(strays)" ] && break; sleep 0.2; done
    for p in $(strays); do
        echo "cleanup: killing $p $(ps -o args= -p "$p")" >&2
        kill -9 "$p" 2> /dev/null
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
# Every wait is bounded, and all of them together by a deadline well inside CTest's TIMEOUT 300
# (which kills this script without its cleanup).
deadline=$((SECONDS + 240))
sl() { SLURM_CONF=$conf timeout 30 "$@"; }
until_true() { # until_true SECONDS WHAT COMMAND...: polls COMMAND until it succeeds
    local t=$1 what=$2
    shift 2
    local end=$((SECONDS + t))
    [ $end -le $deadline ] || end=$deadline
    until "$@"; do
        [ $SECONDS -lt $end ] || fail "$what: not after $t s (or the test's 240 s)"
        sleep 0.2
    done
}

# munged insists that everyone may reach its socket's directory
chmod 711 "$tmp"
mkdir -m 755 "$tmp/munge"
mkdir "$tmp/state" "$tmp/spool" "$tmp/log"
head -c 1024 /dev/urandom > "$tmp/munge/key"
chmod 400 "$tmp/munge/key"
munged -F --socket="$tmp/munge/socket" --key-file="$tmp/munge/key" --pid-file="$tmp/munge/pid" \
    --seed-file="$tmp/munge/seed" --log-file="$tmp/log/munged.log" 2> "$tmp/log/munged.err" &
pids+=($!)
until_true 20 "munged" test -S "$tmp/munge/socket"

read -r ctld_port slurmd_port < <(/usr/bin/python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*(x.getsockname()[1] for x in s))')
# NoCtldInAddrAny/NoInAddrAny: the daemons and srun listen on what localhost resolves to, not on
# every interface. cred_expire (default 120 s) is also how long a requeued job waits;
# sched_interval makes it start as soon as it may.
cat > "$conf" <<EOF
ClusterName=cotrain-test
SlurmctldHost=localhost
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$tmp/munge/socket,cred_expire=5
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
TmpFS=$tmp
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SchedulerParameters=sched_interval=1,bf_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 $node
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
SLURM_CONF=$conf slurmctld -D -i > "$tmp/log/slurmctld.err" 2>&1 &
pids+=($!)
SLURM_CONF=$conf slurmd -D -N localhost > "$tmp/log/slurmd.err" 2>&1 &
pids+=($!)
idle() { [ "$(sl sinfo -h -N -o %T 2> /dev/null)" = idle ]; }
until_true 30 "the node is idle" idle

job_state() { sl scontrol show job "$1" -o | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }
finished() { # a final state (an empty one is a failed query)
    case $(job_state "$1") in
        "" | PENDING | RUNNING | REQUEUED | COMPLETING | CONFIGURING) return 1 ;;
    esac
}
submit() { # submit NAME SBATCH_OPTIONS... -- WORKER_ARGS...: prints the job id
    local name=$1
    shift
    local opts=()
    while [ "$1" != -- ]; do opts+=("$1"); shift; done
    shift
    (cd "$tmp" && DATA=$tmp/data CONFIG=tiny RUN=$tmp/$name \
        COTRAIN=${COTRAIN_DIR:-$(dirname "$worker")} sl sbatch --parsable --job-name="$name" \
        --output="$tmp/$name.out" --time=10 "${opts[@]}" "$script" \
        --set train.global_batch=8 --set train.micro_batch=2 --set log.every=1 "$@")
}

cat /usr/share/common-licenses/GPL-3 > "$tmp/corpus.txt"
"$cotrain" prep "$tmp/corpus.txt" --tokenizer bytes --out "$tmp/data" 2> /dev/null

# --cpus-per-task reaches srun (SLURM 22.05's srun does not take it from sbatch)
mkdir "$tmp/bin"
printf '#!/bin/sh\ngrep Cpus_allowed_list /proc/self/status >&2\nexec %q "$@"\n' "$worker" \
    > "$tmp/bin/cotrain-worker"
chmod +x "$tmp/bin/cotrain-worker"
jid=$(COTRAIN_DIR=$tmp/bin submit cpus --ntasks-per-node=1 --cpus-per-task=2 -- \
    --set train.steps=2 --set train.warmup_steps=1)
until_true 60 "the 1-rank job ends" finished "$jid"
[ "$(job_state "$jid")" = COMPLETED ] || fail "the 1-rank job ended $(job_state "$jid")"
allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$tmp/cpus.out")
n=0
IFS=, read -ra ranges <<< "$allowed"
for r in "${ranges[@]}"; do n=$((n + ${r#*-} - ${r%-*} + 1)); done
[ "$n" -eq 2 ] || fail "a rank with --cpus-per-task=2 may run on CPUs '$allowed'"

# the run under test: 2 ranks, SIGTERM after the first checkpoint, requeued, resumed
steps=120
jid=$(submit run --ntasks-per-node=2 --cpus-per-task=1 -- --set train.steps=$steps --set ckpt.every=20)
until_true 60 "the first checkpoint" test -d "$tmp/run/checkpoints/ckpt-00000020"
[ "$(job_state "$jid")" = RUNNING ] || fail "job $jid is $(job_state "$jid") after its first checkpoint"
# What --signal=TERM@120 does: SIGTERM to every step's tasks, not to the batch shell.
sl scancel --signal=TERM "$jid"
until_true 120 "job $jid ends" finished "$jid"
show=$(sl scontrol show job "$jid" -o)
grep -q "JobState=COMPLETED" <<< "$show" || fail "job $jid: $(grep -o 'JobState=[^ ]*' <<< "$show")"
grep -q " ExitCode=0:0" <<< "$show" || fail "job $jid: $(grep -o ' ExitCode=[^ ]*' <<< "$show")"
grep -q " Restarts=1 " <<< "$show" || fail "job $jid: $(grep -o ' Restarts=[^ ]*' <<< "$show"), want 1"
out=$tmp/run.out
grep -q "^cotrain: job $jid (restart 0) .* 2 ranks x 1 threads, fresh start" "$out" \
    || fail "the first start does not say so"
[ "$(grep -c "rank 0 of 2 (mpi)" "$out")" -eq 2 ] || fail "not both starts ran 2 ranks on the mpi backend"
stop=$(sed -n 's/.*worker\[0\] WARN stopped by SIGTERM after step \([0-9]*\);.*/\1/p' "$out")
[[ $stop =~ ^[0-9]+$ && $stop -lt $steps ]] || fail "the worker did not stop on SIGTERM"
ckpt=$(printf 'ckpt-%08d' "$stop")
grep -q "checkpoint $tmp/run/checkpoints/$ckpt (SIGTERM)" "$out" || fail "no SIGTERM checkpoint at step $stop"
grep -q "^cotrain: $((steps - stop)) steps left: requeueing job $jid" "$out" \
    || fail "the script did not requeue"
grep -q "^cotrain: job $jid (restart 1) .* --resume latest" "$out" \
    || fail "the second start does not resume"
grep -q "resuming from $tmp/run/checkpoints/$ckpt: step $stop" "$out" || fail "did not resume from $ckpt"
final=$tmp/run/checkpoints/$(printf 'ckpt-%08d' $steps)
"$cotrain" inspect "$final" > "$tmp/inspect.out" 2>&1 || fail "$final does not verify"
grep -q "verified" "$tmp/inspect.out" || fail "cotrain inspect $final says no 'verified'"

# the same run never stopped, straight through srun
SLURM_CONF=$conf timeout $((deadline > SECONDS ? deadline - SECONDS : 1)) \
    srun --ntasks-per-node=2 --cpus-per-task=1 --chdir="$tmp" --time=5 env OMP_NUM_THREADS=1 \
    "$worker" --config tiny --data "$tmp/data" --out "$tmp/ref" --set train.global_batch=8 \
    --set train.micro_batch=2 --set log.every=1 --set train.steps=$steps --set ckpt.every=20 \
    > "$tmp/ref.out" 2>&1 \
    || { tail -n 20 "$tmp/ref.out"; fail "the uninterrupted run failed"; }
/usr/bin/python3 - "$tmp/run" "$tmp/ref" "$steps" <<'PY' || fail "metrics differ from the uninterrupted run"
import json, sys
run, ref, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
def rows(d):
    out = []
    for line in open(d + "/public/metrics.jsonl"):
        r = json.loads(line)
        r.pop("tokens_per_s"); r.pop("mfu")
        out.append(r)
    return out
a, b = rows(run), rows(ref)
if [r["step"] for r in a] != list(range(1, steps + 1)):
    sys.exit(f"steps in {run}: {[r['step'] for r in a]}")
for x, y in zip(a, b):
    if x != y:
        sys.exit(f"step {x['step']}: {x} vs {y}")
if len(a) != len(b):
    sys.exit(f"{len(a)} vs {len(b)} lines")
PY
for f in model.h5 optim.h5; do
    cmp -s "$final/$f" "$tmp/ref/checkpoints/$(basename "$final")/$f" \
        || fail "$f at step $steps differs from the uninterrupted run"
done
echo "slurm_e2e: all checks passed (SIGTERM at step $stop, requeued, resumed to step $steps)"

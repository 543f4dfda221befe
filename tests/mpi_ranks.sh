#!/usr/bin/env bash
# mpi_ranks.sh — runs an MPI test program alone, then under mpirun with each given rank count.
# Usage: mpi_ranks.sh PROGRAM NP...
set -euo pipefail
prog=$1
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# Open MPI's plugins keep allocations past MPI_Finalize (see mpi_e2e.sh)
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
"$prog" || { echo "FAIL: $prog alone"; exit 1; }
for np in "$@"; do
    [ "$np" -eq 1 ] && continue
    timeout 240 mpirun --oversubscribe --bind-to none -np "$np" "$prog" \
        || { echo "FAIL: $prog on $np ranks"; exit 1; }
done
echo "$prog: passed alone and on $* ranks"

#!/usr/bin/env bash
# A scaling sweep: one `infomamba_dist bench` job per size, then one table of the results.
#
#   slurm/sweep.sh [options] CONFIG [bench flags ...]     submit, wait, collect
#   slurm/sweep.sh collect DIR                            (re)make the table of DIR
#
# Options:
#   --nodes LIST            node counts, e.g. 1,2,4,8 (ranks = nodes x --tasks-per-node)
#   --tasks-per-node G      ranks per node, one per GPU (default 1)
#   --gpus-per-node G       passed to sbatch (leave out on CPU partitions)
#   --tasks LIST            instead of --nodes: rank counts on one node, e.g. 1,2,4
#   --cpus-per-task C       CPU threads per rank (default 1)
#   --per-rank-batch B      weak scaling: global batch = B x ranks (default: the config's
#                           train.batch_size at every size, i.e. strong scaling)
#   --out DIR               where job outputs, results and tables go (default sweep-<date>)
#   --launcher srun|mpirun  as in train.sbatch (default srun)
#   --time T                sbatch --time of each job (default 00:30:00)
#   --no-wait               submit only; run `sweep.sh collect DIR` later
# Extra sbatch options: SWEEP_SBATCH_FLAGS="--partition=gpu --account=x".
#
# Efficiency of a row = (samples/s per rank) / (samples/s per rank of the smallest size):
# 1.00 is perfect scaling. Output: DIR/results.csv and DIR/results.md.
set -euo pipefail

die() { echo "sweep.sh: $*" >&2; exit 2; }

# One number from the one-line JSON object that `bench` prints after "bench-result: ".
json_number() {
  sed -nE "s/.*\"$2\": *(-?[0-9.eE+-]+|null).*/\1/p" "$1" | head -n 1
}

collect() {
  local dir=$1
  [ -d "$dir" ] || die "no directory $dir"
  local rows=()
  for f in "$dir"/results/*.json; do
    [ -f "$f" ] || continue
    rows+=("$(printf '%s %s\n' "$(json_number "$f" ranks)" "$f")")
  done
  [ ${#rows[@]} -gt 0 ] || die "no results in $dir/results (did the jobs run? see $dir/logs)"
  local csv=$dir/results.csv md=$dir/results.md
  echo "nodes,ranks,global_batch,samples_per_s,samples_per_s_per_rank,step_ms,comm_ms,data_ms,speedup,efficiency" >"$csv"
  printf '| nodes | ranks | global batch | samples/s | per rank | step ms | comm ms | data ms | speedup | efficiency |\n' >"$md"
  printf '|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n' >>"$md"
  local base_per_rank="" base_rate=""
  while read -r _ f; do
    local nodes ranks batch rate step comm data
    nodes=$(json_number "$f" nodes)
    ranks=$(json_number "$f" ranks)
    batch=$(json_number "$f" global_batch)
    rate=$(json_number "$f" samples_per_s)
    step=$(json_number "$f" step_ms_median)
    comm=$(json_number "$f" comm_ms)
    data=$(json_number "$f" data_ms)
    [ -n "$rate" ] && [ -n "$ranks" ] || die "$f is not a bench result"
    local per_rank
    per_rank=$(awk -v r="$rate" -v n="$ranks" 'BEGIN { printf "%.3f", r / n }')
    if [ -z "$base_per_rank" ]; then base_per_rank=$per_rank; base_rate=$rate; fi
    local speedup efficiency
    speedup=$(awk -v r="$rate" -v b="$base_rate" 'BEGIN { printf "%.2f", r / b }')
    efficiency=$(awk -v p="$per_rank" -v b="$base_per_rank" 'BEGIN { printf "%.2f", p / b }')
    echo "$nodes,$ranks,$batch,$rate,$per_rank,$step,$comm,$data,$speedup,$efficiency" >>"$csv"
    printf '| %s | %s | %s | %.1f | %.1f | %.2f | %.2f | %.2f | %s | %s |\n' "$nodes" "$ranks" \
      "$batch" "$rate" "$per_rank" "$step" "$comm" "$data" "$speedup" "$efficiency" >>"$md"
  done < <(printf '%s\n' "${rows[@]}" | sort -n)
  cat "$md"
  echo "sweep.sh: wrote $csv and $md"
}

if [ "${1:-}" = collect ]; then
  [ $# -eq 2 ] || die "usage: sweep.sh collect DIR"
  collect "$2"
  exit 0
fi

nodes_list="" tasks_list="" tasks_per_node=1 gpus_per_node="" cpus=1 per_rank_batch=""
out="sweep-$(date +%Y%m%d-%H%M%S)" launcher=srun time_limit=00:30:00 wait_for_jobs=1
while [ $# -gt 0 ]; do
  case $1 in
    --nodes) nodes_list=$2; shift 2 ;;
    --tasks) tasks_list=$2; shift 2 ;;
    --tasks-per-node) tasks_per_node=$2; shift 2 ;;
    --gpus-per-node) gpus_per_node=$2; shift 2 ;;
    --cpus-per-task) cpus=$2; shift 2 ;;
    --per-rank-batch) per_rank_batch=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --launcher) launcher=$2; shift 2 ;;
    --time) time_limit=$2; shift 2 ;;
    --no-wait) wait_for_jobs=0; shift ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || die "usage: sweep.sh [options] CONFIG [bench flags]"
config=$1
shift
[ -f "$config" ] || die "config $config not found"
[ -n "$nodes_list" ] && [ -n "$tasks_list" ] && die "give --nodes or --tasks, not both"
[ -n "$nodes_list" ] || [ -n "$tasks_list" ] || nodes_list=1
case $launcher in srun | mpirun) ;; *) die "--launcher must be srun or mpirun" ;; esac
binary=${IM_BINARY:-$PWD/build/launch/infomamba_dist}
[ -x "$binary" ] || die "$binary is not an executable (build first, or set IM_BINARY)"

mkdir -p "$out"/results "$out"/logs
out=$(realpath "$out")
jobs=() names=()
submit_point() {  # nodes, ranks per node, bench flags...
  local n=$1 g=$2 ranks=$(( $1 * $2 ))
  shift 2
  local name
  name=$(printf 'n%03d_r%04d' "$n" "$ranks")
  local flags=(bench --config "$config" --json "$out/results/$name.json")
  [ -n "$per_rank_batch" ] && flags+=(--set "train.batch_size=$(( per_rank_batch * ranks ))")
  flags+=("$@")
  local launch
  if [ "$launcher" = srun ]; then
    launch="srun --mpi=pmix --kill-on-bad-exit=1 -n $ranks"
  else
    launch="mpirun $([ "$(id -u)" -eq 0 ] && echo --allow-run-as-root) -np $ranks -x OMP_NUM_THREADS"
  fi
  local sbatch_flags=(--parsable --job-name="sweep-$name" --nodes="$n" --ntasks-per-node="$g"
    --cpus-per-task="$cpus" --time="$time_limit" --output="$out/logs/$name.out")
  [ -n "$gpus_per_node" ] && sbatch_flags+=(--gpus-per-node="$gpus_per_node")
  # shellcheck disable=SC2086 # SWEEP_SBATCH_FLAGS is a list of options
  local id
  id=$(sbatch "${sbatch_flags[@]}" ${SWEEP_SBATCH_FLAGS:-} \
    --wrap "export OMP_NUM_THREADS=$cpus; $launch $(printf '%q ' "$binary" "${flags[@]}")")
  id=${id%%;*}
  echo "sweep.sh: $name ($n nodes, $ranks ranks): job $id"
  jobs+=("$id")
  names+=("$name")
}
if [ -n "$tasks_list" ]; then
  for t in ${tasks_list//,/ }; do submit_point 1 "$t" "$@"; done
else
  for n in ${nodes_list//,/ }; do submit_point "$n" "$tasks_per_node" "$@"; done
fi

if [ "$wait_for_jobs" -eq 0 ]; then
  echo "sweep.sh: submitted; when they are done: slurm/sweep.sh collect $out"
  exit 0
fi
echo "sweep.sh: waiting for ${#jobs[@]} jobs"
while [ -n "$(squeue -h -j "$(IFS=,; echo "${jobs[*]}")" -o %i 2>/dev/null)" ]; do sleep 5; done
missing=0
for name in "${names[@]}"; do
  if [ ! -s "$out/results/$name.json" ]; then
    echo "sweep.sh: $name wrote no result; its output: $out/logs/$name.out" >&2
    missing=1
  fi
done
collect "$out"
exit $missing

#!/usr/bin/env bash
# The sweep engines measured: 6 trials (3 seeds x entropy / calibrated_stacking), quick profile, UCF tree at data scale 0.05.
set -u
AV=${AV:-avood}
T=${OUT:-/tmp/avood-sweep-bench}; rm -rf "$T"; mkdir -p "$T"
$AV data synth $T/tree --dataset ucf --data-scale 0.05 --splits ${SPLITS:-../shared/avgzsl} > $T/synth.log 2>&1
uptime > $T/load-start.txt
s=$(date +%s.%N)
for seed in 0 1 2; do for det in entropy calibrated_stacking; do
  $AV run --data $T/tree --dataset ucf --profile quick --seed $seed --detector $det -o $T/seq --no-report -q >> $T/seq.log 2>&1
done; done
e=$(date +%s.%N); echo "sequential $(echo "$e - $s" | bc)" >> $T/times.txt; uptime >> $T/times.txt
s=$(date +%s.%N)
$AV sweep --data $T/tree --dataset ucf --profile quick --seeds 0,1,2 --axis detector=entropy,calibrated_stacking --engine local --max-parallel 2 --sweep-dir $T/local --quiet > $T/local.log 2>&1
e=$(date +%s.%N); echo "local $(echo "$e - $s" | bc)" >> $T/times.txt; uptime >> $T/times.txt
s=$(date +%s.%N)
$AV sweep --data $T/tree --dataset ucf --profile quick --seeds 0,1,2 --axis detector=entropy,calibrated_stacking --engine ray --sweep-dir $T/ray --quiet > $T/ray.log 2>&1
e=$(date +%s.%N); echo "ray $(echo "$e - $s" | bc)" >> $T/times.txt; uptime >> $T/times.txt
echo done >> $T/times.txt

#!/usr/bin/env bash
# Session 9's third GPU call (device tool, ~2 min): the shipped recipe C on the five folds of the packed train+val
# subjects (scripts/pack_gpu_data.py) with seeds 1 and 2, beside seed 0 from scripts/gpu_teacher.sh, to measure how
# much the 5-fold mean that the recipe rules in docs/BENCHMARKS.md compare moves with the seed alone.
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
DATA=.devdata/mrl_trainval.zip
START=$(date +%s)
DEADLINE=${DEADLINE:-130}
AUG=flip,framing,rotate,brightness,contrast,gamma,occlusion,rim,downup,blur,jpeg,noise
mkdir -p runs logs
python3 -c "from pipeline.data import load_mrl; load_mrl('$DATA', 48, workers=8)" 2>/dev/null   # warm .cache once
for seed in 1 2; do
  for f in 0 1 2 3 4; do
    timeout $(( DEADLINE - ($(date +%s) - START) )) python3 -m pipeline.train --data $DATA --device cuda --threads 1 \
      --model eyecnn_std --epochs 12 --epoch-size 12000 --augmentations "$AUG" --patience 12 --seed $seed \
      --fold $f --out-dir runs/C_s${seed}_$f > logs/C_s${seed}_$f.log 2> /dev/null &
  done
done
wait
grep -h "completed\|early stop" logs/*.log | wc -l
tar czf "$OUT/seeds.tgz" runs/*/history.json logs/*.log
echo "done at $(( $(date +%s) - START )) s"

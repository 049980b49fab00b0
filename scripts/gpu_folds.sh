#!/usr/bin/env bash
# Recipe choice by k-fold over train+val subjects (never test) on a lent GPU: baseline CNN with the seed's recipe,
# our default recipe, and our recipe with the seed's augmentations; folds 0, 2, 4. Returns logs + histories.
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
DATA=.devdata/mrl_trainval.zip
LIMIT=${LIMIT:-270}
SEED_AUG="flip,rotate,brightness,contrast,blur,occlusion"
mkdir -p runs logs
run() { name=$1; shift; timeout "$LIMIT" python3 -m pipeline.train --data $DATA --device cuda --threads 1 \
  --model baseline_cnn --epochs 15 --patience 6 --out-dir runs/$name "$@" > logs/$name.log 2>&1; echo "$name exit $?" >> logs/summary.txt; }
for f in 0 2 4; do
  run seed_f$f --fold $f --batch-size 32 --lr 1e-3 --weight-decay 1e-4 --augmentations "$SEED_AUG" &
  run ours_f$f --fold $f &
  run oursseedaug_f$f --fold $f --augmentations "$SEED_AUG" &
done
wait
for d in runs/*/; do rm -f $d/*.pth; done
tar czf "$OUT/folds.tgz" runs logs
cat logs/summary.txt

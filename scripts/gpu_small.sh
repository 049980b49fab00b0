#!/usr/bin/env bash
# Short prepared GPU run: our recipe on the page-sized architectures (baseline_cnn, eyecnn) on the packed
# train/val subjects; returns best checkpoints and histories.
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
LIMIT=${LIMIT:-180}
mkdir -p runs logs
run() { name=$1; shift; timeout "$LIMIT" python3 -m pipeline.train --data .devdata/mrl_trainval.zip --device cuda \
  --threads 2 --no-cache --epochs 30 --patience 10 --out-dir runs/$name "$@" > logs/$name.log 2>&1; echo "$name exit $?" >> logs/summary.txt; }
run eyecnn --model eyecnn &
run baseline_cnn --model baseline_cnn &
run eyecnn_seedaug --model eyecnn --augmentations "flip,rotate,brightness,contrast,blur,occlusion" &
wait
for d in runs/*/; do rm -f $d/last.pth; done
tar czf "$OUT/small2.tgz" runs logs
cat logs/summary.txt

#!/usr/bin/env bash
# Session 9's second GPU call (device tool, ~3 min): recipe S (the shipped recipe with --balance subject) on the five
# folds of the packed train+val subjects (scripts/pack_gpu_data.py), a replicate of the CPU comparison in
# docs/BENCHMARKS.md paired with the C_f runs of scripts/gpu_teacher.sh (same data, same GPU). Returns histories and
# the fold models' last epochs (optimizer state removed) under $OUT.
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
DATA=.devdata/mrl_trainval.zip
START=$(date +%s)
DEADLINE=${DEADLINE:-150}
AUG=flip,framing,rotate,brightness,contrast,gamma,occlusion,rim,downup,blur,jpeg,noise
mkdir -p runs logs
python3 -c "from pipeline.data import load_mrl; load_mrl('$DATA', 48, workers=8)" 2>/dev/null   # warm .cache once
for f in 0 1 2 3 4; do
  timeout $(( DEADLINE - ($(date +%s) - START) )) python3 -m pipeline.train --data $DATA --device cuda --threads 1 \
    --model eyecnn_std --epochs 12 --epoch-size 12000 --augmentations "$AUG" --patience 12 --balance subject \
    --fold $f --out-dir runs/S_$f > logs/S_$f.log 2> logs/S_$f.err &
done
wait
grep -h "completed\|early stop" logs/*.log
python3 - <<'PY'
import glob, torch
for path in glob.glob("runs/*/last.pth"):
    ck = torch.load(path, map_location="cpu", weights_only=False)
    for key in ("optimizer", "scheduler", "rng"):
        ck.pop(key, None)
    torch.save(ck, path.replace(".pth", "_slim.pth"))
PY
tar czf "$OUT/subject.tgz" runs/*/last_slim.pth runs/*/history.* logs/*.log
ls -la "$OUT"; echo "done at $(( $(date +%s) - START )) s"

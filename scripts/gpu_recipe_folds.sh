#!/usr/bin/env bash
# The shipped recipe on the five folds of the packed train+val subjects (scripts/pack_gpu_data.py) on a lent GPU
# (device tool), once per NAME="extra pipeline.train arguments", all in parallel. Session 9 ran it twice:
#   bash scripts/gpu_recipe_folds.sh S="--balance subject"              # 69 s, recipe S replicate
#   bash scripts/gpu_recipe_folds.sh C_s1="--seed 1" C_s2="--seed 2"    # 116 s, seed noise of the fold mean
# Returns histories and each fold model's last epoch (optimizer state removed) under $OUT. DEVICE, EPOCHS and
# EPOCH_SIZE may be overridden for a quick check on a CPU.
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
DATA=.devdata/mrl_trainval.zip
START=$(date +%s)
DEADLINE=${DEADLINE:-150}
AUG=flip,framing,rotate,brightness,contrast,gamma,occlusion,rim,downup,blur,jpeg,noise
mkdir -p runs logs
python3 -c "from pipeline.data import load_mrl; load_mrl('$DATA', 48, workers=8)" 2>/dev/null   # warm .cache once
for recipe in "$@"; do
  name=${recipe%%=*}; read -r -a extra <<< "${recipe#*=}"
  for f in 0 1 2 3 4; do
    timeout $(( DEADLINE - ($(date +%s) - START) )) python3 -m pipeline.train --data $DATA --device "${DEVICE:-cuda}" \
      --threads 1 --model eyecnn_std --epochs "${EPOCHS:-12}" --epoch-size "${EPOCH_SIZE:-12000}" --augmentations "$AUG" \
      --patience 12 "${extra[@]}" --fold $f --out-dir runs/${name}_$f > logs/${name}_$f.log 2> logs/${name}_$f.err &
  done
done
wait
grep -h "completed\|early stop" logs/*.log
python3 - <<'PY'
import glob, torch
from pipeline.models import read_torch_file
for path in glob.glob("runs/*/last.pth"):
    ck = read_torch_file(path)
    for key in ("optimizer", "scheduler", "rng"):
        ck.pop(key, None)
    torch.save(ck, path.replace(".pth", "_slim.pth"))
PY
tar czf "$OUT/folds.tgz" runs/*/last_slim.pth runs/*/history.* logs/*.log
ls -la "$OUT"; echo "done at $(( $(date +%s) - START )) s"

#!/usr/bin/env bash
# Session 9's one prepared GPU run (device tool, ~9 min on one H100/H200), on the packed train+val subjects of
# scripts/pack_gpu_data.py (test subjects never travel):
#   T_f  EfficientNetV2-S with the shipped recipe, folds 0-4 and a final fit on all 24 people (the teachers)
#   D_f  the shipped eyecnn_std recipe distilled from T_f (same people), folds 0-4 and final
#   C_f  the shipped recipe alone on the same packed data, folds 0-4 (D's paired reference)
#   effv2s_seed  the seed's EfficientNetV2-S recipe (batch 32, lr 1e-3, seed augmentations), 30 epochs sized to fit
# Every job stops at a common deadline; what finished comes back under $OUT (rule: docs/BENCHMARKS.md, session 9).
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
DATA=.devdata/mrl_trainval.zip
START=$(date +%s)
DEADLINE=${DEADLINE:-465}   # seconds after START by which every training job is stopped
AUG=flip,framing,rotate,brightness,contrast,gamma,occlusion,rim,downup,blur,jpeg,noise
RECIPE=(--epochs 12 --epoch-size 12000 --augmentations "$AUG" --patience 12)
SEED_RECIPE=(--num-classes 2 --epochs 30 --batch-size 32 --lr 1e-3 --weight-decay 1e-4
  --augmentations "flip,rotate,brightness,contrast,blur,occlusion")
mkdir -p runs logs
left() { echo $(( DEADLINE - ($(date +%s) - START) )); }
train() {  # name, then pipeline.train arguments
  local name=$1; shift
  timeout "$(left)" python3 -m pipeline.train --data $DATA --device cuda --threads 1 --out-dir runs/$name "$@" \
    > logs/$name.log 2> logs/$name.err
  echo "$name exit $? at $(( $(date +%s) - START )) s" >> logs/summary.txt
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.is_available())"
python3 -c "from pipeline.data import load_mrl; load_mrl('$DATA', 48, workers=8)" 2>/dev/null   # warm .cache once
RATE=$(python3 - <<'PY'
import time, torch
from pipeline.models import create_model
m = create_model("efficientnetv2_s").cuda()
opt = torch.optim.AdamW(m.parameters(), 1e-3)
x, y = torch.randn(32, 1, 48, 48, device="cuda"), torch.randint(0, 2, (32,), device="cuda")
for i in range(70):
    if i == 20:
        torch.cuda.synchronize(); t = time.time()
    loss = torch.nn.functional.cross_entropy(m(x), y)
    opt.zero_grad(); loss.backward(); opt.step()
torch.cuda.synchronize(); print(f"{50 / (time.time() - t):.1f}")
PY
)
# The seed run shares the GPU with 16 other jobs: assume a third of its lone speed, ~330 s of steps for 30 epochs.
SEED_EPOCH=$(python3 -c "print(max(2000, min(22227, int($RATE / 3 * 330 * 32 / 30))))")
echo "effv2s batch-32 steps/s alone: $RATE -> seed recipe epoch size $SEED_EPOCH; started jobs at $(( $(date +%s) - START )) s" | tee -a logs/summary.txt
train effv2s_seed --model efficientnetv2_s "${SEED_RECIPE[@]}" --epoch-size "$SEED_EPOCH" &
for f in 0 1 2 3 4 final; do
  if [ $f = final ]; then where=(--final-fit); else where=(--fold $f); fi
  train C_$f --model eyecnn_std "${RECIPE[@]}" "${where[@]}" &
  ( train T_$f --model efficientnetv2_s "${RECIPE[@]}" "${where[@]}"
    [ -f runs/T_$f/last.pth ] && train D_$f --model eyecnn_std "${RECIPE[@]}" "${where[@]}" --teacher runs/T_$f/last.pth ) &
done
wait
# The teachers on the people their fold held out (glasses and other subgroups), on the GPU.
for f in 0 1 2 3 4; do
  [ -f runs/T_$f/last.pth ] && python3 -m pipeline.evaluate --weights runs/T_$f/last.pth --data $DATA --fold $f \
    --part val --device cuda --json runs/T_$f/heldout.json > logs/T_${f}_eval.log 2>&1 &
done
wait
cat logs/summary.txt
grep -h "completed\|early stop" logs/*.log
python3 - <<'PY'
import glob, torch
from pipeline.models import read_torch_file
for path in glob.glob("runs/*/last.pth") + ["runs/effv2s_seed/best.pth"]:
    try:
        ck = read_torch_file(path)
    except FileNotFoundError:
        continue
    for key in ("optimizer", "scheduler", "rng"):
        ck.pop(key, None)
    if "effv2s" in path or "/T_" in path:   # ~80 MB in fp32: the seed model travels as fp16, the teachers stay
        ck["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
    torch.save(ck, path.replace(".pth", "_slim.pth"))
PY
[ -f runs/effv2s_seed/best_slim.pth ] && split -b 15m -d runs/effv2s_seed/best_slim.pth "$OUT/effv2s_seed_fp16.part"
for f in logs/*.err; do tail -n 3 "$f" > "$f.tail"; done
tar czf "$OUT/students.tgz" runs/D_*/last_slim.pth runs/C_*/last_slim.pth
tar czf "$OUT/histories.tgz" runs/*/history.* runs/*/curves.png runs/*/split.json runs/T_*/heldout.json \
  logs/*.log logs/*.err.tail logs/summary.txt 2>/dev/null
ls -la "$OUT"; echo "done at $(( $(date +%s) - START )) s"

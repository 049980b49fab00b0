#!/usr/bin/env bash
# One prepared run on a lent GPU machine (device tool): trains the seed's EfficientNetV2-S recipe, the baseline CNN
# and the small candidates in parallel on the packed train/val subjects (scripts/pack_gpu_data.py), then returns
# checkpoints under $OUT. Test subjects never travel; they are evaluated back on the CPU machine.
set -u
export PYTHONPATH="$PWD:$PWD/site" PYTHONUNBUFFERED=1
DATA=.devdata/mrl_trainval.zip
LIMIT=${LIMIT:-450}
SEED_RECIPE=(--num-classes 2 --epochs 30 --batch-size 32 --lr 1e-3 --weight-decay 1e-4
  --augmentations "flip,rotate,brightness,contrast,blur,occlusion")
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, timm; print('torch', torch.__version__, 'timm', timm.__version__, torch.cuda.is_available())"
mkdir -p runs logs
run() { name=$1; shift; timeout "$LIMIT" python3 -m pipeline.train --data $DATA --device cuda --threads 2 \
  --out-dir runs/$name "$@" > logs/$name.log 2>&1; echo "$name exit $?" >> logs/summary.txt; }
run effv2s_seed --model efficientnetv2_s "${SEED_RECIPE[@]}" --patience 6 &
run baseline_seed --model baseline_cnn "${SEED_RECIPE[@]}" &
run mnv3s050 --model mobilenetv3_small_050 --epochs 40 &
run lcnet050 --model lcnet_050 --epochs 40 &
run tinynet_e --model tinynet_e --epochs 40 &
run baseline_ours --model baseline_cnn --epochs 40 &
run mnv3s050_32 --model mobilenetv3_small_050 --img-size 32 --epochs 40 &
wait
for d in runs/*/; do n=$(basename $d); grep -h "best val\|completed\|stopp" logs/$n.log | tail -2 | sed "s/^/$n: /" >> logs/summary.txt; done
cat logs/summary.txt
# EfficientNetV2-S is ~80 MB in fp32: ship its best weights as fp16 in 15 MB parts (the tool returns files <= 16 MB).
python3 - <<'PY'
import torch
from pipeline.models import read_torch_file
ck = read_torch_file("runs/effv2s_seed/best.pth")
ck["state_dict"] = {k: (v.half() if v.is_floating_point() else v) for k, v in ck["state_dict"].items()}
ck.pop("optimizer", None); ck.pop("scheduler", None)
torch.save(ck, "runs/effv2s_seed_best_fp16.pth")
PY
split -b 15m -d runs/effv2s_seed_best_fp16.pth "$OUT/effv2s_fp16.part"
for d in runs/*/; do rm -f $d/last.pth; done
tar czf "$OUT/small_runs.tgz" --exclude='effv2s_seed/*.pth' --exclude='*fp16.pth' runs logs
ls -la "$OUT"

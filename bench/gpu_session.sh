#!/usr/bin/env bash
# Every GPU check of the project in one run, for a session with a lent CUDA machine.
#
#   bash bench/gpu_session.sh [OUT_DIR]      (default: ./gpu-session)
#   STEPS="tests throughput" bash bench/gpu_session.sh    only those steps
#   STEPS=variants bash bench/gpu_session.sh   implementation variants (~2 min, not default)
#
# In order of importance, each step under its own time limit so one hang costs only its
# share (the default steps take ~5 minutes, inside one 10-minute device call): the CUDA
# tests (tests/gpu: CUDA-graph step against eager, fused groups against solo runs, the
# memory estimates against the allocator's peak, a trainer run, NVML against
# nvidia-smi), fused groups of K trials against the one-trial CUDA-graph path
# (bench/fused_trials.py), the deep shape against the reference design
# (bench/train_throughput.py --cuda-graph), and engine throughput with 1 worker, 4
# workers and fused groups beside the GPU's utilisation (bench/hpo_throughput.py,
# nvidia-smi dmon). Extra steps, by STEPS: kernels (where a deep step's GPU time goes,
# bench/cuda_kernels.py), train (a real 50-epoch `hpotui train`), batch (the demo
# campaign) and variants. Logs go to OUT_DIR, one file per step.
#
# Packages the GPU image lacks travel as wheels in .whl/ (fetched here by
# bench/gpu_wheels.sh; ignored through .git/info/exclude; carried by the device call):
# they are installed into /tmp/site first when present.
set -u
OUT_DIR=${1:-gpu-session}
mkdir -p "$OUT_DIR"
export PYTHONUNBUFFERED=1 HPOTUI_HOME=/tmp/hpotui-home
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
else
    export PYTHONPATH=$PWD
fi

# The default fits one 10-minute device call; "kernels train batch variants" are extra.
STEPS=${STEPS:-tests fused throughput hpo}

step() {  # step NAME SECONDS COMMAND...: run, log to OUT_DIR/NAME.log, say how it went
    local name=$1 limit=$2
    shift 2
    [[ " $STEPS " == *" $name "* ]] || return 0
    local start=$SECONDS
    echo "=== $name (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$OUT_DIR/$name.log" 2>&1
    local rc=$?
    echo "=== $name rc=$rc in $((SECONDS - start))s"
    tail -n "${TAIL:-25}" "$OUT_DIR/$name.log"
}

nvidia-smi --query-gpu=name,driver_version,memory.total,temperature.gpu,power.draw \
    --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.version.cuda)"
step tests 100 python3 -m pytest -q -s -p no:cacheprovider tests/gpu
TAIL=22 step kernels 45 python3 bench/cuda_kernels.py --arch 64,48,2,256 --batch 256
TAIL=40 step fused 180 python3 bench/fused_trials.py --device cuda --threads 4
TAIL=20 step throughput 60 python3 bench/train_throughput.py --device cuda --cuda-graph \
    --rounds 3 --steps 10 --arch 64,48,2,256 --batch 256
step train 60 python3 -m hpotui.cli train --arch 64,48,2,256 --epochs 50 --patience 50 \
    --device cuda --json
step batch 90 python3 -m hpotui.cli --batch configs/demo.toml
# GPU utilisation each second (nvidia-smi dmon: sm % = time a kernel ran) beside the
# engine runs: how busy the GPU is with 1 worker, 4, and fused groups (docs/training.md,
# workers x groups per device)
if [[ " $STEPS " == *" hpo "* ]]; then
    nvidia-smi dmon -s u -d 1 -o T >"$OUT_DIR/dmon.log" 2>&1 &
    DMON=$!
fi
TAIL=30 step hpo 190 python3 bench/hpo_throughput.py --device cuda --trials 160 \
    --runs 1,4,auto/auto
[[ -n "${DMON:-}" ]] && kill "$DMON" 2>/dev/null
TAIL=40 step variants 200 bash -c 'for shape in 64,48,2,256:256 256,32,2,512:256 \
    1024,128,2,4096:256 2048,3,8,8192:1024; do
    python3 bench/cuda_kernels.py --variants --arch "${shape%:*}" --batch "${shape#*:}"; done'

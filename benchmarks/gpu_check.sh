#!/usr/bin/env bash
# Issue 16's GPU checks in one run, sized for a lent GPU machine's 10-minute call (at most
# 9 minutes: each step has its limit): the device tests, the throughput table, the MNIST
# classification wall time through the command, and what TF32 and bfloat16 cost
# (benchmarks/precision.py). A step that overruns its limit costs only itself; the logs go
# to the folder given.
#
#   bash benchmarks/gpu_check.sh [OUT] [MNIST]
#
# OUT: where the logs go (default: $OUT, else ./gpu-check). MNIST: the folder of the four IDX
# files (default: .mnist in the checkout, else ../shared/datasets/mnist). Runs the checkout
# on PYTHONPATH with the machine's python3, which must hold torch with CUDA and the
# dependencies of pyproject.toml (pytest for the tests). Through the device tool, MNIST travels
# as an ignored folder of the checkout: `cp -r ../shared/datasets/mnist .mnist && echo /.mnist/
# >> .git/info/exclude`, then run `bash benchmarks/gpu_check.sh $OUT` with carry [".mnist"].
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-${OUT:-gpu-check}}
mnist=${2:-.mnist}
[ -d "$mnist" ] || mnist=../shared/datasets/mnist
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}

step() {  # step NAME SECONDS COMMAND...: run it under a limit, log it, say how it ended
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit} s): $*"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s"
}

step env 30 bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; \
    nproc; $py -c 'import torch; print(torch.__version__, torch.cuda.get_device_name())'"
step tests 120 "$py" -m pytest -q -p no:cacheprovider -o addopts= -rs tests/test_devices.py \
    tests/test_training.py::test_training_on_gpu_matches_the_cpu_learning \
    tests/test_loop.py::test_a_checkpoint_moves_cpu_to_cuda_to_cpu
step throughput 120 "$py" benchmarks/throughput.py --device cuda --repeats 2 --mnist "$mnist"
step mnist 120 "$py" benchmarks/mnist_command.py --mnist "$mnist" -- --device cuda
step precision 150 "$py" benchmarks/precision.py --mnist "$mnist" --device cuda \
    --classifier-rows 10000

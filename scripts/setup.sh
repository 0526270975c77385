#!/usr/bin/env bash
# Installs what moegpu needs on a fresh Debian machine, idempotently:
# Mesa's lavapipe (Vulkan on the CPU) and llvmpipe behind EGL/GLES, so that
# a machine without a GPU still has two WebGPU adapters, the Vulkan loader,
# a C compiler for cgo, the OCR fonts, text and Tesseract, and the Go modules. Run as root or with sudo.
set -euo pipefail

need=(mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgles2 libgl1-mesa-dri gcc libc6-dev ca-certificates)
# PyTorch for python/moegpu_torch and its tests (go test ./python); OpenBLAS with OpenMP, else
# torch runs on the slow reference BLAS.
need+=(python3-torch python3-numpy libopenblas0-openmp)
# The desktop OCR app (cmd/moegpu-ocr): GLFW's X11 and GL headers, Xvfb for its window tests,
# xclip to paste images (GLFW reads only text from the clipboard).
need+=(libx11-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev libgl1-mesa-dev xvfb xauth xclip)
# OCR: the training fonts (runtime/ocrdata), English text (fortunes, a word list) and
# Tesseract, the peer `moegpu bench ocr` compares against.
need+=(fonts-lato fonts-open-sans fonts-crosextra-carlito fonts-crosextra-caladea fonts-linuxlibertine
  fonts-noto-core fonts-roboto-unhinted fonts-cantarell fonts-ebgaramond fonts-inconsolata fonts-courier-prime
  fonts-sil-charis fonts-cmu fortunes fortunes-min wamerican tesseract-ocr tesseract-ocr-eng)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  else
    echo "setup: Go 1.26 or newer is required (https://go.dev/dl/); put it on PATH and re-run" >&2
    exit 1
  fi
fi

cd "$(dirname "$0")/.."
go mod download

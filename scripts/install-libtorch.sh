#!/usr/bin/env bash
# Installs the pinned libtorch (torch 2.11.0 from PyPI) once per user, then links ./libtorch to it.
#
# PRNN_TORCH=cpu  (default) the minimal CPU-only install, about 0.55 GB to download.
# PRNN_TORCH=cuda           the full install (CPU and CUDA), about 2.7 GB to download.
# PRNN_CACHE_DIR            where installs live (default: ${XDG_CACHE_HOME:-~/.cache}/prnn).
#
# Idempotent: an install is written into a temporary folder and renamed into place only when complete,
# so a second clone, or a second run after an interrupted one, never downloads what is already there.
set -euo pipefail

TORCH_VERSION=2.11.0
CUDA_RUNTIME_VERSION=13.0.96
CUDA_CUPTI_VERSION=13.0.85

flavour=${PRNN_TORCH:-cpu}
case "$flavour" in
  cpu)  packages=(--no-deps "torch==$TORCH_VERSION" "nvidia-cuda-runtime==$CUDA_RUNTIME_VERSION" "nvidia-cuda-cupti==$CUDA_CUPTI_VERSION") ;;
  cuda) packages=("torch==$TORCH_VERSION") ;;
  *) echo "install-libtorch: PRNN_TORCH must be 'cpu' or 'cuda', not '$flavour'" >&2; exit 2 ;;
esac

cache_dir=${PRNN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prnn}
install_dir="$cache_dir/torch-$TORCH_VERSION-$flavour"
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [ ! -f "$install_dir/.complete" ]; then
  python=$(command -v python3 || true)
  [ -n "$python" ] || { echo "install-libtorch: python3 is needed to fetch torch from PyPI" >&2; exit 1; }
  "$python" -m pip --version >/dev/null 2>&1 || {
    echo "install-libtorch: pip is missing; install it (Debian: apt-get install python3-pip) and run again" >&2
    exit 1
  }
  mkdir -p "$cache_dir"
  staging=$(mktemp -d "$cache_dir/.staging-$flavour-XXXXXX")
  trap 'rm -rf "$staging"' EXIT
  echo "install-libtorch: installing torch $TORCH_VERSION ($flavour) into $install_dir" >&2
  # --target never touches the system's site-packages, so Debian's externally-managed marker does not apply.
  PIP_BREAK_SYSTEM_PACKAGES=1 "$python" -m pip install --disable-pip-version-check --root-user-action=ignore \
    --quiet --only-binary=:all: --target "$staging" "${packages[@]}"
  [ -f "$staging/torch/lib/libtorch_cpu.so" ] || { echo "install-libtorch: pip finished but torch/lib/libtorch_cpu.so is missing" >&2; exit 1; }
  touch "$staging/.complete"
  rm -rf "$install_dir"
  mv "$staging" "$install_dir"
  trap - EXIT
fi

# The repo-local link is what .cargo/config.toml points LIBTORCH at; replace it only if it points elsewhere.
target="$install_dir/torch"
if [ "$(readlink "$repo_root/libtorch" 2>/dev/null || true)" != "$target" ]; then
  if [ -e "$repo_root/libtorch" ] && [ ! -L "$repo_root/libtorch" ]; then
    echo "install-libtorch: $repo_root/libtorch exists and is not a link; move it away and run again" >&2
    exit 1
  fi
  ln -sfn "$target" "$repo_root/libtorch"
fi
echo "$target"

#!/usr/bin/env bash
# Installs what gan_lab needs, idempotently. Sourced by scripts/main and scripts/test.
#
# Heavy installs live outside the checkout, in $GAN_LAB_HOME (default ~/.cache/gan_lab), so that
# every clone on this machine reuses them: the torch wheel's virtual env (libtorch for tch) and a
# shared cargo target directory for the compiled dependencies.
set -euo pipefail

GAN_LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export GAN_LAB_HOME="${GAN_LAB_HOME:-$HOME/.cache/gan_lab}"
TORCH_VERSION="2.13.0"
VENV="$GAN_LAB_HOME/venv-torch-$TORCH_VERSION"
mkdir -p "$GAN_LAB_HOME"

say() { printf '[setup] %s\n' "$*" >&2; }

# One set-up at a time per machine: two clones installing into the same env would corrupt it.
exec 9>"$GAN_LAB_HOME/setup.lock"
flock 9

venv_ok() {
  [ -x "$VENV/bin/python" ] &&
    "$VENV/bin/python" -c "import torch, numpy, scipy, safetensors, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null &&
    "$VENV/bin/pip" --version >/dev/null 2>&1
}

if venv_ok; then
  say "torch $TORCH_VERSION already in $VENV"
else
  say "creating $VENV with torch==$TORCH_VERSION (about 2 minutes, 4.7 GB)"
  # A half-finished env from an interrupted run fails venv_ok and is rebuilt from scratch.
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==$TORCH_VERSION" numpy scipy safetensors
  venv_ok || { say "torch $TORCH_VERSION did not import from $VENV"; exit 1; }
fi

# .cargo/config.toml points at .venv (relative), so plain cargo works in the checkout.
ln -sfn "$VENV" "$GAN_LAB_ROOT/.venv"

TORCH_DIR="$("$VENV/bin/python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')"
export LIBTORCH="$TORCH_DIR"
export LD_LIBRARY_PATH="$TORCH_DIR/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export GAN_LAB_PYTHON="$VENV/bin/python"
# Compiled dependencies (tch's C++ shim above all) are shared by every clone on the machine. A
# student edition (no solutions/) builds a crate of the same name and version with the exercises
# stubbed: it gets a directory of its own, so that neither build ever stands in for the other.
if [ -d "$GAN_LAB_ROOT/solutions" ]; then
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GAN_LAB_HOME/target}"
else
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$GAN_LAB_HOME/target-student}"
fi
# gan_lab compiles in the path of its checkout (datasets/, notebooks/); naming the checkout makes
# cargo rebuild gan_lab itself, not just reuse another clone's build from the shared directory.
export GAN_LAB_CHECKOUT="$GAN_LAB_ROOT"

# Fashion-MNIST, the course's second dataset, comes from Debian's package.
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  say "installing Debian package dataset-fashion-mnist"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null) ||
    say "could not install dataset-fashion-mnist; Fashion-MNIST lessons will say so"
fi

# The Rust Jupyter kernel, for the notebooks: only when asked (scripts/test, scripts/lab).
if [ "${GAN_LAB_WITH_KERNEL:-0}" = 1 ]; then
  source "$GAN_LAB_ROOT/scripts/setup-kernel.sh"
fi

flock -u 9

# Installs the notebook side, idempotently; sourced by scripts/setup.sh with GAN_LAB_WITH_KERNEL=1.
# - JupyterLab, nbclient and pytest in the project's virtual env;
# - evcxr_jupyter 0.22.0 (the Rust kernel) in $GAN_LAB_HOME/cargo;
# - the kernelspec `gan-lab` ("Rust (gan_lab)"), whose environment finds libtorch. Its launcher
#   gives each running kernel one of a few fixed build folders under $GAN_LAB_HOME/evcxr, so a
#   second kernel start reuses the compiled libraries and two notebooks open at once never share one.
#   Jupyter talks to scripts/gan_lab_kernel.py, which runs evcxr inside it (see that file).

EVCXR_VERSION="0.22.0"
EVCXR_ROOT="$GAN_LAB_HOME/cargo"

if ! "$VENV/bin/python" -c "import jupyterlab, nbclient, nbformat, ipykernel, pytest" 2>/dev/null; then
  say "installing JupyterLab, nbclient and pytest into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check jupyterlab nbclient nbformat ipykernel pytest
fi

if ! { [ -x "$EVCXR_ROOT/bin/evcxr_jupyter" ] && grep -q "^\"evcxr_jupyter $EVCXR_VERSION " "$EVCXR_ROOT/.crates.toml" 2>/dev/null; }; then
  say "building evcxr_jupyter $EVCXR_VERSION (about 7 minutes, once per machine)"
  cargo install --quiet --locked evcxr_jupyter --version "$EVCXR_VERSION" --root "$EVCXR_ROOT"
fi

# evcxr loads each cell as a shared library linked against the toolchain's libstd; the rpath rustc
# writes is relative to cargo's deps/ folder and misses it from where evcxr loads the library
# unless the build folder sits directly under /tmp, so the loader path names it explicitly.
RUST_STD_LIB="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/lib"
KERNEL_SRC="$GAN_LAB_HOME/kernelspec/gan-lab"
mkdir -p "$KERNEL_SRC" "$GAN_LAB_HOME/evcxr"
cat > "$KERNEL_SRC/launch.sh" <<LAUNCH
#!/usr/bin/env bash
# Starts evcxr_jupyter with the first free build folder (a lock held for the kernel's lifetime).
for slot in 0 1 2 3 4 5 6 7; do
  exec 8>"$GAN_LAB_HOME/evcxr/slot-\$slot.lock"
  if flock -n 8; then
    export EVCXR_TMPDIR="$GAN_LAB_HOME/evcxr/slot-\$slot"
    mkdir -p "\$EVCXR_TMPDIR"
    exec "$EVCXR_ROOT/bin/evcxr_jupyter" --control_file "\$1"
  fi
done
echo "gan-lab kernel: all 8 build folders are in use" >&2
exit 1
LAUNCH
chmod +x "$KERNEL_SRC/launch.sh"
# The kernel Jupyter starts is scripts/gan_lab_kernel.py, which runs evcxr (the inner kernelspec)
# and turns a panic into the cell's error; copied here so that every clone's notebooks share it.
mkdir -p "$KERNEL_SRC/inner/evcxr"
cp "$GAN_LAB_ROOT/scripts/gan_lab_kernel.py" "$KERNEL_SRC/gan_lab_kernel.py.tmp"
mv "$KERNEL_SRC/gan_lab_kernel.py.tmp" "$KERNEL_SRC/gan_lab_kernel.py"
"$VENV/bin/python" - "$KERNEL_SRC/inner/evcxr/kernel.json" <<PY
import json, sys
json.dump({
    "argv": ["$KERNEL_SRC/launch.sh", "{connection_file}"],
    "display_name": "evcxr (inside Rust (gan_lab))",
    "language": "rust",
    "interrupt_mode": "message",
}, open(sys.argv[1], "w"), indent=1)
PY
"$VENV/bin/python" - "$KERNEL_SRC/kernel.json" <<PY
import json, sys
json.dump({
    "argv": ["$VENV/bin/python", "$KERNEL_SRC/gan_lab_kernel.py", "-f", "{connection_file}"],
    "display_name": "Rust (gan_lab)",
    "language": "rust",
    "interrupt_mode": "message",
    "env": {
        "LIBTORCH": "$TORCH_DIR",
        "LD_LIBRARY_PATH": "$TORCH_DIR/lib:$RUST_STD_LIB",
        "GAN_LAB_PYTHON": "$VENV/bin/python",
        "GAN_LAB_HOME": "$GAN_LAB_HOME",
        "GAN_LAB_PROGRESS": "lines",
        "PATH": "$(dirname "$(command -v cargo)"):$PATH",
    },
}, open(sys.argv[1], "w"), indent=1)
PY
"$VENV/bin/jupyter" kernelspec install --user --name gan-lab "$KERNEL_SRC" >/dev/null 2>&1 ||
  { say "could not register the gan-lab kernelspec"; exit 1; }
export PATH="$VENV/bin:$PATH"

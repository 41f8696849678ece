"""The "Rust (gan_lab)" Jupyter kernel: evcxr, with a panic counted as the cell's error.

evcxr catches a panic in a cell, keeps the earlier cells' variables and reports the cell as
succeeded: Run All carries on past an unwritten exercise, and the panic's text (with a backtrace)
arrives on stderr, sometimes after the cell has finished. This kernel runs evcxr_jupyter as its
inner kernel and passes every message through, with three changes:

- a panic hook installed in evcxr's process prints each panic as one marked line on stdout, which
  evcxr delivers before the cell ends; the kernel turns it into the cell's error (Run All stops
  there; nbclient raises with the message) and keeps evcxr's state. An unwritten exercise reads
  as what to do: which exercise, its file, how to check it;
- while evcxr compiles (the first `:dep gan_lab`, or gan_lab again after an edit) the cell says so;
- an interrupt stops the running cell the way evcxr's own does (its process restarts, and the
  message says that the earlier cells' variables are gone).

scripts/setup-kernel.sh installs this file beside the kernelspec, with the inner kernelspec
(evcxr's launcher) in `inner/`.
"""
import os
import pathlib
import queue
import re
import time

import psutil
from ipykernel.kernelapp import IPKernelApp
from ipykernel.kernelbase import Kernel
from jupyter_client import KernelManager
from jupyter_client.kernelspec import KernelSpecManager

HERE = pathlib.Path(__file__).resolve().parent
MARK = "\x1egan_lab panic\x1f"

# Installed once per evcxr process: every panic becomes one line on stdout (no backtrace).
PANIC_HOOK = r"""
std::panic::set_hook(Box::new(|info| {
    let message = info.payload_as_str().unwrap_or("(a panic without a message)");
    let place = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
    let escape = |s: &str| s.replace('\\', "\\\\").replace('\n', "\\n");
    println!("\x1egan_lab panic\x1f{}\x1f{}", escape(&place), escape(message));
}));
"""

STUB = re.compile(r"^not yet implemented: exercise ([\w.]+): (.*)$", re.S)


def unescape(s):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), s)


def panic_error(place, message):
    """(ename, evalue, traceback) for a panic at `place` (file:line) with `message`."""
    source = place
    if "gan_lab/src/" in place:
        source = "gan_lab/src/" + place.split("gan_lab/src/", 1)[1]
    stub = STUB.match(message)
    if stub:
        exercise, task = stub.groups()
        file = source.rsplit(":", 1)[0]
        lesson = exercise.split(".")[0]
        text = (f"Exercise {exercise} is not written yet ({file}): {task}.\n"
                f"Write it between its `BEGIN EXERCISE {exercise}` and `END EXERCISE` lines, check it with "
                f"`gan-lab grade --lesson {lesson}`, then run this cell again: "
                "the kernel rebuilds gan_lab first.")
        return "ExerciseNotWritten", f"exercise {exercise} is not written yet", [text]
    if source.startswith("gan_lab/src/"):
        return "Panic", message, [f"panicked at {source}:\n{message}"]
    return "Panic", message, [f"panicked: {message}"]


class GanLabKernel(Kernel):
    implementation = "gan_lab"
    implementation_version = "1"
    language_info = {"name": "rust", "mimetype": "text/rust", "file_extension": ".rs", "codemirror_mode": "rust",
                     "pygments_lexer": "rust"}
    banner = "Rust (gan_lab): evcxr with gan_lab's messages"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        specs = KernelSpecManager(kernel_dirs=[str(HERE / "inner")])
        self.km = KernelManager(kernel_name="evcxr", kernel_spec_manager=specs)
        self.km.start_kernel()
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=600)
        self.hook_installed = False
        self.interrupted = False

    # ---- running a cell in evcxr ----

    def run_inner(self, code, silent, on_output):
        """Runs `code` in evcxr; passes each output message to `on_output(kind, content)` and
        returns evcxr's execute reply content."""
        msg_id = self.kc.execute(code, silent=silent, store_history=not silent, allow_stdin=False)
        started, announced = time.monotonic(), 0.0
        idle = False
        while not idle:
            try:
                msg = self.kc.get_iopub_msg(timeout=1.0)
            except queue.Empty:
                if not self.km.is_alive():
                    return {"status": "error", "ename": "KernelDied", "evalue": "evcxr stopped", "traceback": []}
                announced = self.announce_compiling(started, announced, on_output)
                continue
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "status":
                idle = content["execution_state"] == "idle"
            elif kind != "execute_input":
                on_output(kind, content)
        reply = None
        while reply is None:
            msg = self.kc.get_shell_msg(timeout=60)
            if msg["parent_header"].get("msg_id") == msg_id:
                reply = msg["content"]
        # evcxr forwards output from another thread: a last line may follow the idle status.
        while True:
            try:
                msg = self.kc.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                break
            if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] not in ("status", "execute_input"):
                on_output(msg["msg_type"], msg["content"])
        return reply

    def announce_compiling(self, started, announced, on_output):
        """While evcxr compiles, says what (after 3 s, then every 30 s; the cell's own crate after 15 s)."""
        now = time.monotonic()
        if now - started < 3 or (announced and now - announced < 30):
            return announced
        try:
            procs = psutil.Process(self.km.provisioner.process.pid).children(recursive=True)
            running = [(p.name(), p.cmdline()) for p in procs]
        except (psutil.Error, AttributeError):
            return announced
        crates = sorted({cmd[cmd.index("--crate-name") + 1] for name, cmd in running
                         if name == "rustc" and "--crate-name" in cmd[:-1]})
        others = [c for c in crates if not c.startswith("ctx")]
        if crates and not others and now - started < 15:
            return announced  # evcxr compiling the cell itself: a few seconds, every cell
        crates = others or (["this cell"] if crates else [])
        if any(name in ("cc1plus", "c++", "g++", "clang++") for name, _ in running):
            crates.append("gan_lab's C++ ops")
        if not crates and any(name == "cargo" for name, _ in running):
            crates.append("dependencies")
        if not crates:
            return announced
        names = ", ".join(crates)
        text = (f"compiling {names} ({now - started:.0f} s so far; the first `:dep gan_lab` takes a few minutes, "
                "a rebuild after an edit to gan_lab/src about a minute)\n")
        on_output("stream", {"name": "stdout", "text": text})
        return now

    def install_hook(self):
        self.run_inner(PANIC_HOOK, True, lambda kind, content: None)
        self.hook_installed = True

    def do_execute(self, code, silent, store_history=True, user_expressions=None, allow_stdin=False,
                   *, cell_meta=None, cell_id=None):
        if not self.hook_installed:
            self.install_hook()
        panics, errors = [], []

        def on_output(kind, content):
            if kind == "stream":
                # (not splitlines: it also splits at the marker's separators)
                lines = re.findall(r"[^\n]*\n|[^\n]+$", content["text"])
                kept = []
                for line in lines:
                    if line.startswith(MARK):
                        place, _, message = line[len(MARK):].rstrip("\n").partition("\x1f")
                        panics.append((unescape(place), unescape(message)))
                    else:
                        kept.append(line)
                content = dict(content, text="".join(kept))
                if not content["text"]:
                    return
            elif kind == "execute_result":
                content = dict(content, execution_count=self.execution_count)
            elif kind == "error":
                if "ubprocess terminated" in content.get("evalue", ""):
                    self.hook_installed = False  # evcxr started a new process
                    content = self.restarted(content)
                errors.append(content)
            if not silent:
                self.send_response(self.iopub_socket, kind, content)

        reply = self.run_inner(code, silent, on_output)
        self.interrupted = False
        if reply.get("status") == "error":
            # evcxr's reply carries no error text; the error it sent as output does (a compile
            # error, a restarted process), and it is what nbclient and nbconvert report.
            error = errors[-1] if errors else reply
            return {"status": "error", "execution_count": self.execution_count, "ename": error.get("ename", "Error"),
                    "evalue": error.get("evalue", ""), "traceback": error.get("traceback", [])}
        if panics:
            ename, evalue, traceback = panic_error(*panics[0])
            error = {"ename": ename, "evalue": evalue, "traceback": traceback}
            if not silent:
                self.send_response(self.iopub_socket, "error", error)
            return {"status": "error", "execution_count": self.execution_count, **error}
        return {"status": "ok", "execution_count": self.execution_count, "payload": [], "user_expressions": {}}

    def restarted(self, error):
        """evcxr's error when the process running the cells stopped, said for a student."""
        cause = "you interrupted it" if self.interrupted else f"it stopped ({error.get('evalue', '')})"
        text = (f"The kernel's Rust process was restarted because {cause}: the variables of earlier "
                "cells are gone. Run the cells above again.")
        return dict(error, ename="Restarted", evalue=text, traceback=[text])

    # ---- the rest, passed to evcxr ----

    def forward(self, send):
        msg_id = send()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_shell_msg(timeout=1)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]
        return None

    def do_complete(self, code, cursor_pos):
        reply = self.forward(lambda: self.kc.complete(code, cursor_pos))
        return reply or {"status": "ok", "matches": [], "cursor_start": cursor_pos, "cursor_end": cursor_pos,
                         "metadata": {}}

    def do_inspect(self, code, cursor_pos, detail_level=0, omit_sections=()):
        reply = self.forward(lambda: self.kc.inspect(code, cursor_pos, detail_level))
        return reply or {"status": "ok", "found": False, "data": {}, "metadata": {}}

    def do_is_complete(self, code):
        reply = self.forward(lambda: self.kc.is_complete(code))
        return reply or {"status": "unknown"}

    def _send_interrupt_children(self):
        # evcxr's own interrupt: stop the process running the cell (evcxr starts a new one).
        self.interrupted = True
        try:
            for child in psutil.Process(self.km.provisioner.process.pid).children():
                child.kill()
        except (psutil.Error, AttributeError):
            pass
        self.hook_installed = False

    def do_shutdown(self, restart):
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)
        return {"status": "ok", "restart": restart}


if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=GanLabKernel)

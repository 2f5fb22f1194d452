"""The workbench on a real pseudo-terminal, losing it: an SSH session dropping (SIGHUP), a SIGTERM, or the
terminal closing with no signal at all (Textual alone would then spin at 100% CPU and train on, unseen).
Each time the running training job stops at its step, last.pt is saved, and the app exits with 128+signal."""

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pytest
from helpers.data import ROOT, make_dataset

from engine.core.checkpoints import load_checkpoint

CHILD = """
import sys
sys.path.insert(0, {root!r})
from tui.app import create_app
app = create_app({dataset!r}, {runs!r}, config={config!r}, color_hint=False, warm=False)
app.run()
sys.exit(app.return_code or 0)
"""


def read_until(master: int, needle: bytes, timeout: float) -> bytes:
    """Read the app's output until `needle` shows (b"": just drain for `timeout` seconds)."""
    buf, deadline = b"", time.monotonic() + timeout
    while (needle not in buf) if needle else time.monotonic() < deadline:
        if needle and time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {needle!r}; last output: {buf[-400:]!r}")
        ready, _, _ = select.select([master], [], [], 0.05)
        if ready:
            buf += os.read(master, 65536)
    return buf


@pytest.mark.parametrize("how", ["sighup", "sigterm", "closed"])
def test_losing_the_terminal_stops_the_job_saves_and_exits(tmp_path, how):
    data = make_dataset(tmp_path / "d", {"red": 12, "blue": 12})
    runs = tmp_path / "runs"
    code = CHILD.format(root=str(ROOT), dataset=str(data), runs=str(runs),
                        config={"mode": "head", "epochs": 10_000, "img_size": 32, "batch_size": 4, "workers": 0})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "TLBENCH_CACHE": str(tmp_path / "c"),
           "TLBENCH_STATE": str(tmp_path / "state.json")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=ROOT, start_new_session=True)
    os.close(slave)
    try:
        read_until(master, b"split", 60)
        os.write(master, b"3")
        read_until(master, b"loss", 30)
        os.write(master, b"t")
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/last.pt")):  # a checkpoint exists: the job is mid-training
            assert proc.poll() is None and time.monotonic() < deadline
            read_until(master, b"", 0.2)  # keep reading, as a terminal does, so the app never blocks
        sent = time.monotonic()
        if how == "closed":
            os.close(master)  # no signal: only the hang-up on stdin tells the app
        else:
            proc.send_signal(signal.SIGHUP if how == "sighup" else signal.SIGTERM)
            while proc.poll() is None and time.monotonic() - sent < 30:
                try:
                    read_until(master, b"", 0.2)
                except OSError:
                    break
        rc = proc.wait(30)
        assert time.monotonic() - sent < 15
    finally:
        if proc.poll() is None:
            proc.kill()
        if how != "closed":
            os.close(master)
    assert rc == 128 + (signal.SIGTERM if how == "sigterm" else signal.SIGHUP)
    (run,) = runs.iterdir()
    ckpt = load_checkpoint(run / "last.pt")
    assert 1 <= ckpt["epoch"] < 10_000
    assert not list(run.glob("*.tmp"))


SLOW_SAVE_CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import engine.train.finetune as finetune
from tui.app import TlbenchApp, create_app
real_save = finetune.save

def slow_save(ft, name, payload):
    if ft.ctx.stopped:  # the checkpoint the stop saves: longer than the app used to wait for it
        time.sleep(TlbenchApp.QUIT_TIMEOUT + 3)
    real_save(ft, name, payload)

finetune.save = slow_save
app = create_app({dataset!r}, {runs!r}, config={config!r}, color_hint=False, warm=False)
app.run()
sys.exit(app.return_code or 0)
"""


def test_a_hang_up_waits_for_the_checkpoint_and_the_status_file(tmp_path):
    """SSH drops while the stopped job is still writing last.pt, a save slower than QUIT_TIMEOUT: the app
    used to end the process QUIT_TIMEOUT after the hang-up, mid-save, leaving status.json "running". It waits
    for the job: last.pt whole, status.json "stopped", then exit 129."""
    data = make_dataset(tmp_path / "d", {"red": 12, "blue": 12})
    runs = tmp_path / "runs"
    code = SLOW_SAVE_CHILD.format(root=str(ROOT), dataset=str(data), runs=str(runs),
                                  config={"mode": "head", "epochs": 10_000, "img_size": 32, "batch_size": 4,
                                          "workers": 0})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "TLBENCH_CACHE": str(tmp_path / "c"),
           "TLBENCH_STATE": str(tmp_path / "state.json")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=ROOT, start_new_session=True)
    os.close(slave)
    try:
        read_until(master, b"split", 60)
        os.write(master, b"3")
        read_until(master, b"loss", 30)
        os.write(master, b"t")
        deadline = time.monotonic() + 120
        while not list(runs.glob("*/last.pt")):
            assert proc.poll() is None and time.monotonic() < deadline
            read_until(master, b"", 0.2)
        proc.send_signal(signal.SIGHUP)
        os.close(master)  # and the terminal is gone, as when SSH drops
        master = -1
        rc = proc.wait(120)  # a guard against a hang, not a measure: the save alone takes QUIT_TIMEOUT + 3 s
    finally:
        if proc.poll() is None:
            proc.kill()
        if master >= 0:
            os.close(master)
    assert rc == 128 + signal.SIGHUP
    (run,) = runs.iterdir()
    assert json.loads((run / "status.json").read_text())["status"] == "stopped"
    assert load_checkpoint(run / "last.pt")["epoch"] >= 1
    assert not list(run.glob("*.tmp"))


RUN_APP_CHILD = """
import atexit, sys
sys.path.insert(0, {root!r})
atexit.register(lambda: open({marker!r}, "w").write("the interpreter's teardown ran"))
from tui.app import run_app
run_app([{dataset!r}, "--runs-dir", {runs!r}])
"""


def spawn_run_app(tmp_path, data, runs, config_epochs=None):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    marker = tmp_path / "teardown-ran"
    code = RUN_APP_CHILD.format(root=str(ROOT), dataset=str(data), runs=str(runs), marker=str(marker))
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor", "TLBENCH_CACHE": str(tmp_path / "c"),
           "TLBENCH_STATE": str(tmp_path / "state.json")}
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=ROOT, start_new_session=True)
    os.close(slave)
    return proc, master, marker


def wait_exit(proc, master, timeout: float) -> bytes:
    out, deadline = b"", time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            out += read_until(master, b"", 0.1)
        except OSError:
            break
    return out


def test_quit_shows_stopping_and_leaves_without_the_slow_teardown(tmp_path):
    """D15: q while idle and q while training. The process ends through os._exit once the terminal is
    restored (the interpreter's teardown with PyTorch loaded took 2-4 s here: its atexit marker never
    appears); during training "stopping…" is on screen before the app exits, and last.pt is saved."""
    data = make_dataset(tmp_path / "d", {"red": 12, "blue": 12})
    runs = tmp_path / "runs"
    proc, master, marker = spawn_run_app(tmp_path, data, runs)
    try:
        read_until(master, b"split", 60)
        os.write(master, b"q")
        sent = time.monotonic()
        wait_exit(proc, master, 30)
        assert proc.wait(5) == 0 and time.monotonic() - sent < 10  # generous: the machine is shared
        assert not marker.exists()

        (tmp_path / "state.json").write_text(json.dumps({"config": {"mode": "head", "epochs": 10_000,
                                                                     "img_size": 32, "batch_size": 4,
                                                                     "workers": 0}}))
        os.close(master)
        proc, master, marker = spawn_run_app(tmp_path, data, runs)
        read_until(master, b"split", 60)
        os.write(master, b"3")
        read_until(master, b"loss", 30)
        os.write(master, b"t")
        deadline = time.monotonic() + 300
        screen = b""
        while not list(runs.glob("*/last.pt")):
            assert proc.poll() is None and time.monotonic() < deadline, re.sub(
                rb"\x1b\[[0-9;?<>]*[a-zA-Z]", b" ", screen)[-600:]
            screen += read_until(master, b"", 0.2)
        os.write(master, b"q")
        sent = time.monotonic()
        out = wait_exit(proc, master, 30)
        assert proc.wait(5) == 0 and time.monotonic() - sent < 15
        shown = re.sub(rb"\x1b\[[0-9;?<>]*[a-zA-Z]", b"", out)  # the text, without colours and moves
        assert b"topping" in shown, shown[-2000:]
        assert not marker.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
        try:
            os.close(master)
        except OSError:
            pass
    (run,) = runs.iterdir()
    assert load_checkpoint(run / "last.pt")["epoch"] >= 1

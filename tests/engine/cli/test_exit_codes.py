"""Every way a headless command can end, as a script sees it: the exit code says who can fix it (2 bad input,
1 a job that failed, 128+N stopped by signal N), stderr has a panel and never a traceback, and with --json
stdout holds exactly one JSON object that carries the same exit code."""

import importlib
import json
import os
import pkgutil
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers.data import ROOT, make_dataset

import engine
from engine.core.errors import TlbenchError

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2  # the contract scripts rely on, written out

# Each error class and the bucket it belongs in. A new TlbenchError subclass fails
# test_every_error_class_is_placed_deliberately until it is added here, after choosing.
EXPECTED_EXIT_CODES = {
    "TlbenchError": EXIT_FAILED,  # unclassified: never tell a script "fix your input" by default
    "ConfigError": EXIT_BAD_INPUT,
    "DatasetError": EXIT_BAD_INPUT,
    "WeightsError": EXIT_BAD_INPUT,
    "RunError": EXIT_BAD_INPUT,
    "JobError": EXIT_FAILED,
    "TrainingDiverged": EXIT_FAILED,
    "FetchError": EXIT_FAILED,
    "ArchiveError": EXIT_FAILED,
}


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


def test_every_error_class_is_placed_deliberately():
    for m in pkgutil.walk_packages(engine.__path__, "engine."):
        importlib.import_module(m.name)
    found = {c.__name__: c.exit_code for c in [TlbenchError, *all_subclasses(TlbenchError)]
             if c.__module__.startswith("engine.")}
    assert set(found) == set(EXPECTED_EXIT_CODES), "classify the new error classes in EXPECTED_EXIT_CODES"
    assert found == EXPECTED_EXIT_CODES


def test_one_raise_can_override_its_class():
    from engine.core.errors import RunError

    assert RunError("x").exit_code == EXIT_BAD_INPUT
    assert RunError("x", exit_code=EXIT_FAILED).exit_code == EXIT_FAILED
    assert RunError("x").exit_code == EXIT_BAD_INPUT  # the class default is untouched


def run_main(capfd, *argv):
    """The console script's entry point in this process; argparse's refusals arrive as SystemExit."""
    from tui.main import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capfd.readouterr()
    return code, out, err


def one_error(out: str) -> dict:
    payload = json.loads(out)  # fails on anything but exactly one JSON document
    return payload["error"]


def boom(*args, **kwargs):
    raise RuntimeError("the registry broke at row 7")


def break_backbones(monkeypatch, tmp_path):
    import engine.cli.commands.backbones

    monkeypatch.setattr(engine.cli.commands.backbones, "available_backbones", boom)
    return ["backbones"]


def break_scan_after_the_job(monkeypatch, tmp_path):
    """The scan job succeeds; the error comes after it, outside any job, while printing the result."""
    from engine.data.layouts import DatasetInfo

    monkeypatch.setattr(DatasetInfo, "to_json", boom)  # --json
    monkeypatch.setattr(DatasetInfo, "counts", boom)  # the table
    return ["scan", make_dataset(tmp_path / "d", {"red": 2, "blue": 2})]


def break_doctor(monkeypatch, tmp_path):
    import engine.cli.commands.doctor

    monkeypatch.setattr(engine.cli.commands.doctor, "describe_device", boom)
    return ["doctor"]


BREAKERS = {"backbones": break_backbones, "scan": break_scan_after_the_job, "doctor": break_doctor}


@pytest.mark.parametrize("command", sorted(BREAKERS))
def test_an_unexpected_exception_outside_a_job_exits_1_with_a_panel_and_json(command, monkeypatch, tmp_path,
                                                                           capfd):
    monkeypatch.delenv("TLBENCH_DEBUG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    argv = BREAKERS[command](monkeypatch, tmp_path)

    code, out, err = run_main(capfd, *argv, "--json")
    assert code == EXIT_FAILED, err
    assert one_error(out) == {"title": "Unexpected RuntimeError", "kind": "RuntimeError", "exit_code": 1,
                              "message": "the registry broke at row 7. Set TLBENCH_DEBUG=1 to see the traceback, "
                                         "and report it if it persists."}
    assert "Unexpected RuntimeError" in err and "row 7" in err and "Traceback" not in err

    code, out, err = run_main(capfd, *argv)  # the same without --json
    assert code == EXIT_FAILED and "row 7" in err and "Traceback" not in err


def test_tlbench_debug_adds_the_traceback(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("TLBENCH_DEBUG", "1")
    code, out, err = run_main(capfd, *break_backbones(monkeypatch, tmp_path), "--json")
    assert code == EXIT_FAILED and "Traceback" in err and "row 7" in err
    assert one_error(out)["exit_code"] == EXIT_FAILED


@pytest.mark.parametrize("error, title", [(MemoryError(), "Out of memory"),
                                          (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"),
                                           "Out of memory"),
                                          (KeyError("label"), "Unexpected KeyError")])
def test_an_unexpected_exception_inside_a_job_exits_1(error, title, monkeypatch, tmp_path, capfd):
    import engine.cli.commands.scan

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(engine.cli.commands.scan, "scan_dataset", fail)
    code, out, err = run_main(capfd, "scan", tmp_path, "--json")
    assert code == EXIT_FAILED
    assert one_error(out)["title"] == title and one_error(out)["exit_code"] == EXIT_FAILED
    assert "Traceback" not in err


def test_a_failed_download_exits_1(tmp_path, capfd):
    """TLBENCH_OFFLINE (conftest) makes every download fail: the input was fine, the fetch was not."""
    code, out, err = run_main(capfd, "fetch", "imagenette", "--dest", tmp_path, "--json")
    assert code == EXIT_FAILED, err
    error = one_error(out)
    assert error["kind"] == "FetchError" and error["exit_code"] == EXIT_FAILED
    assert "network access is disabled" in error["message"] and "Traceback" not in err


def test_a_diverged_run_exits_1_and_says_so(monkeypatch, tmp_path, capfd):
    import engine.train.loop as loop

    real = loop.to_input
    monkeypatch.setattr(loop, "to_input", lambda x, step: real(x, step) * float("nan"))
    data = make_dataset(tmp_path / "d", {"red": 4, "blue": 4})
    code, out, err = run_main(capfd, "train", data, "--mode", "head", "--epochs", "2", "--img-size", "32",
                              "--batch-size", "4", "--workers", "0", "--device", "cpu", "--json")
    assert code == EXIT_FAILED, err
    error = one_error(out)
    assert error["title"] == "Training diverged" and error["kind"] == "TrainingDiverged"
    assert error["exit_code"] == EXIT_FAILED and "Lower the learning rate" in error["message"]
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, needle", [
    (["scan", "{missing}", "--bogus"], "unrecognized arguments: --bogus"),
    (["train", "somewhere", "--lr", "fast"], "'fast' is not a number"),
    (["scan", "{missing}"], "does not exist"),
    (["eval", "{missing}"], "not found"),
])
def test_bad_input_exits_2_and_the_json_says_2(argv, needle, tmp_path, capfd):
    argv = [a.format(missing=tmp_path / "no-such-thing") for a in argv]
    code, out, err = run_main(capfd, *argv, "--json")
    assert code == EXIT_BAD_INPUT and needle in err and "Traceback" not in err
    assert one_error(out)["exit_code"] == EXIT_BAD_INPUT


# ------------------------------------------------------------------------------------- stops

# A subprocess each: a real signal to a process whose handlers are broken would take pytest down with it.
STOP_OUTSIDE_A_JOB = """
import os, signal, sys, time
import engine.cli.commands.fetch

def listing(args):  # the listing is not a job: the signal arrives outside any job
    {stop}
    time.sleep(30)
    return 0

engine.cli.commands.fetch.list_datasets = listing
from tui.main import main
sys.exit(main(["fetch", "--json"]))
"""

STOP_INSIDE_A_JOB = """
import os, signal, sys, time
import engine.cli.commands.scan

def scan(path, ctx):
    os.kill(os.getpid(), signal.{sig})
    for _ in range(3000):  # the handler asks the job to stop; ctx.check() ends it at the next unit of work
        ctx.check()
        time.sleep(0.01)
    raise AssertionError("the job was never stopped")

engine.cli.commands.scan.scan_dataset = scan
from tui.main import main
sys.exit(main(["scan", "anywhere", "--json"]))
"""


def run_script(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "COLUMNS": "200"})


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_outside_a_job_exits_128_plus_the_signal_with_json(sig):
    stop = ("raise KeyboardInterrupt  # Ctrl+C as Python delivers it" if sig == "SIGINT"
            else f"os.kill(os.getpid(), signal.{sig})")
    out = run_script(STOP_OUTSIDE_A_JOB.format(stop=stop))
    signum = getattr(signal, sig)
    assert out.returncode == 128 + signum, out.stderr
    error = one_error(out.stdout)
    assert error["kind"] == "Stopped" and error["exit_code"] == 128 + signum
    assert json.loads(out.stdout)["stopped"] is True
    assert "Interrupted" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stopped_job_without_a_result_still_prints_one_json_object(sig):
    out = run_script(STOP_INSIDE_A_JOB.format(sig=sig))
    signum = getattr(signal, sig)
    assert out.returncode == 128 + signum, out.stderr
    error = one_error(out.stdout)
    assert error["kind"] == "Stopped" and error["exit_code"] == 128 + signum
    assert "Traceback" not in out.stderr


def test_stdout_closed_early_exits_quietly():
    """`tlbench fetch --json | head -c 0`: nobody reads the JSON, so no error about it either."""
    proc = subprocess.Popen([sys.executable, "-m", "tui.main", "fetch", "--json"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the child has started writing
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert proc.returncode == 128 + signal.SIGPIPE, err
    assert "Traceback" not in err and "Exception ignored" not in err


def test_a_vanished_terminal_does_not_fail_the_job():
    """After SIGHUP (an SSH session dropped) stderr raises EIO: the progress display goes quiet instead of
    failing the job before it has saved its state."""
    from engine.cli.progress import ProgressSink
    from engine.core.events import EpochEnded, JobFinished, LogLine

    class GoneTerminal:
        def write(self, text):
            raise OSError(5, "Input/output error")

        def flush(self):
            raise OSError(5, "Input/output error")

    with ProgressSink() as sink:
        sink.console.file = GoneTerminal()
        sink(LogLine("epoch 1 done"))
        sink(EpochEnded(1, 2, {"val_acc": 0.5}, 1.0))
        sink(JobFinished("stopped", {}))
    assert sink.enabled is False


def test_a_dead_stderr_still_leaves_the_json_and_the_code(monkeypatch, tmp_path, capfd):
    """The panel cannot be written (stderr gone after SIGHUP, or a closed pipe): the script still gets its
    error object and the right exit code."""
    import engine.cli.common as common

    def gone(title, message):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(common, "show_error", gone)
    code, out, _ = run_main(capfd, "scan", tmp_path / "no-such-thing", "--json")
    assert code == EXIT_BAD_INPUT and one_error(out)["kind"] == "DatasetError"

"""`--precision auto` against simulated machines: what each kind of machine measures and chooses, that a choice
is remembered per machine and backbone, that a measurement never changes a run's numbers, and that a run
records its precision and every later job replays it. Measurements are fakes unless a test says otherwise:
no test depends on the speed of the machine it runs on."""

from __future__ import annotations

import json

import pytest
import torch
from helpers.data import make_dataset
from precision_profiles import PROFILES, FakeMeasure, become, gpu

import engine.features.cache as features_module
import engine.runtime.precision_auto as pa
import engine.train.finetune as finetune_module
from engine.core.errors import ConfigError
from engine.core.events import JobFinished
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.runtime.machine import MachineProfile
from engine.runtime.precision import autocast_dtype
from engine.train.config import TrainConfig
from engine.train.job import train

CPU = torch.device("cpu")


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a simulated machine: `machine(name_or_profile)`; auto is no longer pinned."""
    return lambda which: become(monkeypatch, which)


@pytest.mark.parametrize("name", PROFILES)
def test_each_machine_measures_its_candidates_and_chooses_by_the_rates(machine, name):
    profile, wanted, choice = PROFILES[name]
    machine(name)
    assert pa.candidates(profile)[0] == wanted
    reduced = wanted[-1]
    faster = FakeMeasure(fp32=100.0, bf16=140.0, fp16=140.0)
    found = pa.resolve_auto(CPU, "lite0", measure=faster)
    assert found.choice == choice
    assert faster.calls == ([wanted] if len(wanted) > 1 else [])  # a one-candidate machine never measures
    slower = FakeMeasure(fp32=100.0, bf16=105.0, fp16=105.0)  # within the margin: fp32
    assert pa.resolve_auto(CPU, "lite1", measure=slower).choice == "fp32"
    if reduced != "fp32":
        assert found.rates == {"fp32": 100.0, reduced: 140.0} and found.key["device"] == profile.device


def test_choose_keeps_fp32_unless_a_reduced_precision_is_clearly_faster():
    assert pa.choose({"fp32": 50.0, "bf16": 3.8}) == "fp32"  # the EPYC's 13x slower bf16
    assert pa.choose({"fp32": 27.1, "bf16": 35.9}) == "bf16"  # the AVX-512 Xeon's
    assert pa.choose({"fp32": 100.0, "bf16": 108.0}) == "fp32"  # within the noise margin
    assert pa.choose({"fp32": 100.0, "bf16": 150.0, "fp16": 180.0}) == "fp16"


def test_gpus_that_emulate_bf16_get_fp16_whatever_torch_says():
    """torch.cuda.is_bf16_supported() is True on a T4 or V100 (emulated): the choice goes by compute capability."""
    assert pa.candidates(gpu("Tesla T4", (7, 5)))[0] == ["fp32", "fp16"]
    assert pa.candidates(gpu("NVIDIA A10", (8, 6)))[0] == ["fp32", "bf16"]


def test_an_avx2_cpu_is_measured_only_when_forced(machine, monkeypatch):
    machine("avx2")
    fake = FakeMeasure(fp32=10.0, bf16=1000.0, fp16=1000.0)
    assert autocast_dtype(CPU, "auto", backbone="tiny", measure=fake) is None
    assert fake.calls == []
    # forced (doctor, bench/): measured, but fp16 is still never a CPU candidate
    monkeypatch.setenv(pa.FORCE_ENV, "1")
    assert autocast_dtype(CPU, "auto", backbone="tiny", measure=fake) == torch.bfloat16
    assert fake.calls == [["fp32", "bf16"]]


def test_a_choice_is_measured_once_and_remembered_per_machine_backbone_and_torch(machine):
    machine("avx512_bf16")
    fast = FakeMeasure(fp32=27.1, bf16=35.9)
    assert autocast_dtype(CPU, "auto", backbone="lite0", measure=fast) == torch.bfloat16
    again = FakeMeasure(fp32=99.0, bf16=1.0)
    assert autocast_dtype(CPU, "auto", backbone="lite0", measure=again) == torch.bfloat16  # remembered
    assert len(fast.calls) == 1 and again.calls == []
    assert pa.resolve_auto(CPU, "lite0").rates == {"fp32": 27.1, "bf16": 35.9}
    # another backbone measures anew, and there bf16 is slow
    slow = FakeMeasure(fp32=50.0, bf16=3.8)
    assert autocast_dtype(CPU, "auto", backbone="resnet18", measure=slow) is None and len(slow.calls) == 1
    # another torch version (or CPU) invalidates what was remembered
    machine(MachineProfile("cpu", "AMD EPYC Genoa", "x86_64", ("avx2", "avx512f", "avx512_bf16"), "AVX512", None,
                           "9.9.9"))
    assert autocast_dtype(CPU, "auto", backbone="lite0", measure=again) is None and len(again.calls) == 1
    # explicit precisions are never measured
    assert autocast_dtype(CPU, "bf16", measure=again) == torch.bfloat16 and len(again.calls) == 1
    assert {e["key"]["backbone"] for e in pa.remembered()} == {"lite0", "resnet18"}


def test_a_pin_answers_without_measuring_and_a_bad_pin_says_what_to_do(machine, monkeypatch):
    machine("avx512_bf16")
    fake = FakeMeasure(fp32=10.0, bf16=20.0)
    monkeypatch.setenv(pa.PIN_ENV, "fp32")
    found = pa.resolve_auto(CPU, "lite0", measure=fake)
    assert (found.choice, fake.calls) == ("fp32", []) and pa.PIN_ENV in found.reason
    monkeypatch.setenv(pa.PIN_ENV, "fp8")
    with pytest.raises(ConfigError, match="TLBENCH_PRECISION_AUTO='fp8' is not a precision"):
        pa.resolve_auto(CPU, "lite0", measure=fake)


def test_a_measurement_never_moves_the_random_streams(machine):
    """The bug behind issue 21's damaged first run: building the reference network drew its weights from the
    global generator, so the run that measured initialised its head from another point of the stream."""
    machine("avx512_bf16")
    torch.manual_seed(3)
    state = torch.random.get_rng_state()
    pa.reference_model(CPU)
    assert torch.equal(torch.random.get_rng_state(), state)

    def leaky(names):  # a measurement that draws: resolve_auto forks the generators around it
        torch.rand(5)
        return {n: 1.0 for n in names}

    pa.resolve_auto(CPU, "leaky", measure=leaky)
    assert torch.equal(torch.random.get_rng_state(), state)


# ------------------------------------------------------------------------------------------------ runs


def head_config(data, **kw) -> TrainConfig:
    # SqueezeNet 1.1 (random weights): a head fine-tune in bf16 takes 0.07 s a step on any CPU
    base = {"dataset": str(data), "mode": "head", "img_size": 32, "epochs": 2, "batch_size": 8, "workers": 0,
            "seed": 0, "augment": "light", "backbone": "squeezenet1_1", "weights": "random"}
    return TrainConfig(**{**base, **kw})


def same(a: list[dict], b: list[dict]) -> bool:
    """Equal metrics, up to the last bits of float32: a CPU's threaded reductions (MKL, oneDNN) can round
    differently from one run to the next in one process (seen: 1.07366918 against 1.07366922). The damage a
    measurement did to a run was 1e-2 to 1e-1."""
    return len(a) == len(b) and all(x == pytest.approx(y, rel=1e-6, abs=1e-7) for x, y in zip(a, b))


def metrics(config: TrainConfig) -> tuple[list[dict], dict]:
    final = run_job("train", lambda ctx: train(config, ctx), lambda e: None)
    assert isinstance(final, JobFinished) and final.reason == "completed", final
    run_dir = final.result["run_dir"]
    rows = [json.loads(line) for line in open(f"{run_dir}/metrics.jsonl")]
    keep = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc")
    return [{k: r[k] for k in keep} for r in rows], read_json(f"{run_dir}/config.json")


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("pa") / "colours", {"red": 8, "blue": 8, "green": 8})


def test_the_run_that_measures_trains_as_the_run_that_remembers_and_as_the_fixed_precision(machine, colours):
    """Issue 21's damaged first run, reproduced: a machine with two candidates, a cold precision cache, a
    fine-tuning mode, the REAL measurement (the backbone's forward pass timed here). The measuring run, the
    same command again (the choice now remembered) and the same command with that precision fixed train
    alike, whatever this machine's timing chose."""
    machine("avx512_bf16")
    cold, cold_config = metrics(head_config(colours))
    chosen = cold_config["precision_resolved"]
    assert cold_config["precision_reason"].startswith("auto: measured")  # it really measured
    warm, warm_config = metrics(head_config(colours))
    assert warm_config["precision_resolved"] == chosen
    fixed, _ = metrics(head_config(colours, precision=chosen))
    assert same(cold, warm) and same(warm, fixed)


def test_the_same_command_twice_with_a_cold_cache_each_time_gives_identical_metrics(machine, colours, monkeypatch):
    machine("avx512_bf16")
    fake = FakeMeasure(fp32=10.0, bf16=20.0)
    monkeypatch.setattr(finetune_module, "measure_model", lambda *a, **k: fake(a[3]))
    first, config = metrics(head_config(colours, epochs=1))
    for path in (pa.cache_dir() / "precision").glob("*.json"):
        path.unlink()
    second, _ = metrics(head_config(colours, epochs=1))
    assert same(first, second) and len(fake.calls) == 2 and config["precision_resolved"] == "bf16"


def test_runs_record_and_use_what_auto_chose(machine, tmp_path, monkeypatch):
    """A head fine-tune and a probe on a CPU whose (fake) measurement found bf16 faster: both record bf16 and
    why, train/extract under bf16 autocast, and the feature cache keys the bf16 features apart from fp32."""
    machine("avx512_bf16")
    fake = FakeMeasure(fp32=10.0, bf16=20.0)
    monkeypatch.setattr(finetune_module, "measure_model", lambda *a, **k: fake(a[3]))
    monkeypatch.setattr(features_module, "measure_model", lambda *a, **k: fake(a[3]))
    reference = FakeMeasure(fp32=20.0, bf16=10.0)
    monkeypatch.setattr(pa, "measure_model", lambda *a, **k: reference(a[3]))
    seen = []
    real_autocast = features_module.autocast
    monkeypatch.setattr(features_module, "autocast", lambda d, dt: seen.append(dt) or real_autocast(d, dt))
    data = make_dataset(tmp_path / "d", {"red": 4, "blue": 4})
    base = {"dataset": str(data), "img_size": 32, "epochs": 1, "batch_size": 4, "workers": 0,
            "backbone": "resnet18", "weights": "random", "augment": "none"}
    results = {}
    for mode in ("head", "probe"):
        final = run_job("train", lambda ctx, m=mode: train(TrainConfig(**base, mode=m), ctx), lambda e: None)
        assert isinstance(final, JobFinished) and final.reason == "completed", final
        results[mode] = final.result
    # one measurement for resnet18 on this machine, shared by training and extraction; the reference network is
    # never measured by a training run (it has its own backbone at hand)
    assert len(fake.calls) == 1 and reference.calls == []
    assert {e["key"]["backbone"] for e in pa.remembered()} == {"resnet18"}
    for mode in ("head", "probe"):
        config = read_json(f"{results[mode]['run_dir']}/config.json")
        assert config["precision"] == "auto" and config["precision_resolved"] == "bf16"
        assert "measured fp32 10.0, bf16 20.0" in config["precision_reason"]
    assert results["probe"]["extract_precision"] == "bf16" and seen and set(seen) == {torch.bfloat16}
    cached = list((pa.cache_dir() / "features").glob("resnet18-*/*.pt"))
    assert len(cached) == 1 and torch.load(cached[0], weights_only=True)["key"]["precision"] == "bf16"


def test_doctor_shows_the_machine_the_candidates_and_the_choice(machine, monkeypatch):
    from engine.cli.commands.doctor import precision_report

    machine("avx512_bf16")
    fake = FakeMeasure(fp32=27.1, bf16=35.9)
    monkeypatch.setattr(pa, "measure_model", lambda *a, **k: fake(a[3]))
    report = precision_report("cpu")
    assert report["auto"] == "bf16" and report["rates"] == {"fp32": 27.1, "bf16": 35.9}
    assert report["device_name"] == "AMD EPYC Genoa" and "avx512_bf16" in report["cpu_flags"]
    assert report["candidates"] == ["fp32", "bf16"] and report["pinned"] is None
    assert [(e["backbone"], e["choice"]) for e in report["remembered"]] == [("reference", "bf16")]
    # --measure-precision measures again, even on an AVX2 CPU (where auto alone never measures)
    machine("avx2")
    assert precision_report("cpu")["rates"] == {} and len(fake.calls) == 1
    monkeypatch.setenv(pa.FORCE_ENV, "0")
    slow = FakeMeasure(fp32=50.0, bf16=3.8)
    monkeypatch.setattr(pa, "measure_model", lambda *a, **k: slow(a[3]))
    forced = precision_report("cpu", measure=True)
    assert forced["auto"] == "fp32" and forced["rates"] == {"fp32": 50.0, "bf16": 3.8}

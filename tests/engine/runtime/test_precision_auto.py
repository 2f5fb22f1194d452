"""`--precision auto`: the choice from measured rates, what is (not) measured on which CPU, that a choice is
remembered per device/backbone/torch, and that runs record (and use) what auto chose. Measurements are fakes:
no test times anything."""

from __future__ import annotations

import torch
from conftest import make_dataset

import engine.features.cache as features_module
import engine.runtime.precision_auto as pa
import engine.train.finetune as finetune_module
from engine.core.events import JobFinished
from engine.core.files import read_json
from engine.core.jobs import run_job
from engine.runtime.precision import autocast_dtype
from engine.train.config import TrainConfig
from engine.train.job import train

CPU = torch.device("cpu")
AVX2 = ("AMD EPYC", ["avx2"])
AVX512_BF16 = ("Intel Xeon", ["avx2", "avx512f", "avx512_bf16"])


class FakeMeasure:
    """Rates without running anything; counts its calls (each call = one measurement on a real device)."""

    def __init__(self, **rates: float):
        self.rates, self.calls = rates, []

    def __call__(self, names):
        self.calls.append(list(names))
        return {n: self.rates[n] for n in names}


def cpu(monkeypatch, info, capability="AVX2"):
    monkeypatch.setattr(pa, "cpu_info", lambda: info)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)


def test_choose_keeps_fp32_unless_a_reduced_precision_is_clearly_faster():
    assert pa.choose({"fp32": 50.0, "bf16": 3.8}) == "fp32"  # the EPYC's 13x slower bf16
    assert pa.choose({"fp32": 27.1, "bf16": 35.9}) == "bf16"  # the AVX-512 Xeon's
    assert pa.choose({"fp32": 100.0, "bf16": 103.0}) == "fp32"  # within the noise margin
    assert pa.choose({"fp32": 100.0, "bf16": 150.0, "fp16": 180.0}) == "fp16"


def test_an_avx2_cpu_is_never_measured_and_never_gets_bf16_or_fp16(monkeypatch):
    cpu(monkeypatch, AVX2)
    fake = FakeMeasure(fp32=10.0, bf16=1000.0, fp16=1000.0)
    assert autocast_dtype(CPU, "auto", backbone="tiny", measure=fake) is None
    assert fake.calls == []
    # forced (doctor, bench/): measured, but fp16 is still never a CPU candidate
    monkeypatch.setenv(pa.FORCE_ENV, "1")
    assert autocast_dtype(CPU, "auto", backbone="tiny", measure=fake) == torch.bfloat16
    assert fake.calls == [["fp32", "bf16"]]


def test_a_choice_is_measured_once_and_remembered_per_device_backbone_and_torch(monkeypatch):
    cpu(monkeypatch, AVX512_BF16, "AVX512")
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
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert autocast_dtype(CPU, "auto", backbone="lite0", measure=again) is None and len(again.calls) == 1
    # explicit precisions are never measured
    assert autocast_dtype(CPU, "bf16", measure=again) == torch.bfloat16 and len(again.calls) == 1
    assert {e["key"]["backbone"] for e in pa.remembered()} == {"lite0", "resnet18"}


def test_runs_record_and_use_what_auto_chose(tmp_path, monkeypatch):
    """A head fine-tune and a probe on a CPU whose (fake) measurement found bf16 faster: both record bf16,
    train/extract under bf16 autocast, and the feature cache keys the bf16 features apart from fp32 ones."""
    cpu(monkeypatch, AVX512_BF16, "AVX512")
    fake = FakeMeasure(fp32=10.0, bf16=20.0)
    monkeypatch.setattr(finetune_module, "measure_model", lambda *a, **k: fake(a[3]))
    monkeypatch.setattr(features_module, "measure_model", lambda *a, **k: fake(a[3]))
    reference = FakeMeasure(fp32=20.0, bf16=10.0)  # the reference network is no guide for resnet18 here
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
    # one measurement for resnet18 on this CPU, shared by training and extraction (and one of the reference
    # network, which engine.train.prepare asks before the model is built)
    assert len(fake.calls) == 1 and len(reference.calls) == 1
    assert {e["key"]["backbone"] for e in pa.remembered()} == {"resnet18", "reference"}
    head = read_json(f"{results['head']['run_dir']}/config.json")
    assert head["precision"] == "auto" and head["precision_resolved"] == "bf16"
    assert results["probe"]["extract_precision"] == "bf16" and seen and set(seen) == {torch.bfloat16}
    cached = list((pa.cache_dir() / "features").glob("resnet18-*/*.pt"))
    assert len(cached) == 1 and torch.load(cached[0], weights_only=True)["key"]["precision"] == "bf16"


def test_doctor_shows_the_choice_the_rates_and_the_cpu_flags(monkeypatch):
    from engine.cli.commands.doctor import precision_report

    cpu(monkeypatch, AVX512_BF16, "AVX512")
    fake = FakeMeasure(fp32=27.1, bf16=35.9)
    monkeypatch.setattr(pa, "measure_model", lambda *a, **k: fake(a[3]))
    report = precision_report("cpu")
    assert report["auto"] == "bf16" and report["rates"] == {"fp32": 27.1, "bf16": 35.9}
    assert report["cpu"] == "Intel Xeon" and "avx512_bf16" in report["cpu_flags"]
    assert [(e["backbone"], e["choice"]) for e in report["remembered"]] == [("reference", "bf16")]
    # --measure-precision measures again, even on an AVX2 CPU (where auto alone never measures)
    cpu(monkeypatch, AVX2)
    assert precision_report("cpu")["rates"] == {} and len(fake.calls) == 1
    monkeypatch.setenv(pa.FORCE_ENV, "0")
    slow = FakeMeasure(fp32=50.0, bf16=3.8)
    monkeypatch.setattr(pa, "measure_model", lambda *a, **k: slow(a[3]))
    forced = precision_report("cpu", measure=True)
    assert forced["auto"] == "fp32" and forced["rates"] == {"fp32": 50.0, "bf16": 3.8}

"""Speeds one can trust (issue 24 item 4): warm-up calls are not timed, an outlier call is dropped, each cached
speed says when, where and under what load it was timed, `remeasure` times again, an old or busy speed is
tagged, and a speed cached by the earlier method (version 1) is not reused."""

from __future__ import annotations

import json
import statistics
import time

import pytest
import torch

import engine.evaluate.speed as speed
from engine.evaluate.speed import backbone_speed, robust_median, speed_age, speed_key


def test_an_outlier_call_is_dropped_and_the_median_is_of_the_rest():
    times = [0.010, 0.011, 0.0105, 0.0102, 0.0108, 0.0101, 1.5]  # one call while the CPU was taken
    median, dropped, spread = robust_median(times)
    assert dropped == 1
    assert median == pytest.approx(statistics.median(times[:-1]))  # the median of the six kept calls
    assert spread < 0.2
    assert robust_median([0.01, 0.02]) == (0.015, 0, 0.0)  # too few to judge: nothing dropped


def test_warm_up_calls_are_run_but_not_timed(monkeypatch):
    calls = []
    monkeypatch.setattr(speed, "BUDGET_S", 0.0)
    times = speed._timed(lambda: calls.append(1), lambda: None, None)
    assert len(times) == speed.MIN_RUNS  # the budget spent: the minimum of timed calls
    assert len(calls) == speed.WARMUP_RUNS + len(times)


def fake_measure(counter: list):
    def measure(model, size, device, batch, check=None):
        counter.append((size, str(device), batch))
        return {"images_per_s": 100.0, "latency_ms": 10.0, "batch": batch,
                "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "device": speed.device_label(device),
                "busy": False, "load": 0.1}
    return measure


def test_a_cached_speed_is_reused_until_remeasured_and_says_when_and_where(monkeypatch):
    timed: list = []
    monkeypatch.setattr(speed, "measure_speed", fake_measure(timed))
    cpu = torch.device("cpu")
    first, hit = backbone_speed("efficientnet_lite0", 32, cpu, lambda: None, 8)
    assert not hit and len(timed) == 1
    assert first["device"] == speed.device_label(cpu) and first["measured"]
    again, hit = backbone_speed("efficientnet_lite0", 32, cpu, lambda: None, 8)
    assert hit and again == first and len(timed) == 1
    fresh, hit = backbone_speed("efficientnet_lite0", 32, cpu, lambda: None, 8, remeasure=True)
    assert not hit and len(timed) == 2


def test_a_speed_of_the_earlier_method_is_not_reused(monkeypatch):
    timed: list = []
    monkeypatch.setattr(speed, "measure_speed", fake_measure(timed))
    cpu = torch.device("cpu")
    v1 = json.loads(speed_key("efficientnet_lite2", 32, 8, cpu))
    v1["v"] = 1
    # what issue 24 found cached for good: 1,514 ms per image, with no date
    speed.SpeedCache().put(json.dumps(v1, sort_keys=True), {"images_per_s": 0.7, "latency_ms": 1514.0})
    entry, hit = backbone_speed("efficientnet_lite2", 32, cpu, lambda: None, 8)
    assert not hit and len(timed) == 1 and entry["latency_ms"] == 10.0


def test_busy_and_old_speeds_are_tagged():
    now = time.time()
    day = 86400
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now - 40 * day))
    assert speed_age({"measured": stamp}, now) == "40 d old"
    assert speed_age({"measured": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now))}, now) == ""
    assert speed_age({"measured": stamp, "busy": True}, now) == "busy"
    assert speed_age({"images_per_s": 1.0}, now) == "old"  # no date: cached before dates were kept


def test_a_measurement_records_its_load_and_marks_a_busy_machine(monkeypatch):
    """measure_speed on a real (tiny) network: the fields are there; a loaded machine is marked busy."""
    from engine.features.candidates import build_backbone

    monkeypatch.setattr(speed, "BUDGET_S", 0.0)
    monkeypatch.setattr(speed, "WARMUP_RUNS", 1)
    monkeypatch.setattr(speed, "MIN_RUNS", 2)
    model = build_backbone("efficientnet_lite0", "random")
    monkeypatch.setattr(speed, "machine_load", lambda: 0.2)
    quiet = speed.measure_speed(model, 32, torch.device("cpu"), 2)
    assert quiet["busy"] is False and quiet["load"] == 0.2 and quiet["runs"] == [2, 2]
    assert quiet["device"] == speed.device_label(torch.device("cpu")) and quiet["measured"]
    monkeypatch.setattr(speed, "machine_load", lambda: 3.5)
    assert speed.measure_speed(model, 32, torch.device("cpu"), 2)["busy"] is True

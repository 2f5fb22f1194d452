"""Tests never write into the checkout or the user's caches: module-scoped fixtures (set up before any test's
own environment) see an isolated TLBENCH_RUNS / TLBENCH_CACHE / TORCH_HOME / HF_HOME too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

KEYS = ("TLBENCH_RUNS", "TLBENCH_CACHE", "TORCH_HOME", "HF_HOME", "TLBENCH_STATE")


@pytest.fixture(scope="module")
def module_env():
    return {k: os.environ.get(k) for k in KEYS} | {"HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE")}


def test_a_module_fixture_sees_temporary_folders_and_no_network(module_env, tmp_path_factory):
    base = tmp_path_factory.getbasetemp().resolve()
    for key in KEYS:
        assert module_env[key] is not None and Path(module_env[key]).resolve().is_relative_to(base), key
    assert module_env["HF_HUB_OFFLINE"] == "1"

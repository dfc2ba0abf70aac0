"""config/gunicorn.py: what a web worker does once the app is loaded."""

import gc
import importlib.util
from pathlib import Path

import pytest

CONFIG = Path(__file__).resolve().parents[2] / "config" / "gunicorn.py"


def _load_config(monkeypatch, **env: str):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.spec_from_file_location("gunicorn_config_under_test", CONFIG)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def collector_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.parametrize(("env", "expected_gen0"), [({}, 50000), ({"GUNICORN_GC_GEN0_THRESHOLD": "20000"}, 20000)])
def test_a_worker_freezes_the_loaded_app_and_collects_its_youngest_objects_less_often(
    monkeypatch, collector_restored, env, expected_gen0
):
    gc.set_threshold(700, 10, 10)
    _load_config(monkeypatch, **env).post_worker_init(worker=None)
    assert gc.get_threshold() == (expected_gen0, 10, 10)
    assert gc.get_freeze_count() > 0


def test_zero_keeps_python_s_threshold(monkeypatch, collector_restored):
    gc.set_threshold(700, 10, 10)
    _load_config(monkeypatch, GUNICORN_GC_GEN0_THRESHOLD="0").post_worker_init(worker=None)
    assert gc.get_threshold() == (700, 10, 10)

"""A served worker (`prefloop serve`) settles its heap once started: the garbage collector's full
collections stop walking the objects the app's imports left, and young collections run less often;
an app built for tests or embedding leaves the process's collector as it found it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.main import YOUNG_GC_THRESHOLD, create_app, create_served_app


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The collector as the test process had it, whatever the test did to it."""
    threshold = gc.get_threshold()
    gc.unfreeze()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _tracked() -> int:
    """Objects the collector's full collections walk (frozen ones are not among them)."""
    return sum(len(gc.get_objects(generation)) for generation in range(3))


def test_a_served_worker_freezes_what_its_imports_left(restored_gc: None) -> None:
    gc.collect()  # what earlier tests left behind is garbage, not the worker's own objects
    before = _tracked()
    with TestClient(create_served_app()) as client:
        assert client.get("/healthz").status_code == 200
        # The modules, classes and functions behind the app: tens of thousands of objects that
        # a full collection would otherwise walk (up to 150 ms of a blocked event loop under load).
        assert gc.get_freeze_count() >= 0.9 * before
        assert _tracked() < before / 10
        assert gc.get_threshold()[0] == YOUNG_GC_THRESHOLD


def test_an_app_built_for_tests_leaves_the_collector_alone(restored_gc: None) -> None:
    threshold = gc.get_threshold()
    with TestClient(create_app()) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == threshold

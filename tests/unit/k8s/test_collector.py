"""The operator process's garbage collector thresholds (see dagwright.k8s.collector for why)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dagwright.k8s import collector


@pytest.fixture(autouse=True)
def _restored() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


def test_young_collections_wait_for_a_large_parsed_document_and_higher_settings_are_kept() -> None:
    gc.set_threshold(700, 10, 10)
    collector.tune()
    assert gc.get_threshold() == (collector.YOUNG, collector.MIDDLE, 10)
    gc.set_threshold(200_000, 50, 5)
    collector.tune()
    assert gc.get_threshold() == (200_000, 50, 5)

"""Hypothesis profiles for the unit tests: `dev` (default, quick) and `ci` (more examples).

Choose with HYPOTHESIS_PROFILE=ci. Deadlines are off: a planner loop over a random DAG takes a variable time,
and a slow CI machine must not turn that into a flaky failure.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    # Hypothesis touches mypy_extensions.TypedDict (deprecated) while it reports a failing example; with
    # warnings as errors that would hide the report behind an INTERNALERROR.
    config.addinivalue_line("filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

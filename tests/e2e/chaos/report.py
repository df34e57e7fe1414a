"""Where a chaos scenario puts its counts: printed (pytest -s shows them) and, when DAGWRIGHT_CHAOS_REPORT
names a file (as `make chaos` does), appended to it as one JSON line."""

from __future__ import annotations

import json
import os
from typing import Any


def publish(scenario: str, report: dict[str, Any]) -> None:
    line = json.dumps({"scenario": scenario, **report})
    print(f"\n{line}")
    target = os.environ.get("DAGWRIGHT_CHAOS_REPORT")
    if target:
        with open(target, "a") as out:
            out.write(line + "\n")

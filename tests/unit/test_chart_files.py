"""The Helm chart ships the same CRD the models generate, and its values stay within its own schema."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from dagwright import crd

CHART = Path(__file__).resolve().parents[2] / "charts" / "dagwright"


def test_chart_crd_is_the_generated_crd() -> None:
    assert (CHART / "crds" / "workflows.dagwright.io.yaml").read_text() == crd.render(), (
        "charts/dagwright/crds is stale: run `dagwright crd > charts/dagwright/crds/workflows.dagwright.io.yaml`"
    )


def test_chart_ships_every_crd_and_no_other() -> None:
    assert sorted(path.name for path in (CHART / "crds").iterdir()) == sorted(kind.file_name for kind in crd.KINDS)


def test_default_values_name_every_top_level_key_the_schema_knows() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(values) <= set(schema["properties"]), set(values) - set(schema["properties"])
    assert set(schema["required"]) <= set(values)


def test_reference_doc_is_generated_from_the_models() -> None:
    from dagwright import reference

    committed = (CHART.parents[1] / "docs" / "reference.md").read_text()
    assert committed == reference.render(), (
        "docs/reference.md is stale: run `dagwright crd --reference > docs/reference.md`"
    )

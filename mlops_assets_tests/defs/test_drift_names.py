"""The drift report names features as the API does, not as the spec's columns."""

import numpy as np
import pandas as pd

from mlops_assets.defs.monitoring.assets import compare_window, drift_document_of, drift_result
from mlops_assets.lib import drift as drift_lib


def test_drift_tables_and_gauges_use_the_api_field_names(builtin_specs):
    spec = builtin_specs["abalone"]
    columns = [c.name for c in spec.feature_columns]
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({c: rng.uniform(0, 1, 300) for c in columns if c != "Sex"})
    frame["Sex"] = rng.choice(["M", "F", "I"], 300)
    kinds = {c: "categorical" if c == "Sex" else "numeric" for c in columns}
    profile = drift_lib.build_profile(frame, kinds)
    current = frame.assign(**{"Shell weight": frame["Shell weight"] * 3})

    report, _ = compare_window(spec, profile, current)

    fields = [c.field for c in spec.feature_columns]
    assert "Shell_weight" in fields and [f.feature for f in report.features] == fields
    assert report.significant_features() == ["Shell_weight"]
    document = drift_document_of("abalone", report, {"version": 1})
    assert "Shell_weight" in str(document) and "Shell weight" not in str(document)
    result = drift_result(report, None, {"version": 1}, "a", "b")
    assert result.metadata["drifted_features"] == ["Shell_weight"]
    assert "Shell weight" not in str(result.metadata)

"""Schemathesis against the live server's own /openapi.json: no 5xx, no response that breaks the
documented schema, for valid and invalid generated requests alike."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

EXAMPLES_PER_OPERATION = {GenerationMode.POSITIVE: 100, GenerationMode.NEGATIVE: 50}


def fuzz(operation, mode: GenerationMode, base_url: str, sent: list) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION[mode],
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def run(case):
        response = case.call_and_validate(base_url=base_url)
        sent.append(response.status_code)

    try:
        run()
    except Unsatisfiable:
        # nothing to negate in an operation without parameters or body
        assert mode is GenerationMode.NEGATIVE, operation.label


@pytest.mark.slow
def test_fuzz_openapi(live):
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/models/iris/predict", "/models/abalone/invocations"}
    sent: list[int] = []
    for operation in operations:
        for mode in EXAMPLES_PER_OPERATION:
            fuzz(operation, mode, live.url, sent)
    print("fuzz statuses:", {status: sent.count(status) for status in set(sent)})
    assert len(sent) >= 500
    assert not [status for status in sent if status >= 500]
    assert 200 in sent and 422 in sent

"""Who may report outcomes and what an outcome may be (outcomes decide promotions)."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from kfp_mlops.components.serve.feedback import FEEDBACK_TOKEN_ENV, MAX_OUTCOME_CHARS, FeedbackRefused, check_caller, parse_outcomes

NOW = datetime(2026, 11, 28, tzinfo=timezone.utc)


def test_with_a_token_set_only_its_bearer_may_write():
    env = {FEEDBACK_TOKEN_ENV: "s3cret"}
    check_caller({"authorization": "Bearer s3cret"}, env)
    check_caller({}, {})  # no token configured: open, as on a laptop
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}, {"authorization": "Bearer s3cret "}):
        with pytest.raises(FeedbackRefused) as refused:
            check_caller(headers, env)
        assert refused.value.status == 401 and FEEDBACK_TOKEN_ENV in str(refused.value)


def test_labels_and_numbers_are_outcomes():
    outcomes = parse_outcomes(orjson.dumps({"outcomes": [{"request_id": "a", "outcome": "yes"}, {"request_id": "b", "outcome": 1}, {"request_id": "c", "outcome": 2.5}]}), NOW)
    assert [(o.request_id, o.outcome) for o in outcomes] == [("a", "yes"), ("b", "1"), ("c", "2.5")]


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"outcomes": []}', b'{"outcomes": [{"outcome": "1"}]}', b'{"outcomes": [{"request_id": "", "outcome": "1"}]}',
     b'{"outcomes": [{"request_id": "a", "outcome": null}]}', b'{"outcomes": [{"request_id": "a", "outcome": {"x": 1}}]}',
     b'{"outcomes": [{"request_id": "a", "outcome": "NaN"}]}', b'{"outcomes": [{"request_id": "a", "outcome": "-Infinity"}]}',
     orjson.dumps({"outcomes": [{"request_id": "a", "outcome": "x" * (MAX_OUTCOME_CHARS + 1)}]})],
)  # fmt: skip
def test_anything_else_is_refused_naming_the_item(body):
    with pytest.raises(FeedbackRefused) as refused:
        parse_outcomes(body, NOW)
    assert refused.value.status == 400

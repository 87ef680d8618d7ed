"""``POST /v1/feedback``: who may report outcomes, and what an outcome may be.

Outcomes decide promotions, so they are checked like any other input: with
``KFP_MLOPS_FEEDBACK_TOKEN`` set on the server only a caller with that bearer token (the
application that learns what happened) may write them, and an outcome is a label of at
most ``MAX_OUTCOME_CHARS`` characters or a finite number.
"""

from __future__ import annotations

import hmac
import math
import os
from datetime import datetime
from typing import Any, Mapping

import orjson

FEEDBACK_TOKEN_ENV = "KFP_MLOPS_FEEDBACK_TOKEN"
MAX_OUTCOME_CHARS = 256
NOT_FINITE = ("nan", "inf", "+inf", "-inf", "infinity", "-infinity")


class FeedbackRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_caller(headers: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> None:
    token = environ.get(FEEDBACK_TOKEN_ENV, "")
    if token and not hmac.compare_digest(headers.get("authorization", "").encode(), f"Bearer {token}".encode()):
        raise FeedbackRefused(401, f"feedback needs the header 'Authorization: Bearer <token>' ({FEEDBACK_TOKEN_ENV} is set on this server)")


def parse_outcomes(raw: bytes, now: datetime) -> list[Any]:
    """The outcomes of a feedback body, or FeedbackRefused(400) naming the first bad item."""
    from kfp_mlops.components._shared.prediction_log import Outcome

    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FeedbackRefused(400, f"the body is not valid JSON ({exc})") from None
    items = body.get("outcomes") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise FeedbackRefused(400, 'the body needs "outcomes": a non-empty list of {"request_id": ..., "outcome": ...}')
    outcomes = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("request_id"), str) or not item["request_id"] or "outcome" not in item:
            raise FeedbackRefused(400, f"outcomes[{i}]: needs a non-empty text request_id and an outcome")
        outcome = item["outcome"]
        if isinstance(outcome, (dict, list)) or outcome is None or (isinstance(outcome, float) and not math.isfinite(outcome)):
            raise FeedbackRefused(400, f"outcomes[{i}]: outcome must be a label or a number, not {type(outcome).__name__}")
        if isinstance(outcome, str) and (len(outcome) > MAX_OUTCOME_CHARS or outcome.strip().lower() in NOT_FINITE):
            raise FeedbackRefused(400, f"outcomes[{i}]: outcome must be a label of at most {MAX_OUTCOME_CHARS} characters or a finite number")
        outcomes.append(Outcome(item["request_id"], outcome if isinstance(outcome, str) else orjson.dumps(outcome).decode(), now))
    return outcomes

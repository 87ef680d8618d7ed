"""How a component body ends on a known error: the message alone, and the error's exit code."""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Iterator

from kfp_mlops.components._shared.errors import KfpMlopsError


@contextlib.contextmanager
def exit_on_error(step: str) -> Iterator[None]:
    """Turn a ``KfpMlopsError`` into a clear stderr message and a non-zero exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        yield
    except KfpMlopsError as exc:
        print(f"\nkfp-mlops {step} failed: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None

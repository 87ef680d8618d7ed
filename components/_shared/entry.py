"""How a component body ends on a known error: the message alone, and the error's exit code.

Every message and log line passes through secret redaction first. A full disk or a
read-only output volume is an infrastructure failure (exit 3), named as such, not a
traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import logging
import sys
from typing import Iterator

from kfp_mlops.components._shared.errors import KfpMlopsError
from kfp_mlops.components._shared.redact import install_log_redaction, redact_text

# errno values that mean "the machine, not the data": the step may succeed on retry or elsewhere.
INFRASTRUCTURE_ERRNOS = {
    errno.ENOSPC: ("no space left on the device", "give the step more disk (ephemeral-storage request) or write to a larger volume"),
    errno.EDQUOT: ("the disk quota is exhausted", "raise the quota or free space"),
    errno.EROFS: ("the output location is read-only", "write outputs to a writable volume"),
}


@contextlib.contextmanager
def exit_on_error(step: str) -> Iterator[None]:
    """Turn a ``KfpMlopsError`` (or a full disk) into a clear stderr message and a non-zero exit."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    atexit.unregister(_skip_final_collections)
    atexit.register(_skip_final_collections)  # runs after the handlers libraries register later (atexit is last in, first out)
    try:
        yield
    except KfpMlopsError as exc:
        print(f"\nkfp-mlops {step} failed: {printable(redact_text(str(exc)))}\n{exit_line(exc.exit_code)}", file=sys.stderr, flush=True)
        raise SystemExit(exc.exit_code) from None
    except OSError as exc:
        known = INFRASTRUCTURE_ERRNOS.get(exc.errno or -1)
        if known is None:
            raise
        problem, fix = known
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"\nkfp-mlops {step} failed: {problem}{redact_text(where)}.\nWhat to do: {fix}\n{exit_line(3)}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None


def _skip_final_collections() -> None:
    """A step's interpreter holds torch, MLflow or Feast: the garbage collections Python runs while it shuts
    down took ~1 s of each such step and free nothing the OS does not. Frozen objects are not collected;
    finalizers and the exit status are untouched."""
    gc.disable()
    gc.freeze()


def printable(text: str) -> str:
    """``text`` with control and other unprintable characters escaped: a parser's message about a binary
    file quotes its bytes, which would otherwise garble the terminal."""
    return "".join(c if c.isprintable() or c in "\n\t" else repr(c)[1:-1] for c in text)


EXIT_MEANINGS = {2: "bad input or settings: fix them, then run again", 3: "infrastructure: the same step may succeed when retried"}


def exit_line(code: int) -> str:
    """The last line of a failed step: orchestrators that lose the exit status (kfp.local) read it here."""
    return f"(exit code {code}: {EXIT_MEANINGS.get(code, 'failed')})"

"""Secrets never leave the process: user info and credential query parameters are cut
from every URI before it is logged, stored in metadata or rendered in a report.

``redact_uri`` is for one URI the code holds (a source, a tracking server); ``redact_text``
scrubs any text (an exception message from a client library, a log line) of URIs that
carry credentials. ``install_log_redaction`` applies ``redact_text`` to every log record.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from typing import Any, Iterator, TextIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Query parameters that carry credentials in the URLs users paste: signed object-store
# URLs (AWS, GCS, Azure SAS), OAuth-style tokens and API keys.
_SECRET_KEYS = (
    r"x-amz-(?:signature|credential|security-token)|x-goog-(?:signature|credential)|sig|signature|"
    r"token|access_token|id_token|api[-_]?key|apikey|key|password|passwd|pwd|secret|client_secret|auth"
)
SECRET_QUERY_KEYS = re.compile(rf"(?i)^(?:{_SECRET_KEYS})$")
# scheme://userinfo@ : userinfo may hold ':' and anything but '/', '@' and whitespace.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s'\"<>]+)@")
_QUERY_SECRET = re.compile(rf"(?P<key>[?&;](?:{_SECRET_KEYS})=)(?P<value>[^&#\s'\"<>]+)", re.I)
_PASSWORD_OPTION = re.compile(r"(?i)(?P<key>\bpassword\s*[=:]\s*[\"']?)(?P<value>[^,\s'\"<>&]+)")


def redact_uri(uri: str) -> str:
    """``uri`` without user info and with credential query values masked.

    >>> redact_uri("https://alice:s3cret@host/data.csv?X-Amz-Signature=abc&v=1")
    'https://host/data.csv?X-Amz-Signature=***&v=1'
    """
    if "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
    except ValueError:
        return redact_text(uri)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(SECRET_QUERY_KEYS.match(k) for k, _ in pairs):
            query = urlencode([(k, MASK if SECRET_QUERY_KEYS.match(k) else v) for k, v in pairs], safe="*")
    if netloc == parts.netloc and query == parts.query:
        return uri  # rebuilding would change URIs such as sqlite:////abs/path
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_text(text: str) -> str:
    """``text`` with user info of every URI dropped, credential query values and ``password=``
    options masked (client libraries put the URL they failed on into their messages)."""
    text = _USERINFO.sub(lambda m: m.group("scheme"), text)
    text = _QUERY_SECRET.sub(lambda m: m.group("key") + MASK, text)
    return _PASSWORD_OPTION.sub(lambda m: m.group("key") + MASK, text)


class RedactingStream:
    """A text stream that scrubs what is written through it (wraps sys.stdout/sys.stderr).

    kfp.local echoes each step's output line by line, including the executor input
    KFP logs before any of our code runs; the CLI passes it through this.
    """

    def __init__(self, inner: TextIO) -> None:
        self.inner = inner

    def write(self, text: str) -> int:
        self.inner.write(redact_text(text))
        return len(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@contextlib.contextmanager
def redacted_console() -> Iterator[None]:
    """sys.stdout and sys.stderr scrubbed of secrets for the duration."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)  # type: ignore[assignment]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


class _RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


def install_log_redaction() -> None:
    """Scrub every record that reaches the root logger's handlers (idempotent)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, _RedactingFilter) for f in handler.filters):
            handler.addFilter(_RedactingFilter())

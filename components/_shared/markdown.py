"""Markdown for the Kubeflow UI: user data is escaped so that it renders as text."""

from __future__ import annotations

import html
from typing import Iterable, Sequence

_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_{}[]()#+-.!|<>"})


def _one_line(value: object) -> str:
    """Line breaks would end a table row or a list item: user data stays on its line."""
    return " ".join(str(value).splitlines())


def md_text(value: object) -> str:
    """Text that Markdown (and the HTML it may contain) shows literally."""
    return html.escape(_one_line(value), quote=False).translate(_MD_SPECIAL)


def md_code(value: object) -> str:
    """Inline code; backticks inside are replaced so the span cannot be broken out of."""
    return "`" + html.escape(_one_line(value).replace("`", "'"), quote=False) + "`"


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A Markdown table with every cell escaped."""
    lines = ["| " + " | ".join(md_text(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)

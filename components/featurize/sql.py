"""Quoting for the DuckDB SQL featurize builds from user column names and paths."""


def ident(name: str) -> str:
    """A quoted identifier: any column name, quotes included, stays one identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A quoted string literal (file paths, timestamps)."""
    return "'" + text.replace("'", "''") + "'"

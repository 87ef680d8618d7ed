"""Our schema as a Great Expectations 1.x suite: the same contract, for teams that run GX.

Each rule of the schema becomes the expectation that checks the same thing, with the
severity our own check gives it (GX ``critical`` for our errors), so validate finds the
same problems with either reference:

=============================  ==============================================  ========
schema                         expectation                                     severity
=============================  ==============================================  ========
every column                   expect_column_to_exist                          critical
no other columns               expect_table_columns_to_match_set               warning
kind                           expect_column_values_to_be_in_type_list or      critical
                               expect_column_values_to_be_of_type (times)
nullable: false                expect_column_values_to_not_be_null             warning
min and max                    expect_column_values_to_be_between              warning
domain                         expect_column_values_to_be_in_set               warning
label_classes                  expect_column_values_to_be_in_set (the label)   critical
key_columns                    expect_column_values_to_not_be_null per key,    critical
                               expect_column_values_to_be_unique (one key) or
                               expect_compound_columns_to_be_unique
=============================  ==============================================  ========

Histograms (distribution skew) have no counterpart among the expectations we enforce;
they stay in our schema. Keys get no range, as in our own check.

Types are written as Great Expectations' pandas backend checks them
(``gx_types.export_type_check``), so that the suite passes there on the data the schema
came from: numbers list every integer and float width (an integer column with a null is
float64 in pandas), text is ``str``, true/false ``bool``. A time column keeps its flavour,
stricter than our schema: a zoned timestamp (ingest writes ``timestamp[us, tz=UTC]``) is
``expect_column_values_to_be_of_type`` ``Timestamp``, a naive one ``datetime64``, a date
``date``; no type name matches a zoned column in a type list there. Dictionary-encoded
(pandas category), nested and binary columns get no type expectation: no name matches them.

``python -m kfp_mlops.components.validate.gx_export SCHEMA.json -o SUITE.json`` writes one.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from kfp_mlops.components.validate.gx_types import export_type_check
from kfp_mlops.components.validate.schema import SCHEMA_VERSION, ColumnSchema, DatasetSchema


def _expectation(kind: str, severity: str, **kwargs: Any) -> dict[str, Any]:
    return {"type": kind, "kwargs": kwargs, "meta": {}, "severity": severity}


def _typed(values: list[str], column: ColumnSchema) -> list[Any]:
    """Domain values (stored as text) as the column's own values, so that GX compares like with like."""
    out: list[Any] = []
    for text in values:
        try:
            if column.kind == "integer":
                out.append(int(text))
            elif column.kind == "float":
                out.append(float(text))
            elif column.kind == "boolean":
                out.append({"true": True, "false": False}[text.strip().lower()])
            else:
                out.append(text)
        except (ValueError, KeyError):
            out.append(text)  # never matches: the same verdict our own check gives it
    return out


def schema_to_suite(schema: DatasetSchema, *, name: str = "kfp-mlops") -> dict[str, Any]:
    """The GX 1.x suite JSON (as ``suite.to_json_dict()`` writes it) that checks what ``schema`` checks."""
    keys = set(schema.key_columns)
    expectations = [_expectation("expect_column_to_exist", "critical", column=c.name) for c in schema.columns]
    expectations.append(_expectation("expect_table_columns_to_match_set", "warning", column_set=[c.name for c in schema.columns], exact_match=True))
    for column in schema.columns:
        type_check = export_type_check(column.kind, column.type)
        if type_check is not None:
            kind, kwargs = type_check
            expectations.append(_expectation(kind, "critical", column=column.name, **kwargs))
        if column.name in keys:
            expectations.append(_expectation("expect_column_values_to_not_be_null", "critical", column=column.name))
            continue  # ids and event times of new data are new by design: no range, no domain
        if not column.nullable:
            expectations.append(_expectation("expect_column_values_to_not_be_null", "warning", column=column.name))
        if column.min is not None and column.max is not None:
            expectations.append(_expectation("expect_column_values_to_be_between", "warning", column=column.name, min_value=column.min, max_value=column.max))
        if column.domain is not None:
            expectations.append(_expectation("expect_column_values_to_be_in_set", "warning", column=column.name, value_set=_typed(column.domain, column)))
    if schema.label_column and schema.label_classes is not None and schema.column(schema.label_column) is not None:
        label = schema.column(schema.label_column)
        expectations.append(_expectation("expect_column_values_to_be_in_set", "critical", column=label.name, value_set=_typed(schema.label_classes, label)))
    if len(schema.key_columns) == 1:
        expectations.append(_expectation("expect_column_values_to_be_unique", "critical", column=schema.key_columns[0]))
    elif schema.key_columns:
        # "never": a row whose keys are all null still counts, as our own duplicate check counts it.
        expectations.append(_expectation("expect_compound_columns_to_be_unique", "critical", column_list=list(schema.key_columns), ignore_row_if="never"))
    return {"name": name, "id": None, "expectations": expectations, "meta": {"kfp_mlops_schema_version": SCHEMA_VERSION}, "notes": None}


def main(argv: Sequence[str] | None = None) -> int:
    """``kfp-mlops schema-to-suite``: a schema file in, a GX suite file out."""
    from kfp_mlops.components._shared.atomic import write_json_atomic
    from kfp_mlops.components._shared.errors import KfpMlopsError, SchemaError
    from kfp_mlops.components.validate.gx_suite import load_reference

    parser = argparse.ArgumentParser(prog="kfp-mlops schema-to-suite", description="Write validate's schema as a Great Expectations 1.x expectation suite (JSON).")
    parser.add_argument("schema", type=Path, help="the schema artifact written by validate")
    parser.add_argument("-o", "--output", type=Path, default=None, help="suite file to write (default: print it)")
    parser.add_argument("--name", default="", help="the suite's name (default: the schema file's name)")
    args = parser.parse_args(argv)
    try:
        if args.output is not None and _same_file(args.output, args.schema):
            raise SchemaError("the output is the schema file itself: writing the suite would replace the schema", where=str(args.output), fix="write the suite to another file, e.g. -o suite.json")
        schema = load_reference(args.schema)
        if not isinstance(schema, DatasetSchema):
            raise SchemaError("this is already an expectation suite", where=str(args.schema), fix="pass the schema artifact written by validate")
        suite = schema_to_suite(schema, name=args.name or args.schema.stem)
        if args.output is None:
            import json

            print(json.dumps(suite, indent=2))
        else:
            write_json_atomic(args.output, suite)
            print(f"wrote {args.output} ({len(suite['expectations'])} expectations)")
    except KfpMlopsError as exc:
        print(f"kfp-mlops schema-to-suite: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"kfp-mlops schema-to-suite: cannot write {args.output or 'to standard output'}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())

"""Every bad input ends in a typed error that names the problem, where, and what to do, and leaves no output."""

from __future__ import annotations

import pytest

from kfp_mlops.components._shared.errors import (
    DataError,
    SourceAccessDeniedError,
    SourceError,
    SourceNotFoundError,
    UnsupportedSourceError,
)
from kfp_mlops.components.ingest.core import IngestOptions, ingest
from kfp_mlops.components.ingest.formats import CsvOptions


def _assert_fails(tmp_path, uri, error, *fragments, options=IngestOptions()):
    out = tmp_path / "out" / "dataset.parquet"
    with pytest.raises(error) as caught:
        ingest(uri, out, options=options)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert "What to do:" in message
    assert not out.exists()
    leftovers = list(out.parent.iterdir()) if out.parent.exists() else []
    assert leftovers == [], f"partial output left behind: {leftovers}"
    return message


def _write(tmp_path, name, data: bytes | str):
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return str(path)


def test_missing_file(tmp_path):
    _assert_fails(tmp_path, str(tmp_path / "nope.csv"), SourceNotFoundError, "nope.csv", "does not exist")


def test_empty_glob(tmp_path):
    _assert_fails(tmp_path, f"{tmp_path}/*.csv", SourceNotFoundError, "no data files match")


def test_empty_file(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "e.csv", ""), DataError, "e.csv", "empty")


def test_header_only(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "h.csv", "a,b,c\n"), DataError, "h.csv", "header but no data rows")


def test_malformed_line_names_the_line(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "m.csv", "a,b,c\n1,2,3\n4,5,6,7\n8,9,10\n"), DataError, "m.csv, line 3", "malformed CSV line")


def test_wrong_delimiter(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "d.csv", "a;b;c\n1;2;3\n"), DataError, "d.csv", "delimiter is probably ';'")


def test_non_utf8_bytes_name_the_line(tmp_path):
    data = b"name,n\nalpha,1\nbeta,2\nK\xf6ln,3\n"
    _assert_fails(tmp_path, _write(tmp_path, "l.csv", data), DataError, "l.csv, line 4", "not valid utf-8", "latin-1")


def test_truncated_parquet(tmp_path, demo_parquet):
    data = demo_parquet.read_bytes()
    _assert_fails(tmp_path, _write(tmp_path, "t.parquet", data[: len(data) // 2]), DataError, "t.parquet", "not a readable Parquet file")


def test_unsupported_scheme(tmp_path):
    _assert_fails(tmp_path, "ftp://example.com/data.csv", UnsupportedSourceError, "ftp", "s3://")


def test_unknown_extension(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "data.xlsx", "x"), UnsupportedSourceError, "data.xlsx", "pass the format")


def test_http_404(tmp_path, http_root):
    _, base = http_root
    _assert_fails(tmp_path, f"{base}/missing.csv", SourceNotFoundError, "HTTP 404", "missing.csv")


def test_http_403(tmp_path, http_root):
    _, base = http_root
    _assert_fails(tmp_path, f"{base}/denied/x.csv", SourceAccessDeniedError, "HTTP 403")


def test_http_5xx_gives_up_after_retries(tmp_path, http_root):
    root, base = http_root
    (root / "always.csv").write_text("a\n1\n")
    _assert_fails(tmp_path, f"{base}/fail503/99/always.csv", SourceError, "kept failing after retries", "503")


def test_gcs_missing_bucket_and_object(tmp_path, gcs_emulator):
    gcs_emulator.create_bucket("exists")
    _assert_fails(tmp_path, "gs://no-such-bucket/a.csv", SourceNotFoundError, "GCS bucket not found", "gs://no-such-bucket/a.csv")
    _assert_fails(tmp_path, "gs://exists/none.csv", SourceNotFoundError, "GCS object not found")


def test_s3_missing_object(tmp_path, s3_env):
    s3_env.create_bucket(Bucket="bkt-data")
    _assert_fails(tmp_path, "s3://bkt-data/none.csv", SourceNotFoundError, "S3 object not found")
    _assert_fails(tmp_path, "s3://nobucket/x/", SourceNotFoundError, "S3 bucket not found")


def test_s3_access_denied(tmp_path, s3_locked):
    _assert_fails(tmp_path, s3_locked, SourceAccessDeniedError, "S3 denied access", "credentials")


def test_duplicate_column_names(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "dup.csv", "a,b,a\n1,2,3\n"), DataError, "duplicate column names ['a']")


def test_mixed_types_in_first_block(tmp_path):
    rows = "".join(f"{i},{i * 1.5}\n" for i in range(50)) + "50,unknown\n"
    _assert_fails(tmp_path, _write(tmp_path, "mix.csv", "id,price\n" + rows), DataError, "'price' mixes numbers and text", "row 51", "'unknown'")


def test_mixed_types_after_the_first_block(tmp_path):
    # Types are inferred from the first 4 MiB block; a text value later breaks the numeric column.
    rows = "".join(f"{i},{i % 97}\n" for i in range(600_000)) + "600000,oops\n"
    _assert_fails(tmp_path, _write(tmp_path, "late.csv", "id,qty\n" + rows), DataError, "'qty' mixes types", "line 600002", '{"qty": "string"}')


def test_million_character_cell(tmp_path):
    data = "id,text\n1,short\n2," + "x" * 1_000_000 + "\n3,short\n"
    _assert_fails(tmp_path, _write(tmp_path, "big.csv", data), DataError, "'text' row 2", "1,000,000-byte value")


def test_unclosed_quote_swallowing_the_file(tmp_path):
    data = 'id,text\n1,"never closed\n' + "".join(f"{i},{'y' * 100}\n" for i in range(60_000))
    _assert_fails(tmp_path, _write(tmp_path, "q.csv", data), DataError, "q.csv", "quote")


def test_missing_entity_column(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "c.csv", "a,b\n1,2\n"), DataError, "entity column 'user_id' not found", options=IngestOptions(entity_column="user_id"))


def test_files_with_different_columns(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "1.csv").write_text("a,b\n1,2\n")
    (tmp_path / "src" / "2.csv").write_text("a,c\n1,2\n")
    _assert_fails(tmp_path, str(tmp_path / "src"), DataError, "2.csv", "differ from the first file")


def test_bad_delimiter_option(tmp_path):
    _assert_fails(tmp_path, _write(tmp_path, "x.csv", "a\n1\n"), DataError, "one character", options=IngestOptions(csv=CsvOptions(delimiter=";;")))


# Inputs a tired user types: each used to end in a traceback (or in silently wrong data).


@pytest.mark.parametrize(
    "csv_options,fragment",
    [
        (CsvOptions(column_types={"zip": 5}), "column types must map column names to type names"),
        (CsvOptions(column_types=["zip"]), "column types must map column names to type names"),
        (CsvOptions(column_types={"zip": "text"}), "unknown column type 'text'"),
        (CsvOptions(column_types={"Zip": "string"}), "column types name column(s) ['Zip'] that the file does not have"),
        (CsvOptions(encoding="utf-99"), "unknown encoding 'utf-99'"),
        (CsvOptions(delimiter="\n"), "cannot be the CSV delimiter"),
    ],
)
def test_bad_csv_options(tmp_path, csv_options, fragment):
    _assert_fails(tmp_path, _write(tmp_path, "z.csv", "zip,n\n01234,1\n"), DataError, fragment, options=IngestOptions(csv=csv_options))


def test_tab_typed_as_backslash_t(tmp_path):
    # The docs say "\t for TSV"; typed into the KFP UI or a shell, that is two characters.
    result = ingest(_write(tmp_path, "t.tsv", "a\tb\n1\t2\n"), tmp_path / "o.parquet", options=IngestOptions(csv=CsvOptions(delimiter="\\t")))
    assert result.columns == {"a": "int64", "b": "int64", "row_id": "int64", "ingested_at": "timestamp[us, tz=UTC]"}


def test_utf16_without_byte_order_mark(tmp_path):
    path = _write(tmp_path, "u.csv", "a,b\n1,2\n".encode("utf-16-le"))
    _assert_fails(tmp_path, path, DataError, "u.csv", "not valid utf-16", "byte-order mark", options=IngestOptions(csv=CsvOptions(encoding="utf-16")))


@pytest.mark.parametrize(
    "options,fragment",
    [
        (IngestOptions(entity_column="a", timestamp_column="a"), "both the entity and the timestamp column"),
        (IngestOptions(max_cell_bytes=0), "cell limit must be a positive number"),
    ],
)
def test_contradictory_options(tmp_path, options, fragment):
    _assert_fails(tmp_path, _write(tmp_path, "c.csv", "a,b\n1,2\n"), DataError, fragment, options=options)


def test_unknown_format_refused_before_downloading(tmp_path):
    # Nothing listens on port 9: a download attempt would end in retries and a SourceError.
    _assert_fails(tmp_path, "http://127.0.0.1:9/data.csv", UnsupportedSourceError, "unknown file format 'xlsx'", options=IngestOptions(file_format="xlsx"))


def test_credentials_in_an_object_store_uri(tmp_path):
    message = _assert_fails(tmp_path, "s3://AKIAXYZ:hunter2@bucket/data.csv", UnsupportedSourceError, "credentials in an object-store URI", "environment")
    assert "hunter2" not in message


def test_gzipped_parquet(tmp_path, demo_parquet):
    import gzip

    _assert_fails(tmp_path, _write(tmp_path, "d.parquet.gz", gzip.compress(demo_parquet.read_bytes())), DataError, "d.parquet.gz", "compressed as a whole")


def test_component_bad_column_types_json_exits_2(tmp_path, capsys):
    from kfp.dsl import Dataset, Markdown

    from kfp_mlops.components.ingest.component import ingest as component

    for column_types in ('["zip"]', '{"zip": 5}', "{zip: string}"):
        with pytest.raises(SystemExit) as exited:
            component.python_func(
                source_uri=_write(tmp_path, "z.csv", "zip\n1\n"), dataset=Dataset(uri=str(tmp_path / "o" / "d")), summary=Markdown(uri=str(tmp_path / "o" / "s")), column_types=column_types
            )
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert "column_types" in err or "column types" in err
        assert "Traceback" not in err
    assert not (tmp_path / "o").exists() or list((tmp_path / "o").iterdir()) == []


def test_a_date_column_with_a_null_is_ingested_and_fingerprinted_like_its_values(tmp_path):
    """A CSV date column with an empty cell crashed the fingerprint (no cast from 0 to a date)."""
    from kfp_mlops.components.ingest.core import ingest

    with_null, filled = tmp_path / "null.csv", tmp_path / "filled.csv"
    with_null.write_text("id,day,x\n1,2024-01-02,1.5\n2,,2.5\n3,2024-01-04,3\n")
    filled.write_text("id,day,x\n1,2024-01-02,1.5\n2,2024-01-03,2.5\n3,2024-01-04,3\n")
    a = ingest(str(with_null), tmp_path / "a.parquet")
    b = ingest(str(filled), tmp_path / "b.parquet")
    assert a.rows == 3 and a.fingerprint != b.fingerprint, "a null is not the same data as a value"
    assert ingest(str(with_null), tmp_path / "again.parquet").fingerprint == a.fingerprint

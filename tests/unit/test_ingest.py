"""Ingest on real files and real local servers: formats, sources, metadata, fingerprint."""

from __future__ import annotations

import gzip
import json
import shutil

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kfp_mlops.components.ingest.core import INGESTED_AT_COLUMN, ROW_ID_COLUMN, IngestOptions, ingest
from kfp_mlops.components.ingest.formats import CsvOptions

DEMO_OPTS = IngestOptions(entity_column="entity_id", timestamp_column="event_timestamp")


def test_csv_to_parquet_keeps_every_row_and_value(demo_csv, demo_parquet, tmp_path):
    result = ingest(str(demo_csv), tmp_path / "out.parquet", options=DEMO_OPTS)
    table = pq.read_table(result.path)
    expected = pq.read_table(demo_parquet)
    assert result.rows == table.num_rows == expected.num_rows == 20_000
    assert table.column("amount").to_pylist() == expected.column("amount").to_pylist()
    assert table.column("country").to_pylist() == expected.column("country").to_pylist()
    assert table.column("tenure_days").null_count == expected.column("tenure_days").null_count > 0
    meta = result.metadata()
    assert meta["rows"] == 20_000 and meta["source_uri"] == str(demo_csv)
    assert list(meta["columns"]) == expected.schema.names
    assert meta["entity_column"] == "entity_id" and meta["timestamp_column"] == "event_timestamp"


def test_fingerprint_same_data_same_print_any_chunking(demo_csv, tmp_path):
    first = ingest(str(demo_csv), tmp_path / "a.parquet", options=DEMO_OPTS)
    # The same rows split over three files (different batch boundaries) give the same fingerprint.
    table = pacsv.read_csv(demo_csv)
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, (start, stop) in enumerate([(0, 7_001), (7_001, 13_333), (13_333, 20_000)]):
        pacsv.write_csv(table.slice(start, stop - start), parts / f"part-{i}.csv")
    (parts / "_SUCCESS").write_text("")
    split = ingest(str(parts), tmp_path / "b.parquet", options=DEMO_OPTS)
    assert split.rows == 20_000 and len(split.files) == 3
    assert split.fingerprint == first.fingerprint
    # Re-ingesting the Parquet output (same types) reproduces it too.
    assert ingest(str(first.path), tmp_path / "c.parquet", options=DEMO_OPTS).fingerprint == first.fingerprint


def test_fingerprint_changes_with_one_value(tmp_path):
    (tmp_path / "a.csv").write_text("k,v\n1,x\n2,y\n")
    (tmp_path / "b.csv").write_text("k,v\n1,x\n2,z\n")
    a = ingest(str(tmp_path / "a.csv"), tmp_path / "a.parquet")
    b = ingest(str(tmp_path / "b.csv"), tmp_path / "b.parquet")
    assert a.fingerprint != b.fingerprint


def test_glob_and_file_uri(demo_csv, tmp_path):
    for i in range(2):
        shutil.copy(demo_csv, tmp_path / f"day-{i}.csv")
    (tmp_path / "notes.txt.bak").write_text("ignored by the glob")
    result = ingest(f"file://{tmp_path}/day-*.csv", tmp_path / "out.parquet", options=DEMO_OPTS)
    assert result.rows == 40_000 and len(result.files) == 2


def test_jsonl_and_gzip_csv(tmp_path):
    rows = [{"id": i, "name": f"n{i}", "score": i / 2} for i in range(500)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = ingest(str(tmp_path / "d.jsonl"), tmp_path / "j.parquet")
    assert out.rows == 500 and pq.read_table(out.path).column("score").to_pylist()[3] == 1.5
    with gzip.open(tmp_path / "d.csv.gz", "wt") as fh:
        fh.write("id;name\n" + "".join(f"{i};n{i}\n" for i in range(300)))
    out = ingest(str(tmp_path / "d.csv.gz"), tmp_path / "g.parquet", options=IngestOptions(csv=CsvOptions(delimiter=";")))
    assert out.rows == 300 and pq.read_table(out.path).column("name").to_pylist()[-1] == "n299"


def test_format_override_encoding_and_headerless(tmp_path):
    (tmp_path / "export.dat").write_bytes("city,temp\nK\xf6ln,3\nM\xfcnchen,1\n".encode("latin-1"))
    out = ingest(str(tmp_path / "export.dat"), tmp_path / "o.parquet", options=IngestOptions(file_format="csv", csv=CsvOptions(encoding="latin-1")))
    assert pq.read_table(out.path).column("city").to_pylist() == ["Köln", "München"]
    (tmp_path / "nohead.csv").write_text("1,a\n2,b\n")
    out = ingest(str(tmp_path / "nohead.csv"), tmp_path / "h.parquet", options=IngestOptions(csv=CsvOptions(header=False)))
    assert pq.read_table(out.path).schema.names[:2] == ["f0", "f1"]


def test_forced_column_types(tmp_path):
    (tmp_path / "z.csv").write_text("zip,n\n01234,1\n98765,2\n")
    out = ingest(str(tmp_path / "z.csv"), tmp_path / "o.parquet", options=IngestOptions(csv=CsvOptions(column_types={"zip": "string"})))
    assert pq.read_table(out.path).column("zip").to_pylist() == ["01234", "98765"]


def test_generated_row_id_and_ingestion_time(tmp_path):
    (tmp_path / "plain.csv").write_text("x,y\n1,2\n3,4\n5,6\n")
    result = ingest(str(tmp_path / "plain.csv"), tmp_path / "o.parquet")
    table = pq.read_table(result.path)
    assert result.entity_column == ROW_ID_COLUMN and result.timestamp_column == INGESTED_AT_COLUMN
    assert table.column(ROW_ID_COLUMN).to_pylist() == [0, 1, 2]
    assert table.column(INGESTED_AT_COLUMN).type == pa.timestamp("us", tz="UTC")
    assert table.column(INGESTED_AT_COLUMN).null_count == 0


def test_http_source_with_transient_failures(http_root, demo_csv, tmp_path):
    root, base = http_root
    shutil.copy(demo_csv, root / "demo.csv")
    assert ingest(f"{base}/demo.csv", tmp_path / "a.parquet", options=DEMO_OPTS).rows == 20_000
    # Two 503s, then success: retried with backoff.
    assert ingest(f"{base}/fail503/2/demo.csv", tmp_path / "b.parquet", options=DEMO_OPTS).rows == 20_000
    # Two dropped connections, then success.
    assert ingest(f"{base}/reset/2/demo.csv", tmp_path / "c.parquet", options=DEMO_OPTS).rows == 20_000


def test_gcs_object_and_prefix(gcs_emulator, demo_csv, tmp_path):
    bucket = gcs_emulator.create_bucket("ingest-ok")
    for name in ("data/2026/a.csv", "data/2026/b.csv", "data/2026/_SUCCESS"):
        bucket.blob(name).upload_from_filename(str(demo_csv)) if name.endswith(".csv") else bucket.blob(name).upload_from_string("")
    one = ingest("gs://ingest-ok/data/2026/a.csv", tmp_path / "one.parquet", options=DEMO_OPTS)
    assert one.rows == 20_000 and one.files == ["gs://ingest-ok/data/2026/a.csv"]
    prefix = ingest("gs://ingest-ok/data/2026/", tmp_path / "prefix.parquet", options=DEMO_OPTS)
    assert prefix.rows == 40_000 and len(prefix.files) == 2
    glob = ingest("gs://ingest-ok/data/*/b.csv", tmp_path / "glob.parquet", options=DEMO_OPTS)
    assert glob.files == ["gs://ingest-ok/data/2026/b.csv"]
    assert one.fingerprint == glob.fingerprint


def test_s3_object_and_glob(s3_env, demo_parquet, tmp_path):
    s3_env.create_bucket(Bucket="lake")
    for key in ("events/p=1/part-0.parquet", "events/p=2/part-0.parquet"):
        s3_env.upload_file(str(demo_parquet), "lake", key)
    one = ingest("s3://lake/events/p=1/part-0.parquet", tmp_path / "one.parquet", options=DEMO_OPTS)
    assert one.rows == 20_000
    both = ingest("s3://lake/events/*/part-*.parquet", tmp_path / "both.parquet", options=DEMO_OPTS)
    assert both.rows == 40_000 and len(both.files) == 2


def test_markdown_summary_escapes_user_data(tmp_path):
    (tmp_path / "x.csv").write_text('"<script>alert(1)</script>",b\n1,2\n')
    result = ingest(str(tmp_path / "x.csv"), tmp_path / "o.parquet")
    md = result.summary_markdown()
    assert "<script>" not in md and "&lt;script&gt;" in md

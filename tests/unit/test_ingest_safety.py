"""Ingest under hostile or unlucky conditions: secrets in URLs, 20-digit ids, nested columns,
broken compression, a full disk, a killed attempt, and user data in the Markdown summary."""

from __future__ import annotations

import base64
import bz2
import errno
import gzip
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics

from kfp_mlops.components._shared.errors import DataError, SourceAccessDeniedError
from kfp_mlops.components.ingest.component import ingest as ingest_component
from kfp_mlops.components.ingest.core import IngestOptions, ingest
from kfp_mlops.components.validate.component import validate as validate_component
from kfp_mlops.components.validate.core import ValidateOptions, validate, write_outputs

USER, PASSWORD, TOKEN, SIGNATURE = "alice", "pa55-w0rd-SECRET", "tok-SECRET-123", "sig-SECRET-456"
SECRETS = (PASSWORD, TOKEN, SIGNATURE)


class _Server(http.server.SimpleHTTPRequestHandler):
    """Serves a folder to basic auth (alice), ?token= or a signed ?X-Amz-Signature=; /flaky/ answers 503 once;
    /slow/ streams at about 1 MB/s to the first client."""

    seen: set[str] = set()
    lock = threading.Lock()

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        basic = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if not (self.headers.get("Authorization") == basic or query.get("token") == [TOKEN] or query.get("X-Amz-Signature") == [SIGNATURE]):
            self.send_error(401)
            return
        path = parts.path
        with self.lock:
            first = path not in self.seen
            self.seen.add(path)
        if path.startswith("/flaky/") and first:
            self.send_error(503)
            return
        path = path.replace("/flaky/", "/").replace("/slow/", "/")
        if parts.path.startswith("/slow/") and first:
            self._send_slowly(Path(self.directory) / path.lstrip("/"))
            return
        self.path = path
        super().do_GET()

    def _send_slowly(self, file: Path) -> None:
        data = file.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            for start in range(0, len(data), 64 << 10):
                self.wfile.write(data[start : start + (64 << 10)])
                time.sleep(0.06)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture(scope="module")
def secret_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("secret-http")
    rows = "".join(f"u{i},{i % 3},{i * 1.5},{i % 2}\n" for i in range(300))
    (root / "data.csv").write_text("user,group,amount,label\n" + rows)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a, **kw: _Server(*a, directory=str(root), **kw))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, server.server_address[1]
    server.shutdown()


def _assert_no_secret(*texts: str, files: Path | None = None) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, f"secret {secret!r} leaked into: {text[:500]!r}"
    for file in sorted(files.rglob("*")) if files is not None else []:
        if file.is_file():
            data = file.read_bytes()
            assert not any(secret.encode() in data for secret in SECRETS), f"secret leaked into {file}"


def _run_ingest_component(out: Path, **params):
    dataset, summary = Dataset(name="dataset", uri=str(out / "dataset")), Markdown(name="summary", uri=str(out / "summary"))
    returned = ingest_component.python_func(dataset=dataset, summary=summary, **params)
    return returned, dataset


def _run_validate_component(dataset: Dataset, out: Path, **params) -> None:
    kinds = {"schema": Artifact, "statistics": Artifact, "anomalies": Artifact, "report": HTML, "metrics": Metrics}
    artifacts = {n: kind(name=n, uri=str(out / n)) for n, kind in kinds.items()}
    validate_component.python_func(dataset=dataset, **artifacts, resolved_task=str(out / "resolved_task"), **params)


@pytest.mark.parametrize("kind", ["basic_auth", "token", "signed", "retried"])
def test_secrets_never_reach_outputs_logs_or_stdout(kind, secret_server, tmp_path, capsys, caplog):
    _, port = secret_server
    base = f"http://127.0.0.1:{port}"
    uri = {
        "basic_auth": f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/data.csv",
        "token": f"{base}/data.csv?token={TOKEN}",
        "signed": f"{base}/data.csv?X-Amz-Signature={SIGNATURE}&X-Amz-Credential=AKIA",
        "retried": f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/flaky/{kind}-{os.getpid()}/data.csv?token={TOKEN}",
    }[kind]
    if kind == "retried":
        (secret_server[0] / f"{kind}-{os.getpid()}").mkdir(exist_ok=True)
        (secret_server[0] / f"{kind}-{os.getpid()}" / "data.csv").write_text((secret_server[0] / "data.csv").read_text())
    caplog.set_level("INFO")
    # The core functions: what they return is safe to store and show.
    core = ingest(uri, tmp_path / "core" / "dataset.parquet", options=IngestOptions(entity_column="user"))
    assert core.rows == 300, "the credentials were still used to download"
    checked = validate(core.path, options=ValidateOptions(label_column="label", key_columns=("user",)))
    write_outputs(
        checked, schema_path=tmp_path / "core/schema", statistics_path=tmp_path / "core/stats", anomalies_path=tmp_path / "core/anomalies", report_path=tmp_path / "core/report.html", source=uri
    )
    _assert_no_secret(json.dumps(core.metadata()), core.summary_markdown(), files=tmp_path / "core")
    # The component bodies, as a KFP launcher runs them.
    returned, dataset = _run_ingest_component(tmp_path / "ingest", source_uri=uri, entity_column="user")
    assert returned.rows == 300
    _run_validate_component(dataset, tmp_path / "validate", label_column="label", entity_column="user")
    captured = capsys.readouterr()
    assert "ingested 300 rows from http://127.0.0.1:" in captured.out
    if kind == "retried":
        assert any("retry" in r.getMessage() for r in caplog.records), "the retry was logged (and redacted)"
    _assert_no_secret(captured.out, captured.err, caplog.text, *(r.getMessage() for r in caplog.records), json.dumps(dataset.metadata), files=tmp_path)


def test_validate_report_redacts_a_source_from_older_metadata(secret_server, tmp_path, capsys):
    data = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3, 4, 5, 6], "label": [0, 1, 0, 1, 0, 1]}), data)
    dataset = Dataset(name="dataset", uri=str(data), metadata={"source_uri": f"https://{USER}:{PASSWORD}@host/d.csv?token={TOKEN}"})
    _run_validate_component(dataset, tmp_path / "out", label_column="label")
    page = (tmp_path / "out" / "report").read_text()
    assert "https://host/d.csv?token=***" in page
    _assert_no_secret(*capsys.readouterr(), files=tmp_path / "out")


def test_wrong_password_fails_without_showing_it(secret_server, tmp_path, capsys):
    _, port = secret_server
    uri = f"http://{USER}:wrong-{PASSWORD}@127.0.0.1:{port}/data.csv?token=wrong-{TOKEN}"
    with pytest.raises(SourceAccessDeniedError) as caught:
        ingest(uri, tmp_path / "a" / "dataset.parquet")
    assert "HTTP 401" in str(caught.value) and "127.0.0.1" in str(caught.value)
    with pytest.raises(SystemExit) as exited:
        _run_ingest_component(tmp_path / "b", source_uri=uri)
    assert exited.value.code == 3
    _assert_no_secret(str(caught.value), *capsys.readouterr(), files=tmp_path)


def test_basic_auth_from_a_netrc_keeps_the_url_clean(secret_server, tmp_path, monkeypatch):
    """The KFP executor logs its parameters, so a password in the URL reaches the step log before any
    of our code runs; a .netrc mounted from a Secret (NETRC names it) keeps it out of the parameters."""
    _, port = secret_server
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USER} password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert ingest(f"http://127.0.0.1:{port}/data.csv", tmp_path / "out" / "d.parquet").rows == 300


def test_twenty_digit_ids_stay_distinct_and_exact(tmp_path):
    ids = [str(12345678901234567890 + i) for i in range(200)] + ["-98765432109876543210"]
    (tmp_path / "ids.csv").write_text("id,amount\n" + "".join(f"{v},{i * 2.5}\n" for i, v in enumerate(ids)))
    result = ingest(str(tmp_path / "ids.csv"), tmp_path / "out" / "csv.parquet", options=IngestOptions(entity_column="id"))
    column = pq.read_table(result.path).column("id")
    assert column.type == pa.string() and column.to_pylist() == ids and len(set(column.to_pylist())) == 201
    assert result.integer_text_columns == ("id",) and result.metadata()["integer_text_columns"] == ["id"]
    assert "Kept as text:" in result.summary_markdown() and "int64" in result.summary_markdown()
    # JSON Lines: the same ids as JSON numbers.
    (tmp_path / "ids.jsonl").write_text("".join(f'{{"amount": 1.0, "id": {v}}}\n' for v in ids))
    result = ingest(str(tmp_path / "ids.jsonl"), tmp_path / "out" / "json.parquet")
    assert pq.read_table(result.path).column("id").to_pylist() == ids and result.integer_text_columns == ("id",)


def test_large_floats_stay_floats_and_late_big_ids_are_refused_clearly(tmp_path):
    (tmp_path / "f.csv").write_text("x\n1.5e20\n2.5\n12345678901234567890\n")
    result = ingest(str(tmp_path / "f.csv"), tmp_path / "out" / "f.parquet")
    assert pq.read_table(result.path).column("x").type == pa.float64() and result.integer_text_columns == ()
    # The first file sets the column to int64; a 20-digit id in a later file cannot fit.
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "1.csv").write_text("id\n1\n2\n")
    (tmp_path / "parts" / "2.csv").write_text("id\n3\n12345678901234567890\n")
    with pytest.raises(DataError) as caught:
        ingest(str(tmp_path / "parts"), tmp_path / "out2" / "d.parquet")
    message = str(caught.value)
    assert "2.csv, line 3" in message and "beyond the int64 range" in message and '{"id": "string"}' in message
    assert not (tmp_path / "out2").exists() or list((tmp_path / "out2").iterdir()) == []
    from kfp_mlops.components.ingest.formats import CsvOptions

    forced = ingest(str(tmp_path / "parts"), tmp_path / "out2" / "d.parquet", options=IngestOptions(csv=CsvOptions(column_types={"id": "string"})))
    assert pq.read_table(forced.path).column("id").to_pylist() == ["1", "2", "3", "12345678901234567890"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_nested_columns_refused_before_writing(fmt, tmp_path):
    table = pa.table(
        {
            "id": [1, 2],
            "address": [{"city": "Köln", "zip": "50667"}, {"city": "Bonn", "zip": "53111"}],
            "tags": [["a", "b"], []],
            "attrs": pa.array([[("k", 1)], [("j", 2)]], type=pa.map_(pa.string(), pa.int64())),
        }
    )
    if fmt == "parquet":
        pq.write_table(table, tmp_path / "n.parquet")
    else:
        table = table.drop_columns(["attrs"])  # JSON has no map type
        (tmp_path / "n.jsonl").write_text("".join(json.dumps(r) + "\n" for r in table.to_pylist()))
    out = tmp_path / "out" / "dataset"
    with pytest.raises(DataError) as caught:
        ingest(str(tmp_path / f"n.{fmt}"), out)
    message = str(caught.value)
    assert f"n.{fmt}" in message and "'address'" in message and "'tags'" in message and "flatten" in message
    assert ("'attrs'" in message) == (fmt == "parquet") and "'id'" not in message
    assert list(out.parent.iterdir()) == []


def _zstd(data: bytes) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.CompressedOutputStream(sink, "zstd") as stream:
        stream.write(data)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress), (".zst", _zstd)])
@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_broken_compression_is_bad_data_naming_the_file(suffix, compress, fmt, tmp_path):
    rows = [{"id": i, "name": f"n{i}"} for i in range(50_000)]
    raw = ("id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in rows) if fmt == "csv" else "".join(json.dumps(r) + "\n" for r in rows)).encode()
    out = tmp_path / "out" / "dataset"
    (tmp_path / f"ok.{fmt}{suffix}").write_bytes(compress(raw))
    assert ingest(str(tmp_path / f"ok.{fmt}{suffix}"), out).rows == 50_000
    out.unlink()
    (tmp_path / f"plain.{fmt}{suffix}").write_bytes(raw)
    with pytest.raises(DataError, match=rf"plain\.{fmt}\{suffix}: the name ends in \{suffix} but the file is not compressed"):
        ingest(str(tmp_path / f"plain.{fmt}{suffix}"), out)
    packed = compress(raw)
    (tmp_path / f"cut.{fmt}{suffix}").write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError, match=rf"cut\.{fmt}\{suffix}: the \w+ data is truncated or corrupt"):
        ingest(str(tmp_path / f"cut.{fmt}{suffix}"), out)
    assert list(out.parent.iterdir()) == []


def test_gzip_content_under_a_plain_name_is_read(tmp_path):
    (tmp_path / "export.csv").write_bytes(gzip.compress(b"a,b\n1,2\n3,4\n"))
    assert ingest(str(tmp_path / "export.csv"), tmp_path / "o.parquet").rows == 2


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs where this runs as root with mount rights; otherwise None (the test injects ENOSPC)."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mountpoint)], capture_output=True).returncode != 0:
        yield None
        return
    yield mountpoint
    subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_exits_3_naming_the_output_and_leaves_nothing(small_disk, tmp_path, monkeypatch, capsys):
    import numpy as np

    source = tmp_path / "big.parquet"
    pq.write_table(pa.table({"x": np.random.default_rng(0).random(300_000), "y": np.random.default_rng(1).random(300_000)}), source)
    out = small_disk / "out" if small_disk is not None else tmp_path / "out"
    if small_disk is None:

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

        monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    with pytest.raises(SystemExit) as exited:
        _run_ingest_component(out, source_uri=str(source))
    assert exited.value.code == 3
    err = capsys.readouterr().err
    assert f"no space left on the device writing {out / 'dataset'}" in err and "What to do:" in err and "Traceback" not in err
    assert list(out.iterdir()) == [], "a partial output or temp file is left"


def _wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"ingest ended (rc={proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def _start_ingest(uri: str, out: Path, temp: Path) -> subprocess.Popen:
    code = "import sys; from kfp_mlops.components.ingest.core import ingest; ingest(sys.argv[1], sys.argv[2])"
    return subprocess.Popen([sys.executable, "-c", code, uri, str(out)], env={**os.environ, "TMPDIR": str(temp)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _leftovers(out: Path, temp: Path) -> list[Path]:
    return sorted([*out.parent.glob(".*.tmp"), *temp.rglob("*.part"), *temp.glob("kfp-mlops-*")])


def test_retry_after_sigkill_mid_download_cleans_up(secret_server, tmp_path, monkeypatch):
    root, port = secret_server
    (root / "large.csv").write_text("id,v\n" + "".join(f"{i},{i * 3}\n" for i in range(300_000)))  # about 3.5 MB
    uri = f"http://{USER}:{PASSWORD}@127.0.0.1:{port}/slow/large.csv"
    temp, out = tmp_path / "tmp", tmp_path / "out" / "dataset"
    temp.mkdir()
    proc = _start_ingest(uri, out, temp)
    _wait_for(lambda: any(temp.rglob("*.part")), "the download started", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert any(p.suffix == ".part" for p in _leftovers(out, temp)), "the killed attempt left its partial download"
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert ingest(uri, out).rows == 300_000
    assert _leftovers(out, temp) == [] and list(temp.iterdir()) == []
    assert sorted(p.name for p in out.parent.iterdir()) == ["dataset"]


def test_retry_after_sigkill_mid_write_cleans_up(tmp_path, monkeypatch):
    source = tmp_path / "big.csv"
    source.write_text("id,v,w\n" + "".join(f"{i},{i * 7},x{i % 13}\n" for i in range(2_000_000)))  # about 35 MB
    temp, out = tmp_path / "tmp", tmp_path / "out" / "dataset"
    temp.mkdir()
    proc = _start_ingest(str(source), out, temp)
    _wait_for(lambda: any(out.parent.glob(".dataset.*.tmp")) if out.parent.exists() else False, "the output was being written", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert any(p.name.endswith(".tmp") for p in _leftovers(out, temp)), "the killed attempt left its temp output"
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    assert ingest(str(source), out).rows == 2_000_000
    assert _leftovers(out, temp) == [] and sorted(p.name for p in out.parent.iterdir()) == ["dataset"]


def test_summary_escapes_hostile_column_names(tmp_path):
    names = ["<img src=x onerror=alert(1)>", "| **bold** |", "two\nlines # heading", "[link](javascript:alert(1))"]
    pq.write_table(pa.table({n: [1, 2] for n in names}), tmp_path / "h.parquet")
    result = ingest(str(tmp_path / "h.parquet"), tmp_path / "o.parquet", options=IngestOptions(entity_column=names[0]))
    md = result.summary_markdown()
    assert "<img" not in md and "**bold**" not in md and "](javascript" not in md
    table = md[md.index("| column") :].strip().splitlines()
    assert all(line.startswith("|") for line in table), "a column name broke out of the table"
    unescaped_pipes = [len(re.findall(r"(?<!\\)\|", line)) for line in table]
    assert set(unescaped_pipes) == {3}, "a column name added or removed a table cell"
    entity_line = next(line for line in md.splitlines() if line.startswith("- **Entity column:**"))
    assert "&lt;img src=x onerror=alert(1)&gt;" in entity_line

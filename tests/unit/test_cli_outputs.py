"""The paths `kfp-mlops run` prints open as pages in a browser."""

from __future__ import annotations

from kfp_mlops.pipelines.local_run import list_outputs


def test_html_reports_are_listed_under_an_html_name(tmp_path):
    task = tmp_path / "run-1" / "validate"
    task.mkdir(parents=True)
    (task / "report").write_text("\n  <!DOCTYPE html><html><body>ok</body></html>")
    (task / "schema").write_text('{"version": 1}')
    (task / "notes.html").write_text("<html>a file already named .html</html>")

    listed = list_outputs(tmp_path / "run-1")

    names = sorted(p.name for p in listed)
    assert names == ["notes.html", "report.html", "schema"]
    page = task / "report.html"
    assert page.read_text() == (task / "report").read_text()
    assert (task / "report").exists(), "the artifact KFP points at stays in place"
    # A second listing neither duplicates the page nor lists it twice.
    assert sorted(p.name for p in list_outputs(tmp_path / "run-1")) == names


def test_an_unknown_command_is_named_before_the_usage(capsys):
    import pytest

    from kfp_mlops.pipelines.cli import main

    with pytest.raises(SystemExit) as stopped:
        main(["frobnicate"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("kfp-mlops: unknown command 'frobnicate'") and "kfp-mlops run training" in err

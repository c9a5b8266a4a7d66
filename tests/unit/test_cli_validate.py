"""`pipeline validate FILE [--json]`: exit codes, JSON shape, the text report; nothing is ingested."""

import json

from typer.testing import CliRunner

from pipeline.cli.main import app
from tests.conftest import FIXTURES

CONTRACT = FIXTURES / "contract"


def invoke(*args, home):
    return CliRunner().invoke(app, ["validate", *map(str, args)], env={"PIPELINE_HOME": str(home)})


def test_a_passing_file_exits_0_and_ingests_nothing(tmp_path):
    result = invoke(CONTRACT / "good.csv", "--json", home=tmp_path / "ws")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["success"] is True and payload["failures"] == [] and payload["rows"] == 60
    assert not (tmp_path / "ws").exists()


def test_a_failing_file_exits_1_with_rule_observed_and_examples(tmp_path):
    result = invoke(CONTRACT / "duplicate_rows.csv", "--json", home=tmp_path / "ws")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["success"] is False
    [failure] = payload["failures"]
    assert failure["rule"] == "duplicate_rows" and failure["observed"] == "15 of 75 rows (20.00%)"
    assert failure["examples"][0]["row"] == 61 and failure["examples"][0]["text"]
    assert {"rule", "observed", "examples", "severity"} <= set(failure)


def test_warnings_alone_exit_0(tmp_path):
    result = invoke(
        CONTRACT / "text_not_blank.csv",
        "--set",
        "validation.severity={text_not_blank: warning}",
        "--json",
        home=tmp_path / "ws",
    )
    assert result.exit_code == 0, result.output
    assert [w["rule"] for w in json.loads(result.stdout)["warnings"]] == ["text_not_blank"]


def test_the_text_report_lists_failures_first_with_example_rows(tmp_path):
    result = invoke(CONTRACT / "text_not_blank.csv", home=tmp_path / "ws")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("text_not_blank.csv: data contract FAILED (60 rows;")
    assert lines[1].split() == ["FAIL", "text_not_blank", "error", "1", "of", "60", "rows", "(1.67%)"]
    assert lines[2].strip() == "row 5: '   ' (label 'technical')"


def test_an_unreadable_file_exits_1_naming_the_rule(tmp_path):
    result = invoke(FIXTURES / "missing_label_column.csv", "--json", home=tmp_path / "ws")
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["failures"][0]["rule"] == "missing_column" and "label" in payload["failures"][0]["observed"]


def test_a_bad_override_exits_2(tmp_path):
    result = invoke(CONTRACT / "good.csv", "--set", "validation.max_duplicate_share=7", home=tmp_path / "ws")
    assert result.exit_code == 2


def test_docs_flag_writes_offline_data_docs(tmp_path):
    result = invoke(CONTRACT / "good.csv", "--docs", "--json", home=tmp_path / "ws")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)["data_docs"]
    assert page.endswith(".html") and (tmp_path / "ws" / "reports" / "data_docs" / "index.html").exists()
    assert "static/vendor/bootstrap.min.css" in open(page, encoding="utf-8").read()

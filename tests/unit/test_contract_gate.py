"""The contract as the pipeline runs it: ingestion quarantines, the gate raises, reports are written
(offline Data Docs, per-file Markdown for Prefect, the same report in the MLflow run)."""

import shutil

import pytest

from pipeline.config import load_config
from pipeline.data import steps as data_steps
from pipeline.ops.reports import contracts_markdown
from pipeline.registry import steps as registry_steps
from pipeline.validation import steps as validation_steps
from pipeline.validation.data_docs import local_references, remote_references, rewrite_page
from pipeline.validation.results import DataValidationError
from pipeline.workspace import Workspace, prepare_workspace
from tests.conftest import FIXTURES

CONTRACT = FIXTURES / "contract"


@pytest.fixture
def landed(tmp_path):
    """A workspace with a good file and a file with control characters in the landing zone, ingested."""
    config = load_config(overrides=[f"workspace={tmp_path / 'ws'}"])
    workspace = prepare_workspace(config)
    shutil.copy(CONTRACT / "good.csv", workspace.landing / "good.csv")
    shutil.copy(CONTRACT / "control_characters.csv", workspace.landing / "bad.csv")
    return config, workspace, data_steps.ingest_and_validate(config, workspace)


def test_a_failing_file_is_quarantined_and_the_gate_names_rule_observed_and_rows(landed):
    config, workspace, outcome = landed
    assert [q["rule"] for q in outcome.quarantined] == ["control_characters"]
    assert not (workspace.landing / "bad.csv").exists()
    assert list(workspace.quarantine.glob("*bad.csv.report.md"))
    assert len(outcome.new_files) == 1 and outcome.new_files[0].endswith("good.csv")
    with pytest.raises(DataValidationError) as info:
        validation_steps.check_data_gate(config, workspace, outcome)
    message = str(info.value)
    assert "bad.csv" in message and "rule control_characters" in message
    assert "observed 3 of 63 rows (4.76%)" in message and "row 61" in message and "beeps" in message
    result = info.value.result
    assert not result.success and len(result.checks) > 10, "the error carries the whole contract result"
    assert "\n" not in message, "the CLI shows the first line only"


def test_reports_are_written_for_prefect_and_data_docs_render_offline(landed):
    config, workspace, outcome = landed
    markdown = contracts_markdown(outcome)
    assert "Data contract: good.csv: PASSED" in markdown and "Data contract: bad.csv: FAILED" in markdown
    assert "| control_characters | has_control_chars | error | **FAIL** | 3 of 63 rows (4.76%) |" in markdown
    snapshot_reports = workspace.reports / "contracts" / outcome.snapshot_id
    assert (snapshot_reports / "good.csv.md").exists() and (snapshot_reports / "good.csv.json").exists()

    site = workspace.reports / "data_docs"
    pages = sorted(site.rglob("*.html"))
    # the two small files were validated together: one page, named after both
    assert site / "index.html" in pages and len([p for p in pages if "validations" in p.parts]) == 1
    for path in [*pages, *site.rglob("*.css")]:
        assert remote_references(path.read_text(encoding="utf-8")) == [], path
    for page in pages:
        missing = [ref for ref in local_references(page) if not ref.exists()]
        assert missing == [], f"{page} refers to files that are not in the site: {missing}"
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "static/vendor/bootstrap.min.css" in index and "static/vendor/jquery.min.js" in index
    assert "bad.csv" in index and "good.csv" in index


def test_stock_gx_page_heads_are_rewritten_to_vendored_files():
    stock = """<html><head>
    <link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
    <link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css" />
    <script src="https://cdn.jsdelivr.net/npm/vega@5"></script>
    <script src="https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js" integrity="sha384-x" crossorigin="anonymous"></script>
    <style>.navbar-brand a { background: url('https://great-expectations-web-assets.s3.amazonaws.com/full_logo_dark.png') }</style>
    </head><body><img src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1" alt="GX"/>
    <a href="https://greatexpectations.io">Great Expectations</a><link rel="icon" href="../../static/images/favicon.ico"/></body></html>"""
    available = {"bootstrap.min.css", "bootstrap.min.js", "vega.min.js", "offline.css"}
    assert len(remote_references(stock)) == 7
    page = rewrite_page(stock, "../static", available)
    assert remote_references(page) == []
    assert '<link rel="stylesheet" href="../static/vendor/bootstrap.min.css">' in page
    assert '<script src="../static/vendor/vega.min.js"></script>' in page
    assert '<script src="../static/vendor/bootstrap.min.js"></script>' in page and "integrity" not in page
    assert "prefers-dark" not in page and 'src="../static/images/logo-long.png"' in page
    assert "<a>Great Expectations</a>" in page and 'href="../static/images/favicon.ico"' in page


def test_the_contract_report_is_logged_to_the_mlflow_run(landed):
    from mlflow import MlflowClient

    config, workspace, outcome = landed
    with pytest.raises(DataValidationError):
        validation_steps.check_data_gate(config, workspace, outcome)
    (workspace.landing / "more.csv").write_text("text,label\nmy parcel is late again,shipping\n", encoding="utf-8")
    outcome = data_steps.ingest_and_validate(config, workspace)
    assert not outcome.quarantined
    validation_steps.check_data_gate(config, workspace, outcome)
    tracking = registry_steps.start_tracking(config, workspace, outcome.snapshot_id, run_name="contract-report")
    client = MlflowClient(tracking.tracking_uri)
    logged = {a.path for a in client.list_artifacts(tracking.run_id, "data_contract")}
    assert logged == {
        f"data_contract/{name}" for name in ("more.csv.json", "more.csv.md", "snapshot.json", "snapshot.md")
    }
    local = client.download_artifacts(tracking.run_id, "data_contract/more.csv.md", str(workspace.root / "dl"))
    assert "Data contract: more.csv: PASSED" in open(local, encoding="utf-8").read()
    registry_steps.fail_tracking(tracking, "test over")
    assert Workspace.resolve(config.workspace).root == workspace.root

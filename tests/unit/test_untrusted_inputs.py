"""Values typed into a run form or a suite file are data: no arbitrary fetches, paths or code."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config import DataConfig
from pipeline.data.snapshots import load_snapshot
from pipeline.data.sources import IngestionError, check_source_allowed
from pipeline.data.store import DataStore
from pipeline.secrets import redact_config, redact_text, redact_url
from pipeline.validation.observations import select_examples
from pipeline.workspace import Workspace


@pytest.mark.parametrize(
    "uri",
    [
        "http://169.254.169.254/latest/meta-data/x.csv",
        "https://example.com/a.csv",
        "s3://bucket/a.csv",
        "simplecache::https://example.com/a.csv",
    ],
)
def test_remote_sources_need_their_scheme_in_configuration(tmp_path, uri):
    store = DataStore(Workspace(tmp_path / "ws"), DataConfig())
    with pytest.raises(IngestionError, match="source_not_allowed"):
        store.pending([uri])


def test_local_files_and_hf_sources_are_allowed_by_default(tmp_path):
    check_source_allowed(str(tmp_path / "a.csv"), DataConfig().allowed_url_schemes)
    check_source_allowed("hf:glue:sst2", DataConfig().allowed_url_schemes)
    check_source_allowed("file:///tmp/a.csv", DataConfig().allowed_url_schemes)


def test_allowed_hosts_limit_an_allowed_scheme():
    check_source_allowed("https://data.example.com/a.csv", ["https"], ["data.example.com"])
    with pytest.raises(IngestionError, match="host '169.254.169.254'"):
        check_source_allowed("https://169.254.169.254/a.csv", ["https"], ["data.example.com"])


def test_data_show_refuses_a_path_as_snapshot_id(tmp_path, monkeypatch):
    outside = tmp_path / "x"
    outside.mkdir()
    (outside / "manifest.json").write_text(json.dumps({"secret": "outside the workspace"}))
    monkeypatch.setenv("PIPELINE_HOME", str(tmp_path / "a" / "ws"))
    result = CliRunner().invoke(app, ["data", "show", "../../x"])
    assert result.exit_code == 1 and "invalid snapshot id" in result.output
    assert "outside the workspace" not in result.output
    with pytest.raises(ValueError, match="invalid snapshot id"):
        load_snapshot(tmp_path / "a" / "ws" / "snapshots", "../../x")


def test_examples_query_is_a_comparison_not_code():
    frame = pd.DataFrame({"count": [1, 5, 9], "share": [0.1, 0.2, 0.7]})
    assert select_examples(frame, "count < @low", {"low": 6}).tolist() == [True, True, False]
    assert select_examples(frame, "share > 0.5", {}).tolist() == [False, False, True]
    for hostile in [
        "count.__class__",
        "@pd.io.common.os.system('touch /tmp/pwned') > 0",
        "count > 0 or True",
        "nosuchcolumn > 0",
    ]:
        with pytest.raises(ValueError, match="unsupported examples_query"):
            select_examples(frame, hostile, {"pd": pd})
    assert isinstance(select_examples(frame, "count >= 5", {}), np.ndarray)


def test_secret_urls_are_redacted_from_config_and_text():
    from pipeline.config import PipelineConfig

    config = PipelineConfig()
    config.notifications.webhook_url = "https://hooks.example.com/services/T0/B0/SECRET-TOKEN"
    config.tracking.tracking_uri = "https://bob:hunter2@mlflow.example.com/"
    dumped = json.dumps(redact_config(config.model_dump()))
    assert "SECRET-TOKEN" not in dumped and "hunter2" not in dumped
    assert "hooks.example.com" in dumped and "mlflow.example.com" in dumped
    assert config.notifications.webhook_url.endswith("SECRET-TOKEN"), "the live configuration is untouched"
    assert redact_url("https://hooks.example.com/a/b?token=x") == "https://hooks.example.com/***"
    assert "hunter2" not in redact_text("failed: postgresql://u:hunter2@db:5432/mlflow down", [])

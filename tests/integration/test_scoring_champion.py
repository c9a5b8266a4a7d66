"""Scoring with a trained champion outside Prefect: the loader, drift on real batches, `pipeline predict`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.demo import generate_demo_rows
from pipeline.scoring.steps import drift_reference, load_scoring_model, score_source
from pipeline.workspace import Workspace
from tests.scoring_champion import REVIEWS, champion_config, train_champion

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(1200)  # the module's first test also trains the champion


@pytest.fixture(scope="module")
def champion(tmp_path_factory, tiny_model_dir):
    """A workspace whose champion (tiny BERT) learned the demo tickets."""
    config = champion_config(tmp_path_factory.mktemp("scoring"), tiny_model_dir)
    registered = train_champion(config, rows=600)
    assert registered["accuracy"] > 0.8  # the champion learned the tickets (else its drift report means little)
    return config


def test_drift_flags_another_domain_and_stays_quiet_on_the_training_distribution(champion, tmp_path):
    workspace = Workspace.resolve(champion.workspace)
    scoring = load_scoring_model(champion, workspace)
    reference = drift_reference(champion, workspace, scoring)
    assert reference["snapshot_id"] == scoring.ref.snapshot_id and reference["seen_tokens"]
    tickets, reviews = tmp_path / "tickets.csv", tmp_path / "reviews.csv"
    generate_demo_rows(240, seed=99)[["text"]].to_csv(tickets, index=False)
    pd.DataFrame({"text": REVIEWS * 2}).to_csv(reviews, index=False)
    quiet = score_source(champion, scoring, str(tickets), tmp_path / "t.parquet", reference).drift
    loud = score_source(champion, scoring, str(reviews), tmp_path / "r.parquet", reference).drift
    assert quiet["status"] == "ok", quiet["reason"]
    assert loud["status"] == "error"
    assert {"unseen_tokens_error"} <= {c["rule"] for c in loud["checks"] if not c["success"]}


def test_registered_loader_matches_the_registered_pyfunc(champion):
    import mlflow

    workspace = Workspace.resolve(champion.workspace)
    scoring = load_scoring_model(champion, workspace)
    assert scoring.ref.model_version == "1" and scoring.ref.snapshot_id
    texts = generate_demo_rows(50, seed=7)["text"].tolist()
    from pipeline.scoring.scorer import score_chunk

    assert scoring.precision == "auto"  # the scoring.precision default
    scoring.precision = "fp32"  # the same weights and head as the pyfunc: equal to the last digits in fp32
    ours = score_chunk(scoring, texts, batch_size=8).predictions
    mlflow.set_tracking_uri(workspace.tracking_uri())
    theirs = mlflow.pyfunc.load_model("models:/tiny-scorer/1").predict(pd.DataFrame({"text": texts}))
    assert ours["label"].tolist() == theirs["label"].tolist()
    assert (ours["score"] - theirs["score"]).abs().max() < 1e-4
    scoring.precision = "bf16"  # what auto picks on a CPU with native bf16: rounding, nothing more
    rounded = score_chunk(scoring, texts, batch_size=8).predictions
    assert 0 < (rounded["score"] - theirs["score"]).abs().max() < 0.02
    assert (rounded["label"] == theirs["label"]).mean() >= 0.9


def pipeline_cli(args, workspace: Path, stdin: str | None = None):
    env = {**os.environ, "PIPELINE_HOME": str(workspace), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=600,
        cwd=workspace.parent,
    )


def test_predict_command_scores_a_file_and_standard_input(champion, tmp_path):
    workspace = Workspace.resolve(champion.workspace).root
    source = tmp_path / "few.csv"
    generate_demo_rows(40, seed=3)[["text"]].to_csv(source, index=False)
    common = ["--set", "registry.model_name=tiny-scorer"]
    done = pipeline_cli(["predict", str(source), "--output", str(tmp_path / "out.csv"), "--json", *common], workspace)
    assert done.returncode == 0, done.stderr[-2000:]
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    assert payload["status"] == "completed" and payload["rows"] == 40 and payload["model_version"] == "1"
    assert payload["model_name"] == "tiny-scorer" and payload["output"] == str(tmp_path / "out.csv")
    assert len(pd.read_csv(tmp_path / "out.csv")) == 40

    piped = pipeline_cli(
        ["predict", "-", "--model", "models:/tiny-scorer/1", "--json", "--output", str(tmp_path / "stdin.parquet")],
        workspace,
        stdin="my parcel is late\n\nthe app crashes\n",
    )
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert json.loads(piped.stdout.strip().splitlines()[-1])["rows"] == 2
    assert pd.read_parquet(tmp_path / "stdin.parquet")["text"].tolist() == ["my parcel is late", "the app crashes"]

    missing = pipeline_cli(["predict", str(source), "--model", "models:/tiny-scorer@nobody", "--json"], workspace)
    assert missing.returncode == 1 and "models:/tiny-scorer@nobody" in missing.stderr
    assert json.loads(missing.stdout.strip().splitlines()[-1])["status"] == "failed"

"""Batch inference with a trained champion: the flow, drift on two kinds of batch, the ledger, `pipeline predict`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config import load_config
from pipeline.data.demo import generate_demo_rows
from pipeline.flows.batch_inference import batch_inference_flow
from pipeline.scoring import inbox
from pipeline.scoring.steps import load_scoring_model, read_predictions
from pipeline.workspace import Workspace
from tests.flows.test_promotion_flow import artifact_text
from tests.scoring_champion import train_champion

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(1200)  # the module's first test also trains the champion
REVIEWS = [f"The film's {adjective} performances and {quality} cinematography make this a {verdict} piece of cinema."
           for adjective in ("luminous", "wooden", "subtle", "overwrought", "tender")
           for quality in ("breathtaking", "muddy", "restless") for verdict in ("haunting", "tedious", "dazzling")]


@pytest.fixture(scope="module")
def champion(tmp_path_factory, tiny_model_dir):
    """A workspace whose champion (tiny BERT) learned the demo tickets."""
    root = tmp_path_factory.mktemp("scoring")
    config = load_config(overrides=[
        f"workspace={root / 'ws'}", f"model.name_or_path={tiny_model_dir}", "model.max_length=64",
        "training.epochs=3", "training.batch_size=16", "training.learning_rate=0.002", "training.checkpoint_steps=1000",
        "registry.model_name=tiny-scorer", "validation.data_docs=false", "scoring.to_label_rows=5",
        "scoring.top_k=2"], environ={})
    registered = train_champion(config, rows=400)
    assert registered["accuracy"] > 0.8  # the champion learned the tickets (else its drift report means little)
    return config


def run_flow(config):
    state = batch_inference_flow(config, return_state=True)
    return state, state.state_details.flow_run_id


def test_flow_scores_the_inbox_once_flags_another_domain_and_keeps_going_past_a_bad_file(champion):
    workspace = Workspace.resolve(champion.workspace)
    folder = inbox.inbox_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    tickets = generate_demo_rows(240, seed=99)[["text"]].assign(ticket_id=lambda f: range(len(f)))
    tickets.to_csv(folder / "tickets.csv", index=False)
    pd.DataFrame({"text": REVIEWS * 2}).to_json(folder / "reviews.jsonl", orient="records", lines=True)
    (folder / "broken.csv").write_text("body\nno text column here\n")

    state, flow_run = run_flow(champion)
    assert state.is_failed() and "broken.csv" in state.message  # reported after the good files were scored
    files = {Path(f).name: f for f in os.listdir(inbox.predictions_dir(workspace))}
    assert sorted(name.split(".")[0] for name in files) == ["reviews", "tickets"]

    scored = read_predictions(inbox.predictions_dir(workspace) / next(n for n in files if n.startswith("tickets")))
    assert scored["ticket_id"].tolist() == list(range(240)) and scored["text"].equals(tickets["text"])
    assert set(scored["model_version"]) == {"1"} and scored["model_name"].iloc[0] == "tiny-scorer"
    assert scored["score"].between(0, 1).all() and scored["top_labels"].map(len).eq(2).all()
    accuracy = (scored["label"] == generate_demo_rows(240, seed=99)["label"]).mean()
    assert accuracy > 0.8

    ledger = inbox.ScoringLedger(workspace).read()["files"]
    by_name = {Path(r["uris"][0]).name: r for r in ledger.values()}
    assert by_name["tickets.csv"]["drift"] == "ok"
    assert by_name["reviews.jsonl"]["drift"] == "error"
    assert by_name["broken.csv"]["status"] == "failed" and "missing_column" in by_name["broken.csv"]["error"]
    report = artifact_text(flow_run, "batch-inference")
    assert "Drift findings: reviews.jsonl" in report and "unseen_tokens_error" in report
    assert "Drift findings: tickets.csv" not in report
    to_label = pd.read_csv(next((workspace.root / "to_label").glob("reviews.*.csv")))
    assert len(to_label) == 5 and "label" not in to_label.columns and to_label["text"].is_unique

    from mlflow import MlflowClient

    uri = workspace.tracking_uri()
    version = MlflowClient(uri, registry_uri=uri).get_model_version("tiny-scorer", "1")
    assert version.tags["drift.last_status"] == "error"

    again, _ = run_flow(champion)  # same inbox: nothing is scored twice (the broken file is tried again)
    result = again.result(raise_on_failure=False)
    assert again.is_failed() and "broken.csv" in again.message
    (folder / "broken.csv").unlink()
    third, _ = run_flow(champion)
    result = third.result()
    assert result["files"] == [] and len(result["skipped"]) == 2
    assert all("already scored by version 1" in s["reason"] for s in result["skipped"])


def test_registered_loader_matches_the_registered_pyfunc(champion):
    import mlflow

    workspace = Workspace.resolve(champion.workspace)
    scoring = load_scoring_model(champion, workspace)
    assert scoring.ref.model_version == "1" and scoring.ref.snapshot_id
    texts = generate_demo_rows(50, seed=7)["text"].tolist()
    from pipeline.scoring.scorer import score_chunk

    ours = score_chunk(scoring, texts, batch_size=8).predictions
    mlflow.set_tracking_uri(workspace.tracking_uri())
    theirs = mlflow.pyfunc.load_model("models:/tiny-scorer/1").predict(pd.DataFrame({"text": texts}))
    assert ours["label"].tolist() == theirs["label"].tolist()
    assert (ours["score"] - theirs["score"]).abs().max() < 1e-4


def pipeline_cli(args, workspace: Path, stdin: str | None = None):
    env = {**os.environ, "PIPELINE_HOME": str(workspace), "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=600, cwd=workspace.parent)


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

    piped = pipeline_cli(["predict", "-", "--model", "models:/tiny-scorer/1", "--json", "--output",
                          str(tmp_path / "stdin.parquet")], workspace, stdin="my parcel is late\n\nthe app crashes\n")
    assert piped.returncode == 0, piped.stderr[-2000:]
    assert json.loads(piped.stdout.strip().splitlines()[-1])["rows"] == 2
    assert pd.read_parquet(tmp_path / "stdin.parquet")["text"].tolist() == ["my parcel is late", "the app crashes"]

    missing = pipeline_cli(["predict", str(source), "--model", "models:/tiny-scorer@nobody", "--json"], workspace)
    assert missing.returncode == 1 and "models:/tiny-scorer@nobody" in missing.stderr
    assert json.loads(missing.stdout.strip().splitlines()[-1])["status"] == "failed"

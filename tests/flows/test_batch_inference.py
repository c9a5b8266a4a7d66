"""The batch-inference flow with a trained champion: every file scored once, drift flagged, a bad file reported."""

import os
from pathlib import Path

import pandas as pd
import pytest

from pipeline.data.demo import generate_demo_rows
from pipeline.flows.batch_inference import batch_inference_flow
from pipeline.scoring import inbox
from pipeline.scoring.steps import read_predictions
from pipeline.workspace import Workspace
from tests.flows.test_promotion_flow import artifact_text
from tests.scoring_champion import REVIEWS, champion_config, train_champion

pytestmark = pytest.mark.timeout(1200)  # the module's first test also trains the champion


@pytest.fixture(scope="module")
def champion(tmp_path_factory, tiny_model_dir):
    """A workspace whose champion (tiny BERT) learned the demo tickets."""
    config = champion_config(tmp_path_factory.mktemp("scoring"), tiny_model_dir)
    registered = train_champion(config, rows=600)
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
    assert scored["ticket_id"].astype(int).tolist() == list(range(240))  # CSV columns are read as text
    assert scored["text"].equals(tickets["text"])
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


def test_a_scheduled_run_before_any_champion_waits_and_an_unknown_model_fails(tmp_path, tiny_model_dir):
    """The schedule fires before the first model is promoted: the inbox waits, the run is not a failure."""
    config = champion_config(tmp_path, tiny_model_dir)
    workspace = Workspace.resolve(config.workspace)
    folder = inbox.inbox_dir(workspace)
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"text": REVIEWS}).to_csv(folder / "early.csv", index=False)

    state, _ = run_flow(config)
    result = state.result()
    assert state.is_completed() and result["status"] == "waiting for a champion"
    assert result["rows"] == 0 and (folder / "early.csv").exists()
    assert not inbox.predictions_dir(workspace).exists() or not os.listdir(inbox.predictions_dir(workspace))

    named = batch_inference_flow(config, model_uri="models:/tiny-scorer/7", return_state=True)
    assert named.is_failed() and "tiny-scorer" in named.message  # a model asked for by name must exist

"""A small support-ticket topic data set that the project generates itself (no public corpus).

Four intents (billing, shipping, account, technical), written from templates with a seeded RNG so
every machine gets the same files. Label-ambiguous sentences and a little label noise (as real
annotation has) keep the task from being trivial, so test metrics say something.
"""

from __future__ import annotations

import json
import random
import zlib
from pathlib import Path

import pandas as pd

TOPICS: dict[str, dict[str, list[str]]] = {
    "billing": {
        "subject": [
            "my invoice",
            "the last bill",
            "my credit card charge",
            "the refund",
            "my subscription fee",
            "the monthly payment",
            "a double charge",
            "the receipt",
            "my billing address",
            "the late fee",
        ],
        "verb": [
            "is wrong",
            "looks too high",
            "was charged twice",
            "never arrived",
            "needs correcting",
            "does not match my plan",
            "was taken early",
            "shows an unknown amount",
        ],
    },
    "shipping": {
        "subject": [
            "my parcel",
            "the delivery",
            "the package",
            "my order",
            "the courier",
            "the tracking number",
            "the shipment",
            "the replacement item",
            "the return label",
            "the box",
        ],
        "verb": [
            "has not arrived",
            "is stuck in transit",
            "went to the wrong address",
            "arrived damaged",
            "is two weeks late",
            "shows no updates",
            "was left outside",
            "is missing an item",
        ],
    },
    "account": {
        "subject": [
            "my password",
            "the login page",
            "my username",
            "two-factor authentication",
            "my profile",
            "the account email",
            "my security question",
            "the account",
            "my saved settings",
            "the sign-in code",
        ],
        "verb": [
            "will not reset",
            "is locked",
            "keeps rejecting me",
            "was changed without me",
            "cannot be updated",
            "needs to be deleted",
            "was hacked",
            "never sends the code",
        ],
    },
    "technical": {
        "subject": [
            "the app",
            "the website",
            "the mobile version",
            "the export button",
            "the search feature",
            "the dashboard",
            "the desktop client",
            "the upload tool",
            "the notification service",
            "the API",
        ],
        "verb": [
            "crashes on start",
            "shows an error",
            "is very slow",
            "freezes every time",
            "does not load",
            "returns a blank page",
            "keeps logging an exception",
            "broke after the update",
        ],
    },
}

OPENERS = ["", "Hi,", "Hello team,", "Urgent:", "Please help,", "Good morning.", "Hey,", "Quick question:"]
CLOSERS = [
    "",
    "Thanks.",
    "Please fix this.",
    "Can you help?",
    "This is frustrating.",
    "Any update?",
    "I need this sorted today.",
    "Thank you for your time.",
]
AMBIGUOUS = [
    ("I cannot log in to pay my bill", "account"),
    ("the app charged me twice", "billing"),
    ("the website says my order was delivered but it was not", "shipping"),
    ("my account page shows the wrong invoice", "billing"),
]


LABEL_NOISE = 0.03


def _ticket(rng: random.Random, labels: list[str], label_noise: float) -> tuple[str, str]:
    if rng.random() < 0.05:
        text, label = rng.choice(AMBIGUOUS)
        text = f"{rng.choice(OPENERS)} {text}. {rng.choice(CLOSERS)}"
    else:
        label = rng.choice(labels)
        parts = TOPICS[label]
        text = (
            f"{rng.choice(OPENERS)} {rng.choice(parts['subject'])} {rng.choice(parts['verb'])}. {rng.choice(CLOSERS)}"
        )
    text = " ".join(text.split())
    # Noise is a function of the text, so a repeated text keeps one label (no conflicts).
    digest = zlib.crc32(text.encode())
    if digest % 10_000 < label_noise * 10_000:
        label = labels[(labels.index(label) + 1 + digest % (len(labels) - 1)) % len(labels)]
    return text, label


def generate_demo_rows(
    rows: int, seed: int = 0, label_noise: float = LABEL_NOISE, exclude: set[str] | None = None
) -> pd.DataFrame:
    """Return ``rows`` labeled support tickets (columns ``text``, ``label``), reproducible from ``seed``.

    Texts in ``exclude`` are never produced (later batches use it so that a text never arrives twice,
    which would otherwise repeat texts of the frozen test split). A few exact repeats remain inside
    one batch, as real exports have.
    """
    rng = random.Random(seed)
    labels = list(TOPICS)
    exclude = exclude if exclude is not None else set()
    records = []
    while len(records) < rows:
        text, label = _ticket(rng, labels, label_noise)
        if text in exclude:
            continue
        records.append({"text": text, "label": label})
    return pd.DataFrame.from_records(records)


def generate_demo_batches(batches: tuple[int, ...], rows_per_batch: int) -> dict[int, pd.DataFrame]:
    """Batches 1..max(batches) generated in order, each avoiding every text of the batches before it."""
    seen: set[str] = set()
    out = {}
    for batch in range(1, max(batches) + 1):
        frame = generate_demo_rows(rows_per_batch, seed=batch, exclude=seen)
        seen |= set(frame["text"])
        out[batch] = frame
    return {b: out[b] for b in batches}


def write_demo_files(folder: str | Path, batches: tuple[int, ...] = (1, 2), rows_per_batch: int = 1200) -> list[Path]:
    """Write demo batches into ``folder`` (batch 1 as CSV, 2 as JSONL, 3 as TSV) and return their paths.

    Each batch has its own seed, so writing batch 3 later looks like new labels arriving.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    unknown = [b for b in batches if b not in (1, 2, 3)]
    if unknown:
        raise ValueError(f"demo batch must be 1, 2 or 3, not {unknown[0]}")
    frames = generate_demo_batches(tuple(batches), rows_per_batch)
    for batch in batches:
        frame = frames[batch]
        if batch == 1:
            path = folder / "demo_batch_1.csv"
            frame.to_csv(path, index=False)
        elif batch == 2:
            path = folder / "demo_batch_2.jsonl"
            path.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")), encoding="utf-8")
        else:
            path = folder / "demo_batch_3.tsv"
            frame.to_csv(path, index=False, sep="\t")
        written.append(path)
    return written

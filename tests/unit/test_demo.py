from pipeline.data.demo import generate_demo_batches, write_demo_files
from pipeline.data.readers import normalise_text


def test_batches_never_repeat_a_text_of_an_earlier_batch():
    batches = generate_demo_batches((1, 2, 3), 600)
    texts = [set(frame["text"].map(normalise_text)) for frame in batches.values()]
    assert not texts[0] & texts[1] and not texts[0] & texts[2] and not texts[1] & texts[2]


def test_batch_three_alone_equals_batch_three_of_all(tmp_path):
    (alone,) = write_demo_files(tmp_path / "a", (3,), rows_per_batch=200)
    (_, _, together) = write_demo_files(tmp_path / "b", (1, 2, 3), rows_per_batch=200)
    assert alone.read_bytes() == together.read_bytes()


def test_labels_are_consistent_per_text_and_four_classes():
    frame = generate_demo_batches((1,), 1200)[1]
    assert frame.groupby("text")["label"].nunique().max() == 1
    assert set(frame["label"]) == {"account", "billing", "shipping", "technical"}

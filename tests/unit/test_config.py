import pytest

from pipeline.config import ConfigError, PipelineConfig, env_overrides, load_config


def test_defaults_are_valid_and_typed():
    config = PipelineConfig()
    assert config.training.epochs == 3
    assert config.model.name_or_path == "packaged:all-minilm-l6-v2"


def test_yaml_then_env_then_set_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 5\n  batch_size: 8\nregistry:\n  model_name: from-yaml\n")
    config = load_config(path, ["training.epochs=2"], environ={"PIPELINE__TRAINING__BATCH_SIZE": "4",
                                                               "PIPELINE__TRAINING__EPOCHS": "9"})
    assert config.training.epochs == 2          # --set beats env
    assert config.training.batch_size == 4      # env beats yaml
    assert config.registry.model_name == "from-yaml"


def test_list_and_null_values_parse():
    config = load_config(overrides=["data.paths=[a.csv, b.csv]", "training.max_steps=null"], environ={})
    assert config.data.paths == ["a.csv", "b.csv"]
    assert config.training.max_steps is None


@pytest.mark.parametrize("override, fragment", [
    ("training.epochs=0", "training.epochs"),
    ("training.nope=1", "training.nope"),
    ("model.method=qlora", "model.method"),
    ("noequals", "section.key=value"),
])
def test_bad_overrides_name_the_key(override, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_config(overrides=[override], environ={})


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(path, environ={})


def test_env_overrides_mapping():
    assert env_overrides({"PIPELINE__DATA__TEXT_COLUMN": "sentence", "OTHER": "x"}) == ["data.text_column=sentence"]


def test_json_schema_has_descriptions_and_bounds():
    schema = PipelineConfig.model_json_schema()
    epochs = schema["$defs"]["TrainingConfig"]["properties"]["epochs"]
    assert epochs["minimum"] == 1 and epochs["description"]

import pytest

from pipeline.config import ConfigError, PipelineConfig, env_overrides, load_config


def test_defaults_are_valid_and_typed():
    config = PipelineConfig()
    assert config.training.epochs == 3
    assert config.model.name_or_path == "packaged:all-minilm-l6-v2"


def test_yaml_then_env_then_set_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\n  epochs: 5\n  batch_size: 8\nregistry:\n  model_name: from-yaml\n")
    config = load_config(
        path, ["training.epochs=2"], environ={"PIPELINE__TRAINING__BATCH_SIZE": "4", "PIPELINE__TRAINING__EPOCHS": "9"}
    )
    assert config.training.epochs == 2  # --set beats env
    assert config.training.batch_size == 4  # env beats yaml
    assert config.registry.model_name == "from-yaml"


def test_list_and_null_values_parse():
    config = load_config(overrides=["data.paths=[a.csv, b.csv]", "training.max_steps=null"], environ={})
    assert config.data.paths == ["a.csv", "b.csv"]
    assert config.training.max_steps is None


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("training.epochs=0", "training.epochs"),
        ("training.nope=1", "training.nope"),
        ("model.method=qlora", "model.method"),
        ("noequals", "section.key=value"),
    ],
)
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


def test_moved_keys_are_read_from_their_old_place_with_a_warning():
    with pytest.warns(FutureWarning, match="registry.tracking_uri -> tracking.tracking_uri"):
        config = load_config(
            overrides=[
                "registry.tracking_uri=sqlite:///x.db",
                "retraining.work_pool=gpu",
                "retraining.webhook_url=https://hooks.example/x",
                "registry.auto_promote=true",
            ],
            environ={},
        )
    assert config.tracking.tracking_uri == "sqlite:///x.db" and config.deployment.work_pool == "gpu"
    assert config.notifications.webhook_url == "https://hooks.example/x" and config.promotion.auto_promote is True


def test_a_moved_key_given_in_both_places_keeps_the_new_value():
    with pytest.warns(FutureWarning):
        config = load_config(overrides=["registry.min_metric=0.1", "promotion.min_metric=0.5"], environ={})
    assert config.promotion.min_metric == 0.5


def test_old_keys_in_an_environment_variable_still_work():
    with pytest.warns(FutureWarning):
        config = load_config(environ={"PIPELINE__REGISTRY__EXPERIMENT": "legacy"})
    assert config.tracking.experiment == "legacy"


def test_run_options_override_the_configuration_and_keep_bounds():
    from pydantic import ValidationError

    from pipeline.config import with_run_options

    base = load_config(overrides=["training.epochs=7", "model.method=lora"], environ={})
    chosen = with_run_options(base, epochs=2, data_paths=["a.csv"], promote=True, method=None)
    assert (chosen.training.epochs, chosen.data.paths, chosen.promotion.auto_promote) == (2, ["a.csv"], True)
    assert chosen.model.method == "lora", "an empty choice keeps the configured value"
    assert base.training.epochs == 7, "the given configuration is not changed"
    with pytest.raises(ValidationError):
        with_run_options(base, epochs=0)


def test_the_configuration_reference_page_is_current():
    """docs/configuration.md is generated; a key added without regenerating it fails here."""
    from pathlib import Path

    from pipeline.config.reference import render_reference

    page = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
    assert page.read_text() == render_reference(), "run: python -m pipeline.config.reference > docs/configuration.md"

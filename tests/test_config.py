import json

import pytest

from kerasnotes import config as config_lib
from kerasnotes.errors import ConfigError
from kerasnotes.registry import get_spec

DERIVED = ("input_shape", "num_classes")


def resolve(**kwargs):
    return config_lib.resolve_config(get_spec("cnn"), derived_keys=DERIVED, **kwargs)


def test_defaults_merge_builder_and_model_training_defaults():
    config = resolve()
    assert config["filters"] == [32, 64, 128]  # builder default
    assert config["epochs"] == get_spec("cnn").training_defaults["epochs"]
    assert config["optimizer"] == "adam"  # global default
    assert "input_shape" not in config  # derived from the data


def test_layers_override_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("epochs: 3\nbatch_size: 16\nfilters: [8, 8]\nkernel_size: 5\n")
    config = resolve(
        config_file=path,
        overrides=["batch_size=8", "filters=[4]"],
        flags={"batch_size": 2, "epochs": None},
    )
    assert config["epochs"] == 3  # file; the flag was not given
    assert config["kernel_size"] == 5  # file
    assert config["filters"] == [4]  # --set beats file
    assert config["batch_size"] == 2  # flag beats --set


def test_saved_run_config_is_accepted(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model": "cnn", "epochs": 2}))
    assert resolve(config_file=path)["epochs"] == 2
    path.write_text(json.dumps({"model": "vqa", "epochs": 2}))
    with pytest.raises(ConfigError, match="for model 'vqa'"):
        resolve(config_file=path)


def test_unknown_key_names_known_keys():
    with pytest.raises(ConfigError, match="Unknown configuration key 'fliters'.*filters"):
        resolve(overrides=["fliters=[3]"])


@pytest.mark.parametrize(
    "item, message",
    [
        ("filters=abc", "expected a list of integers"),
        ("epochs=2.5", "expected an integer"),
        ("learning_rate=fast", "expected a number"),
        ("batch_norm=maybe", "expected true or false"),
        ("epochs=0", "must be at least 1"),
        ("learning_rate=-1", "must be positive"),
        ("strategy=tpu", "expected one of default, mirrored"),
        ("image_size=[1,2,3]", "image_size"),
    ],
)
def test_bad_values_are_named(item, message):
    with pytest.raises(ConfigError, match=message):
        resolve(overrides=[item])


def test_set_values_are_parsed_as_yaml():
    config = resolve(overrides=["learning_rate=1e-2", "batch_norm=false", "kernel_size=[3,5,3]"])
    assert config["learning_rate"] == 0.01
    assert config["batch_norm"] is False
    assert config["kernel_size"] == [3, 5, 3]


def test_int_is_accepted_for_float_keys():
    assert resolve(overrides=["learning_rate=1"])["learning_rate"] == 1.0


@pytest.mark.parametrize("text", ["[1, 2]", "{{bad"])
def test_bad_config_files(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="c.yaml"):
        resolve(config_file=path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        resolve(config_file="/no/such/file.yaml")


def test_set_needs_key_value():
    with pytest.raises(ConfigError, match="key=value"):
        resolve(overrides=["epochs"])

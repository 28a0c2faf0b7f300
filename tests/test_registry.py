import keras
import pytest

import kerasnotes
from kerasnotes.errors import ConfigError, UsageError


def _tiny(input_shape=(8, 8, 3), num_classes=2, data_format="channels_last", units=4):
    """A tiny test model."""
    inputs = keras.Input(input_shape)
    x = keras.layers.Flatten()(inputs)
    x = keras.layers.Dense(units)(x)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))


def test_builtin_models_are_listed():
    assert "cnn" in kerasnotes.list_models()
    assert kerasnotes.list_models("c*") == [n for n in kerasnotes.list_models() if n[0] == "c"]


def test_register_and_create(clean_registry):
    kerasnotes.register_model("tiny", _tiny, task="image_classification")
    assert "tiny" in kerasnotes.list_models()
    assert kerasnotes.get_spec("tiny").description == "A tiny test model."
    model = kerasnotes.create_model("tiny", units=7)
    assert model.layers[-2].units == 7


def test_none_values_keep_builder_defaults(clean_registry):
    kerasnotes.register_model("tiny", _tiny, task="image_classification")
    model = kerasnotes.create_model("tiny", units=None, num_classes=None)
    assert model.layers[-2].units == 4
    assert model.output_shape == (None, 2)


def test_duplicate_name_is_an_error(clean_registry):
    kerasnotes.register_model("tiny", _tiny, task="image_classification")
    with pytest.raises(ValueError, match="already registered"):
        kerasnotes.register_model("tiny", _tiny, task="image_classification")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UsageError, match="Did you mean 'cnn'"):
        kerasnotes.create_model("cnm")


def test_unknown_hyperparameter_names_known_ones():
    with pytest.raises(ConfigError, match="'fliters'.*Known:.*filters"):
        kerasnotes.create_model("cnn", fliters=[8])


def test_builder_arguments_need_defaults(clean_registry):
    def no_default(units):
        return None

    with pytest.raises(TypeError, match="needs a default"):
        kerasnotes.register_model("bad", no_default, task="image_classification")

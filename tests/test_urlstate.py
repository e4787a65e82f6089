"""Settings in the URL: round trip, and invalid links open with defaults and a reason."""

from __future__ import annotations

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from core.config import TrainConfig
from core.urlstate import config_from_query, config_to_query


def test_round_trip_of_every_kind_of_setting():
    cfg = TrainConfig(dataset="fashion-mnist", model="mlp", hidden=(196, 64), optimizer="sgd", lr=0.05, nesterov=True,
                      scheduler="multistep", milestones=(3, 6), epochs=8, augment=("rotate", "erase"), limit_train=5000,
                      label_smoothing=0.1, seed=42).validate()
    query = config_to_query(cfg)
    assert query["hidden"] == "196,64" and query["nesterov"] == "1" and "run_dir" not in query
    assert "momentum" not in query  # defaults stay out of the link
    back, problems = config_from_query(query)
    assert problems == [] and back == cfg


def test_the_default_config_makes_a_short_query_that_keeps_its_meaning_when_the_defaults_change():
    d = TrainConfig()
    assert config_to_query(d) == {"model": d.model, "epochs": str(d.epochs), "lr": str(d.lr)}
    assert config_from_query({}) == (d, [])


@pytest.mark.parametrize("params, reason", [
    ({"lr": "fast"}, "lr='fast'"),
    ({"lr": "-1"}, "Learning rate must be"),
    ({"model": "vgg"}, "Unknown model"),
    ({"epochs": "3.5"}, "epochs='3.5'"),
    ({"nesterov": "maybe"}, "nesterov='maybe'"),
    ({"augment": "blur"}, "Unknown augmentation"),
    ({"colour": "red"}, "unknown setting 'colour'"),
])
def test_invalid_links_give_defaults_and_a_reason(params, reason):
    cfg, problems = config_from_query({"epochs": "5", **params})
    assert cfg == TrainConfig()
    assert any(reason in p for p in problems), problems


FIELDS = [*TrainConfig().to_dict(), "colour"]
TEXT = st.one_of(st.text(max_size=12), st.integers(-10**10, 10**10).map(str),
                 st.floats(allow_nan=True, allow_infinity=True).map(str), st.sampled_from(["", "0", "1", "none", "nan"]))


@given(params=st.dictionaries(st.sampled_from(FIELDS), TEXT, max_size=6))
def test_any_link_opens_as_its_own_valid_config_or_as_the_defaults_with_reasons(params):
    cfg, problems = config_from_query(params)
    event("refused" if problems else "accepted")
    if problems:
        assert cfg == TrainConfig()
    else:
        assert cfg.validate() == cfg and config_from_query(config_to_query(cfg)) == (cfg, [])


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)


@given(values=st.dictionaries(st.sampled_from(FIELDS), JSON, max_size=6))
def test_a_saved_config_with_any_values_is_valid_or_refused_with_a_value_error(values):
    try:
        TrainConfig.from_dict(values).validate()
        event("accepted")
    except ValueError:
        event("refused")


def test_a_number_too_large_for_a_float_is_refused_with_a_short_message():
    cfg, problems = config_from_query({"epochs": "1" + "0" * 400})
    assert cfg == TrainConfig() and "Epochs must be a whole number" in problems[0] and len(problems[0]) < 200

from __future__ import annotations

from pathlib import Path

import pytest

from lockstep.settings import VARIABLES, ServeSettings, SettingsError, TrainSettings


def test_defaults_apply_when_variables_are_unset_or_empty():
    settings = TrainSettings.from_env({"LOCKSTEP_EPOCHS": ""})
    assert settings.epochs == int(VARIABLES["LOCKSTEP_EPOCHS"][0])
    assert settings.data_dir is None
    assert settings.checkpoint_dir == Path("/checkpoints")


def test_data_dir_is_used_when_set():
    assert TrainSettings.from_env({"LOCKSTEP_DATA_DIR": "/data"}).data_dir == Path("/data")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LOCKSTEP_EPOCHS", "ten", "a whole number from 1 to 10,000"),
        ("LOCKSTEP_EPOCHS", "0", "a whole number from 1 to 10,000"),
        ("LOCKSTEP_EPOCHS", "\uff11\uff12", "a whole number from 1 to 10,000"),
        ("LOCKSTEP_BATCH_SIZE", "99999999999999999999", "a whole number from 1 to 65,536"),
        ("LOCKSTEP_SEED", "-1", "a whole number from 0 to 4,294,967,295"),
        ("LOCKSTEP_SEED", "99999999999999999999999", "a whole number from 0 to 4,294,967,295"),
        ("LOCKSTEP_LEARNING_RATE", "inf", "a number above 0 and at most 1"),
        ("LOCKSTEP_LEARNING_RATE", "nan", "a number above 0 and at most 1"),
        ("LOCKSTEP_VAL_FRACTION", "1.5", "a number above 0 and below 1"),
        ("LOCKSTEP_IMAGE_SIZE", "4", "a whole number from 16 to 512"),
        ("LOCKSTEP_DEVICE", "tpu", "cpu, cuda or auto"),
    ],
)
def test_invalid_value_names_variable_value_and_fix(name, value, expected):
    with pytest.raises(SettingsError) as raised:
        TrainSettings.from_env({name: value})
    message = str(raised.value)
    assert f"{name}={value!r} is invalid" in message
    assert expected in message
    assert f"{name}={VARIABLES[name][0]}" in message


def test_serve_settings_reject_accuracy_floor_above_one():
    with pytest.raises(SettingsError, match="LOCKSTEP_SMOKE_MIN_ACCURACY='2'"):
        ServeSettings.from_env({"LOCKSTEP_SMOKE_MIN_ACCURACY": "2"})


def test_settings_report_every_invalid_value():
    with pytest.raises(SettingsError) as raised:
        TrainSettings.from_env({"LOCKSTEP_EPOCHS": "abc", "LOCKSTEP_VAL_FRACTION": "1.5", "LOCKSTEP_SEED": "-1"})
    lines = str(raised.value).splitlines()
    assert [line.split("=")[0] for line in lines] == ["LOCKSTEP_EPOCHS", "LOCKSTEP_SEED", "LOCKSTEP_VAL_FRACTION"]

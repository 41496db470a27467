from pathlib import Path

import pytest

from loom.config import ClassifyConfig, DataConfig, PretrainConfig, ServeConfig, SFTConfig, TokenizerConfig, load
from loom.errors import ConfigError, InputError
from loom.model.build import resolve_shape

REPO = Path(__file__).resolve().parents[1]
STAGES = {"data": DataConfig, "tokenizer": TokenizerConfig, "pretrain": PretrainConfig, "classify": ClassifyConfig, "serve": ServeConfig,
          "finetune": SFTConfig}


def test_every_shipped_preset_loads():
    presets = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(presets) >= 8
    for path in presets:
        stage = path.parent.name
        assert stage in STAGES, f"{path} is in an unknown stage folder"
        cfg = load(STAGES[stage], path)
        if isinstance(cfg, PretrainConfig):
            shape = resolve_shape(cfg.model)
            assert shape["d_model"] % shape["n_head"] == 0


def test_presets_are_found_in_the_package_from_any_folder(tmp_path, monkeypatch):
    from loom.config import CONFIGS_DIR

    assert (REPO / "configs").resolve() == CONFIGS_DIR  # the checkout's configs/ is the package's presets
    monkeypatch.chdir(tmp_path)  # no configs/ here: an installed wheel's situation
    for name in ("pretrain/tiny", "configs/pretrain/tiny.yaml", "pretrain/tiny.yaml"):
        assert load(PretrainConfig, name).model.preset == "tiny"
    with pytest.raises(InputError, match="config file not found") as e:
        load(PretrainConfig, "pretrain/huge")
    assert "pretrain/tiny" in e.value.hint


def test_cli_overrides_beat_yaml():
    cfg = load(PretrainConfig, REPO / "configs/pretrain/tiny.yaml", {"train.max_steps": 7, "train.lr": None})
    assert cfg.train.max_steps == 7
    assert cfg.train.lr == 1e-3  # None overrides are ignored


def test_unknown_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_stpes: 10\n")
    with pytest.raises(ConfigError, match="unknown key 'train.max_stpes'"):
        load(PretrainConfig, bad)


def test_out_of_range_value_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: -1\n")
    with pytest.raises(ConfigError, match="train.lr"):
        load(PretrainConfig, bad)


def test_seq_len_longer_than_context_is_refused():
    with pytest.raises(ConfigError, match="exceeds model.max_seq_len"):
        load(PretrainConfig, None, {"train.seq_len": 512, "model.max_seq_len": 128})


def test_missing_and_non_mapping_config(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load(DataConfig, tmp_path / "nope.yaml")
    listy = tmp_path / "list.yaml"
    listy.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(DataConfig, listy)

"""Generic data options: --filter (counted in run.json), --dataset-config with several configurations."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import datasets
import pytest
import yaml

from conftest import read_json, run_cli
from nlpcli.config_layers import resolve_config
from nlpcli.errors import UserError
from nlpcli.sources import data
from nlpcli.tasks.mlm import MlmConfig

TEXTS = [
    "The library opened a new reading room for children and their parents.",
    "A quiet novel about a lighthouse keeper and the sea around him.",
    "The blender broke after two weeks of making smoothies every morning.",
    "This cookbook has simple recipes for every season of the year.",
    "The headphones sound clear but the cable is far too short.",
    "An exciting thriller with a twist that nobody will see coming.",
]
CATEGORIES = ["book", "digital_ebook_purchase", "kitchen", "book", "electronics", "digital_ebook_purchase"]
STARS = [5, 4, 1, 3, 2, 5]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _rows(repeat: int = 1) -> list[dict]:
    rows = [{"text": t, "category": c, "stars": s} for t, c, s in zip(TEXTS, CATEGORIES, STARS, strict=True)]
    return rows * repeat


def _dataset_dict() -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(_rows()), "validation": datasets.Dataset.from_list(_rows()[:3])}
    )


CFG = SimpleNamespace(dataset=None, train_file="train.jsonl", validation_file="dev.jsonl")


def test_a_filter_keeps_exactly_the_rows_with_one_of_its_values_and_counts_them():
    raw, counts = data.apply_filters(_dataset_dict(), ["category=book,digital_ebook_purchase"], CFG)
    assert raw["train"]["text"] == [TEXTS[0], TEXTS[1], TEXTS[3], TEXTS[5]]  # data order kept
    assert raw["validation"]["category"] == ["book", "digital_ebook_purchase"]
    assert counts == [
        {
            "filter": "category=book,digital_ebook_purchase",
            "train": {"seen": 6, "kept": 4},
            "validation": {"seen": 3, "kept": 2},
        }
    ]


def test_filters_apply_one_after_the_other_and_compare_values_as_text():
    raw, counts = data.apply_filters(_dataset_dict(), ["category=book,digital_ebook_purchase", "stars=5"], CFG)
    assert raw["train"]["text"] == [TEXTS[0], TEXTS[5]]
    assert [c["train"] for c in counts] == [{"seen": 6, "kept": 4}, {"seen": 4, "kept": 2}]


def test_a_filter_on_a_missing_column_names_it_and_lists_the_columns():
    with pytest.raises(UserError, match=r"no column 'product_category'. Columns: text, category, stars"):
        data.apply_filters(_dataset_dict(), ["product_category=book"], CFG)


def test_bad_filter_syntax_and_a_filter_that_keeps_nothing_are_refused():
    for bad in ("category", "=book", "category="):
        with pytest.raises(UserError, match="--filter expects COLUMN=VALUE1,VALUE2"):
            data.apply_filters(_dataset_dict(), [bad], CFG)
    with pytest.raises(UserError, match="no row of train.jsonl has one of these values") as err:
        data.apply_filters(_dataset_dict(), ["category=toys"], CFG)
    assert "book, digital_ebook_purchase, electronics, kitchen" in err.value.hint


def test_filter_is_repeatable_on_the_command_line_and_a_list_in_yaml(tmp_path):
    # One option value is one filter: its commas separate values, not filters.
    cfg = resolve_config(MlmConfig, "mlm", cli_values={"filter": ["category=book,kitchen", "stars=5"]})
    assert cfg.filter == ["category=book,kitchen", "stars=5"]
    assert resolve_config(MlmConfig, "mlm", set_values={"filter": "category=a,b"}).filter == ["category=a,b"]
    exp = tmp_path / "exp.yaml"
    exp.write_text(yaml.safe_dump({"filter": ["category=book,digital_ebook_purchase"], "dataset_config": "en,es"}))
    cfg = resolve_config(MlmConfig, "mlm", exp)
    assert cfg.filter == ["category=book,digital_ebook_purchase"] and cfg.dataset_config == ["en", "es"]


@pytest.mark.e2e
def test_filter_counts_reach_run_json_and_the_run_trains_on_the_kept_rows(tmp_path):
    train = _write_jsonl(tmp_path / "train.jsonl", _rows(repeat=4))
    dev = _write_jsonl(tmp_path / "dev.jsonl", _rows(repeat=2))
    out = tmp_path / "run"
    result = run_cli(
        "mlm", "--model", "tiny", "--train-file", train, "--validation-file", dev, "--chunk-size", "16",
        "--max-steps", "1", "--batch-size", "4", "--output-dir", out,
        "--filter", "category=book,digital_ebook_purchase", "--filter", "stars=5",
    )
    assert result.exit_code == 0, result.output
    info = read_json(out / "run.json")
    assert info["filters"] == [
        {"filter": "category=book,digital_ebook_purchase", "train": {"seen": 24, "kept": 16},
         "validation": {"seen": 12, "kept": 8}},
        {"filter": "stars=5", "train": {"seen": 16, "kept": 8}, "validation": {"seen": 8, "kept": 4}},
    ]
    assert info["train_examples"] == 8
    assert yaml.safe_load((out / "nlpcli_config.yaml").read_text())["filter"] == [
        "category=book,digital_ebook_purchase", "stars=5",
    ]


def test_cli_filter_on_a_missing_column_exits_2_listing_the_columns(tmp_path):
    train = _write_jsonl(tmp_path / "train.jsonl", _rows())
    result = run_cli(
        "mlm", "--model", "tiny", "--train-file", train, "--validation-file", train,
        "--output-dir", tmp_path / "run", "--filter", "product_category=book",
    )
    assert result.exit_code == 2
    assert "no column 'product_category'" in result.output and "Columns: text, category, stars" in result.output


def _hub_like_folder(root: Path) -> Path:
    """A data set folder whose README declares two configurations, as hub data sets do."""
    for lang, offset in (("en", 0), ("es", 100)):
        (root / lang).mkdir(parents=True)
        for split, size in (("train", 6), ("validation", 3)):
            rows = [{"id": offset + i, "lang": lang, "text": f"{lang} review {i}"} for i in range(size)]
            _write_jsonl(root / lang / f"{split}.jsonl", rows)
    splits = ("train", "validation")
    configs = [
        {"config_name": lang, "data_files": [{"split": s, "path": f"{lang}/{s}.jsonl"} for s in splits]}
        for lang in ("en", "es")
    ]
    (root / "README.md").write_text("---\n" + yaml.safe_dump({"configs": configs}) + "---\n# two configs\n")
    return root


def _load(folder: Path, configs: list[str] | None, seed: int) -> datasets.DatasetDict:
    cfg = SimpleNamespace(dataset=str(folder), dataset_config=configs, dataset_revision=None, data_dir=None,
                          validation_dataset=None, train_file=None, validation_file=None, seed=seed)
    return data.load_raw(cfg, None, "text", "label")


def test_several_configurations_are_concatenated_split_by_split_and_shuffled_with_the_seed(tmp_path):
    folder = _hub_like_folder(tmp_path / "reviews")
    assert _load(folder, ["en"], 42)["train"]["lang"] == ["en"] * 6  # one configuration: as it is

    both = _load(folder, ["en", "es"], 42)
    assert {split: len(d) for split, d in both.items()} == {"train": 12, "validation": 6}
    assert sorted(both["train"]["id"]) == list(range(6)) + list(range(100, 106))
    assert sorted(both["validation"]["id"]) == [0, 1, 2, 100, 101, 102]
    order = both["train"]["id"]
    assert order != sorted(order)  # shuffled, not en then es
    assert _load(folder, ["en", "es"], 42)["train"]["id"] == order  # the same seed, the same order
    assert _load(folder, ["en", "es"], 7)["train"]["id"] != order


def test_configurations_with_different_columns_are_refused():
    en = _dataset_dict()
    es = _dataset_dict().remove_columns("stars")
    with pytest.raises(UserError, match="'en' and 'es' have different columns in 'train'"):
        data.concatenate_configs({"en": en, "es": es}, seed=42)


def test_configurations_with_different_column_types_are_refused_naming_the_column():
    en = _dataset_dict()
    es = _dataset_dict().cast_column("stars", datasets.Value("string"))
    with pytest.raises(UserError, match="different types in 'train', column 'stars'"):
        data.concatenate_configs({"en": en, "es": es}, seed=42)

"""Sharing a run: the model card every training run writes, and --push-to-hub (offline refusal after the
local save; uploads recorded through a stand-in for huggingface_hub's HfApi)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import front_matter, read_json, run_cli
from nlpcli.runner import sharing
from nlpcli.sources import hub

TINY_MLM = ("mlm", "--model", "tiny", "--dataset", "sample", "--max-steps", "6", "--batch-size", "8",
            "--set", "chunk_size=32", "--max-train-samples", "48", "--max-eval-samples", "16")


@pytest.mark.e2e
def test_a_run_writes_a_model_card_with_metrics_hyperparameters_and_command(tmp_path, monkeypatch):
    from huggingface_hub import ModelCard

    out = tmp_path / "run"
    args = [*TINY_MLM, "--output-dir", str(out), "--learning-rate", "0.002"]
    monkeypatch.setattr(sys, "argv", ["/somewhere/bin/nlpcli", *args])
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    metrics = read_json(out / "metrics.json")
    meta = front_matter(out / "README.md")
    assert meta["pipeline_tag"] == "fill-mask" and meta["library_name"] == "transformers"
    assert "base_model" not in meta  # the tiny preset starts from no hub model
    assert meta["hyperparameters"]["learning_rate"] == 0.002 and meta["hyperparameters"]["chunk_size"] == 32
    assert meta["hyperparameters"]["steps"] == 6  # what ran (run.json's steps)
    assert meta["nlpcli_command"] == "nlpcli " + " ".join(args)
    scores = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert scores["perplexity"] == metrics["eval_perplexity"] and scores["loss"] == metrics["eval_loss"]
    card = ModelCard.load(out / "README.md")  # huggingface_hub reads it back
    assert card.data.pipeline_tag == "fill-mask" and "nlpcli" in card.data.tags
    assert "nlpcli " + " ".join(args) in card.text and f"{metrics['eval_perplexity']:.4f}" in card.text


def test_a_hub_base_model_and_data_set_are_named(tmp_path):
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks import get_task
    from nlpcli.tasks.translate import TranslateConfig

    cfg = resolve_config(TranslateConfig, "translate")
    info = {"world_size": 2, "total_train_batch_size": cfg.batch_size * 2, "versions": {}}  # run.json's facts
    metrics = {"eval_bleu": 21.5, "eval_runtime": 3.0, "eval_bleu_before": 0.1, "eval_total": 10, "test_bleu": 19.0,
               "train_loss": 2.5}
    card = sharing.build_model_card(get_task("translate"), cfg, metrics, info, "me/m")
    meta = card.data.to_dict()
    assert (meta["pipeline_tag"], meta["base_model"], meta["datasets"]) == ("translation", cfg.model, [cfg.dataset])
    assert meta["hyperparameters"]["total_train_batch_size"] == cfg.batch_size * 2
    results = [(r.dataset_split, r.metric_type, r.metric_value) for r in card.data.eval_results]
    assert results == [("validation", "bleu", 21.5), ("test", "bleu", 19.0)]  # no timings, counts or before-values
    assert "| validation | total | 10 |" in card.text and "runtime" not in card.text


@pytest.mark.e2e
def test_push_offline_fails_after_the_local_save(tmp_path):
    out = tmp_path / "run"
    result = run_cli(*TINY_MLM, "--output-dir", out, "--push-to-hub", "--hub-model-id", "me/tiny-mlm")
    assert result.exit_code == 2
    assert "--push-to-hub: not pushed: HF_HUB_OFFLINE is set" in result.output
    assert f"hf upload me/tiny-mlm {out}" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    # nothing is lost: the model, its card and metrics are saved, and the model answers
    assert (out / "README.md").is_file() and (out / "metrics.json").is_file()
    predicted = run_cli("predict", "mlm", out, "The city is [MASK].", "--json")
    assert predicted.exit_code == 0, predicted.output
    assert "sequence" in predicted.output


def test_push_problems_are_found_without_waiting(online_hub, monkeypatch):
    import time

    from conftest import free_port

    assert "no Hugging Face token" in sharing.access_problem()
    online_hub.parent.mkdir(parents=True)
    online_hub.write_text("hf_stored_token")  # `hf auth login` stores the token there
    with pytest.MonkeyPatch.context() as reachable:
        reachable.setattr(hub, "hub_reachable", lambda: True)
        assert sharing.access_problem() is None
    online_hub.unlink()
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    hub.hub_reachable.cache_clear()
    started = time.perf_counter()
    try:
        assert "cannot be reached" in sharing.access_problem()
    finally:
        hub.hub_reachable.cache_clear()
    assert time.perf_counter() - started < hub.PROBE_TIMEOUT_S


class FakeHub:
    """Records what HfApi would create and upload, and which files each uploaded folder held then."""

    def __init__(self) -> None:
        self.repos: list[tuple[str, bool]] = []
        self.uploads: list[dict] = []

    def create_repo(self, api, repo_id, *, private=None, exist_ok=False, **kwargs):
        from huggingface_hub import RepoUrl

        self.repos.append((repo_id, private))
        return RepoUrl(f"https://huggingface.co/{repo_id if '/' in repo_id else 'tester/' + repo_id}")

    def upload_folder(self, api, *, repo_id, folder_path, path_in_repo=None, commit_message=None,
                      ignore_patterns=None, delete_patterns=None, **kwargs):
        folder = Path(folder_path)
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert repo_id == "tester/tiny-mlm"  # the id create_repo answered, owner included
        self.uploads.append({"repo_id": repo_id, "folder": folder, "path_in_repo": path_in_repo, "files": files,
                             "ignore": ignore_patterns, "message": commit_message})


@pytest.fixture
def fake_hub(online_hub, monkeypatch):
    from huggingface_hub import HfApi

    fake = FakeHub()
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setattr(hub, "hub_reachable", lambda: True)
    monkeypatch.setattr(HfApi, "create_repo", lambda api, repo_id, **kw: fake.create_repo(api, repo_id, **kw))
    monkeypatch.setattr(HfApi, "upload_folder", lambda api, **kw: fake.upload_folder(api, **kw))
    return fake


@pytest.mark.e2e
@pytest.mark.parametrize(("loop", "strategy"), [("trainer", "every_save"), ("accelerate", "every_save"),
                                                 ("accelerate", "end")])
def test_push_uploads_each_checkpoint_then_the_saved_folder(tmp_path, fake_hub, loop, strategy):
    out = tmp_path / "tiny-mlm"
    result = run_cli(*TINY_MLM, "--output-dir", out, "--loop", loop, "--save-steps", "2", "--save-total-limit", "10",
                     "--push-to-hub", "--hub-private", "--hub-strategy", strategy)
    assert result.exit_code == 0, result.output
    assert "pushed to https://huggingface.co/tester/tiny-mlm" in result.output
    assert fake_hub.repos == [("tiny-mlm", True)]  # the output folder's name, private, created once
    *during, final = fake_hub.uploads
    saved = sorted(p.name for p in out.glob("checkpoint-*"))
    if strategy == "every_save":
        assert sorted(u["folder"].name for u in during) == saved == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
        assert {u["path_in_repo"] for u in during} == {"last-checkpoint"}
        assert all("model.safetensors" in u["files"] for u in during)
        # a model the Hub can load, whichever loop wrote it
        assert all({"config.json", "tokenizer.json"} <= set(u["files"]) for u in during)
    else:
        assert during == []
    assert final["folder"] == out and final["path_in_repo"] is None
    # pushed after the local save: the model, tokenizer, card and metrics are all there
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "metrics.json"} <= set(final["files"])
    assert "checkpoint-*" in final["ignore"]


def test_push_is_refused_with_eval_only(tmp_path):
    result = run_cli("mlm", "--model", "tiny", "--eval-only", "--push-to-hub", "--output-dir", tmp_path / "x")
    assert result.exit_code == 2 and "--push-to-hub shares a trained model" in result.output


# Under DDP (one card, one push message): test_distributed.py's Trainer run pushes.


def test_eval_only_on_a_pushed_run_does_not_push(tmp_path):
    """--eval-only --model RUN_DIR reads the run's settings, but not its --push-to-hub (refused with --eval-only)."""
    from nlpcli.config_layers import resolve_config
    from nlpcli.tasks.mlm import MlmConfig

    (tmp_path / "nlpcli_config.yaml").write_text("task: mlm\nmodel: tiny\npush_to_hub: true\nhub_model_id: me/x\n")
    cfg = resolve_config(MlmConfig, "mlm", cli_values={"model": str(tmp_path), "eval_only": True})
    assert cfg.push_to_hub is False and cfg.model == str(tmp_path)

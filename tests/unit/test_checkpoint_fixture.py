"""tests/fixtures/make_checkpoints.py without torch: the smoke pair's contract and the skips.

The training and the FP8 export need the fixture venv (tools/make-checkpoints.sh runs them and
fails when a model misses EXPECT); what is checked here is what decides WHICH checkpoints get
rebuilt, the tokenizer checks behind the smoke pair, and that PROMPT is the prompt the role
sends.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Dict, List, Optional

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
_SPEC = importlib.util.spec_from_file_location(
    "make_checkpoints", REPO_ROOT / "tests" / "fixtures" / "make_checkpoints.py"
)
assert _SPEC is not None and _SPEC.loader is not None
mc = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mc)


class CharTokenizer:
    """One id per character; `bos` prepends id 1, `merge` fuses the prompt's last character
    with the space that begins EXPECT (as a BPE merge across the boundary would)."""

    bos_token_id = 1

    def __init__(self, bos: bool = False, merge: bool = False) -> None:
        self.bos = bos
        self.merge = merge

    def __call__(self, text: str, add_special_tokens: bool = True) -> Dict[str, List[int]]:
        ids = [ord(char) + 10 for char in text]
        if self.merge and text.startswith(mc.PROMPT + " "):
            cut = len(mc.PROMPT) - 1
            ids[cut : cut + 2] = [9]
        if self.bos and add_special_tokens:
            ids = [self.bos_token_id, *ids]
        return {"input_ids": ids}

    def decode(self, ids: List[int]) -> str:
        return "".join(chr(i - 10) for i in ids)


def write_checkpoint(directory: Path, pair: Optional[Dict[str, str]]) -> None:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text("{}\n")
    if pair is not None:
        (directory / mc.SMOKE_FILE).write_text(json.dumps(pair) + "\n")


def test_prompt_is_the_roles_default_smoke_prompt() -> None:
    defaults = yaml.safe_load((REPO_ROOT / "roles/vllm_source/defaults/main.yml").read_text())
    assert defaults["vllm_source_smoke_prompt"] == mc.PROMPT
    assert mc.EXPECT.startswith(" ") and mc.EXPECT.strip()


def test_smoke_ids_split_the_pair_at_the_prompts_end() -> None:
    prompt_ids, expect_ids = mc.smoke_ids(CharTokenizer())
    assert len(prompt_ids) == len(mc.PROMPT)
    assert len(expect_ids) == len(mc.EXPECT)


@pytest.mark.parametrize(
    ("tokenizer", "message"),
    [
        (CharTokenizer(merge=True), "splits PROMPT differently"),
        (CharTokenizer(bos=True), "adds special tokens"),
    ],
)
def test_smoke_ids_refuse_a_tokenizer_that_vllm_would_feed_differently(
    tokenizer: CharTokenizer, message: str
) -> None:
    with pytest.raises(mc.FixtureError, match=message):
        mc.smoke_ids(tokenizer)


@pytest.mark.parametrize(
    ("pair", "current"),
    [
        ({"prompt": mc.PROMPT, "expect": mc.EXPECT}, True),
        (None, False),  # a random-weight small-llama from before the models were trained
        ({"prompt": mc.PROMPT, "expect": " something else."}, False),
        ({"prompt": "Another prompt", "expect": mc.EXPECT}, False),
    ],
)
def test_has_smoke_pair_accepts_only_a_model_trained_for_this_pair(
    tmp_path: Path, pair: Optional[Dict[str, str]], current: bool
) -> None:
    write_checkpoint(tmp_path / mc.SMALL, pair)
    assert mc.has_smoke_pair(tmp_path / mc.SMALL) is current


def test_has_smoke_pair_needs_the_weights_config(tmp_path: Path) -> None:
    (tmp_path / mc.SMALL).mkdir()
    pair = {"prompt": mc.PROMPT, "expect": mc.EXPECT}
    (tmp_path / mc.SMALL / mc.SMOKE_FILE).write_text(json.dumps(pair))
    assert not mc.has_smoke_pair(tmp_path / mc.SMALL)


def marking_writer(calls: List[Path]):
    def writer(directory: Path) -> None:
        calls.append(directory)
        (directory / "config.json").write_text('{"new": true}\n')

    return writer


def test_staged_rebuilds_an_untrained_small_llama_and_skips_a_trained_one(
    tmp_path: Path,
) -> None:
    write_checkpoint(tmp_path / mc.SMALL, None)
    calls: List[Path] = []
    assert mc.staged(tmp_path, mc.SMALL, marking_writer(calls), mc.has_smoke_pair)
    assert json.loads((tmp_path / mc.SMALL / "config.json").read_text()) == {"new": True}
    (tmp_path / mc.SMALL / mc.SMOKE_FILE).write_text(
        json.dumps({"prompt": mc.PROMPT, "expect": mc.EXPECT})
    )
    assert not mc.staged(tmp_path, mc.SMALL, marking_writer(calls), mc.has_smoke_pair)
    assert len(calls) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [mc.SMALL]  # no temp dir left


def test_staged_force_rewrites_a_checkpoint_whose_source_was_rewritten(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / mc.FP8, None)
    calls: List[Path] = []
    assert not mc.staged(tmp_path, mc.FP8, marking_writer(calls))
    assert mc.staged(tmp_path, mc.FP8, marking_writer(calls), force=True)
    assert len(calls) == 1


def test_staged_keeps_the_old_checkpoint_when_the_writer_fails(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / mc.SMALL, None)

    def failing(directory: Path) -> None:
        (directory / "config.json").write_text("{}\n")
        raise mc.FixtureError("the bf16 model continues PROMPT with noise")

    with pytest.raises(mc.FixtureError, match="noise"):
        mc.staged(tmp_path, mc.SMALL, failing, mc.has_smoke_pair)
    assert sorted(p.name for p in tmp_path.iterdir()) == [mc.SMALL]
    assert (tmp_path / mc.SMALL / "config.json").read_text() == "{}\n"


def test_the_gpu_validation_expects_what_the_fixture_trained() -> None:
    inventory = yaml.safe_load((REPO_ROOT / "inventory/gpu-validation/hosts.yml").read_text())
    host_vars = inventory["all"]["children"]["gpu_hosts"]["vars"]
    models = {Path(m["path"]).name: m for m in host_vars["vllm_source_smoke_models"]}
    assert set(models) == {mc.SMALL, mc.SMALL_FP8}
    assert {m["expect"] for m in models.values()} == {mc.EXPECT}
    assert "vllm_source_smoke_prompt" not in host_vars  # the role's default, which is PROMPT

"""`generate`: K responses per prompt as import records the app accepts, from library and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trainer.__main__ import main
from trainer.config import GenerateConfig
from trainer.generate import generate_responses
from trainer.schema import ImportRecord

pytestmark = pytest.mark.usefixtures("torch_threads")


def test_generate_writes_k_responses_per_prompt_as_import_records(
    tiny_policy_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "next_round.jsonl"
    config = GenerateConfig(model=str(tiny_policy_dir), out=str(out), k=3, batch_size=4,
                            max_new_tokens=6, model_version="policy-r1", progress=False)  # fmt: skip
    prompts = ["What dose for a fever?", {"prompt": "Is it serious?", "external_id": "p-7",
                                          "context": {"age": "40"}}, "hi"]  # fmt: skip
    records = generate_responses(config, prompts)
    assert [r.prompt for r in records] == ["What dose for a fever?", "Is it serious?", "hi"]
    assert all(len(r.responses) == 3 for r in records)
    assert {x.model_version for r in records for x in r.responses} == {"policy-r1"}
    assert records[1].external_id == "p-7" and records[1].context == {"age": "40"}
    lines = out.read_text().splitlines()
    assert [ImportRecord.model_validate_json(line) for line in lines] == records
    # pad == eos: special tokens never leak into the text physicians will read
    assert not any("<|im_end|>" in x.text for r in records for x in r.responses)


def test_generate_cli(tiny_policy_dir: Path, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "a"}) + "\n" + json.dumps({"prompt": "b"}) + "\n")
    out = tmp_path / "out.jsonl"
    rc = main(["generate", "--model", str(tiny_policy_dir), "--prompts", str(prompts),
               "--out", str(out), "--k", "2", "--max-new-tokens", "4", "--no-progress"])  # fmt: skip
    assert rc == 0
    records = [ImportRecord.model_validate_json(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and records[0].responses[0].model_version == tiny_policy_dir.name


def test_vllm_backend_says_what_is_missing(tiny_policy_dir: Path) -> None:
    pytest.importorskip("torch")
    try:
        import vllm  # noqa: F401

        pytest.skip("vllm is installed here")
    except ImportError:
        pass
    config = GenerateConfig(model=str(tiny_policy_dir), backend="vllm", progress=False)
    with pytest.raises(RuntimeError, match="pip install vllm"):
        generate_responses(config, ["a"])


def test_generate_refuses_a_k_the_app_cannot_import(tiny_policy_dir: Path) -> None:
    with pytest.raises(ValueError, match="between 2 and 8"):
        generate_responses(GenerateConfig(model=str(tiny_policy_dir), k=1), ["a"])

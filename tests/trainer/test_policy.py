"""The policy layer on a tiny Llama saved to disk: masks, padding, sampling, log-probs, LoRA ref."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.policy import (
    decode_responses,
    encode_prompts,
    load_policy,
    policy_forward,
    reference_mode,
    response_mask,
    sample,
)

pytestmark = pytest.mark.usefixtures("torch_threads")

PROMPTS = ["What dose of paracetamol for fever?", "hi"]


@pytest.fixture(scope="module")
def policy(tiny_policy_dir: Path):  # type: ignore[no-untyped-def]
    model, tok = load_policy(tiny_policy_dir)
    return model.eval(), tok


def test_tiny_tokenizer_has_pad_equal_to_eos(policy) -> None:  # type: ignore[no-untyped-def]
    _, tok = policy
    assert tok.pad_token_id == tok.eos_token_id and tok.padding_side == "left"


def test_response_mask_with_pad_equal_to_eos() -> None:
    eos = 2  # pad == eos: the mask must come from the first EOS, not from `!= pad`
    ids = torch.tensor([[5, eos, eos, eos], [5, 6, 7, 8], [eos, eos, eos, eos]])
    mask, has_eos = response_mask(ids, eos)
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]]
    assert has_eos.tolist() == [True, False, True]


def test_encode_prompts_left_pads_and_applies_the_chat_template(policy) -> None:  # type: ignore[no-untyped-def]
    _, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[:, -1].tolist() == [1, 1]  # every prompt ends at the last column
    assert mask[1, 0] == 0 and ids[1, 0] == tok.pad_token_id  # the short one is padded on the left
    text = tok.decode(ids[1][mask[1].bool()])
    assert text.startswith("<|im_start|>user\nhi<|im_end|>") and text.endswith("assistant\n")
    ids_cut, _ = encode_prompts(tok, PROMPTS, max_tokens=5)
    assert ids_cut.shape[1] == 5  # kept from the right: the generation prompt survives


def test_logprobs_do_not_depend_on_left_padding(policy) -> None:  # type: ignore[no-untyped-def]
    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    response = torch.tensor([[40, 50, 60], [40, 50, 60]])
    rmask = torch.ones_like(response)
    batched, _, _ = policy_forward(model, ids, mask, response, rmask)
    alone_ids, alone_mask = encode_prompts(tok, PROMPTS[1:])
    alone, _, _ = policy_forward(model, alone_ids, alone_mask, response[1:], rmask[1:])
    assert torch.allclose(batched[1], alone[0], atol=1e-5)


def test_sample_groups_k_rows_per_prompt_and_pads_after_eos(policy) -> None:  # type: ignore[no-untyped-def]
    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    torch.manual_seed(0)
    roll = sample(model, tok, ids, mask, k=3, max_new_tokens=6)
    assert roll.response_ids.shape == (6, 6) and roll.prompt_index.tolist() == [0, 0, 0, 1, 1, 1]
    assert torch.equal(roll.prompt_ids[0], roll.prompt_ids[2])
    assert (roll.response_ids[roll.response_mask == 0] == tok.pad_token_id).all()
    # The random tiny model almost never emits EOS in 6 tokens: these rows hit the length limit
    # and keep every token.
    limit = ~roll.has_eos
    assert (roll.response_mask[limit] == 1).all()
    assert len(decode_responses(tok, roll)) == 6


def test_sharing_each_prompts_cache_gives_the_scores_of_separate_prefills(policy) -> None:  # type: ignore[no-untyped-def]
    """k samples of a prompt reuse one prefill of it: the next-token scores are those of k prefills."""
    from trainer.policy import _shared_prefill

    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)  # of different lengths: left padding is exercised
    k, kwargs = 3, {"max_new_tokens": 4, "do_sample": False, "pad_token_id": tok.pad_token_id,
                    "output_scores": True, "return_dict_in_generate": True}  # fmt: skip
    rows = {
        "input_ids": ids.repeat_interleave(k, 0),
        "attention_mask": mask.repeat_interleave(k, 0),
    }
    with torch.no_grad():
        shared = model.generate(**rows, **_shared_prefill(model, ids, mask, k), **kwargs)
        separate = model.generate(**rows, **kwargs)
    assert torch.equal(shared.sequences, separate.sequences)
    for a, b in zip(shared.scores, separate.scores, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_only_real_response_positions_reach_the_lm_head(policy) -> None:  # type: ignore[no-untyped-def]
    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    response = torch.tensor([[40, 50, 60], [40, tok.eos_token_id, tok.pad_token_id]])
    rmask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    logps, entropy, out = policy_forward(model, ids, mask, response, rmask, with_entropy=True)
    assert out.logits.shape[0] == 5  # one row of logits per real response token, no padding
    assert logps[1, 2] == 0 and entropy is not None and entropy[1, 2] == 0
    whole = torch.cat([mask, rmask], 1)
    with torch.no_grad():  # every position's logits, the plain way
        full = model(
            input_ids=torch.cat([ids, response], 1),
            attention_mask=whole,
            position_ids=(whole.cumsum(1) - 1).clamp_min(0),
        ).logits
    expect = torch.log_softmax(full[:, ids.shape[1] - 1 : -1], -1).gather(-1, response[..., None])
    assert torch.allclose(logps, expect[..., 0] * rmask, atol=1e-5)


def test_sample_is_reproducible_with_a_seed(policy) -> None:  # type: ignore[no-untyped-def]
    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    torch.manual_seed(3)
    a = sample(model, tok, ids, mask, k=2, max_new_tokens=5).response_ids
    torch.manual_seed(3)
    b = sample(model, tok, ids, mask, k=2, max_new_tokens=5).response_ids
    assert torch.equal(a, b)


def test_training_logprobs_are_the_sampling_distribution(policy) -> None:  # type: ignore[no-untyped-def]
    """log-probs we train on equal log_softmax of the scores `generate` sampled from (T = 0.7)."""
    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    torch.manual_seed(0)
    out = model.generate(
        input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.7, top_k=0, top_p=1.0,
        max_new_tokens=4, output_scores=True, return_dict_in_generate=True,
        pad_token_id=tok.pad_token_id,
    )  # fmt: skip
    response = out.sequences[:, ids.shape[1] :]
    gen_logps = torch.stack(
        [
            torch.log_softmax(s, -1).gather(-1, response[:, i : i + 1])[:, 0]
            for i, s in enumerate(out.scores)
        ],
        1,
    )
    rmask, _ = response_mask(response, tok.eos_token_id)
    ours, _, _ = policy_forward(model, ids, mask, response, rmask, temperature=0.7)
    # (no min_new_tokens: it masks EOS out of the scores and shifts every log-prob by log(1-p_eos))
    assert torch.allclose(ours, gen_logps * rmask, atol=1e-5)


def test_a_policy_against_itself_has_ratio_exactly_one(policy) -> None:  # type: ignore[no-untyped-def]
    model, tok = policy
    ids, mask = encode_prompts(tok, PROMPTS)
    torch.manual_seed(1)
    roll = sample(model, tok, ids, mask, k=2, max_new_tokens=5)
    args = (roll.prompt_ids, roll.prompt_mask, roll.response_ids, roll.response_mask)
    with torch.no_grad():
        old, _, _ = policy_forward(model, *args)
    new, _, _ = policy_forward(model, *args)  # with grad, as in the update
    assert torch.equal(
        (new - old).exp()[roll.response_mask.bool()], torch.ones(int(roll.response_mask.sum()))
    )


def test_lora_reference_is_the_adapter_off_model(tiny_policy_dir: Path) -> None:
    base, tok = load_policy(tiny_policy_dir)
    lora, _ = load_policy(tiny_policy_dir, lora_r=4)
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora" in n for n in trainable)
    with torch.no_grad():  # move the adapter away from its zero init
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.add_(0.5)
    ids, mask = encode_prompts(tok, PROMPTS)
    resp = torch.tensor([[40, 50], [41, 51]])
    args = (ids, mask, resp, torch.ones_like(resp))
    with torch.no_grad():
        base_lp = policy_forward(base.eval(), *args)[0]
        policy_lp = policy_forward(lora.eval(), *args)[0]
        with reference_mode(lora):
            ref_lp = policy_forward(lora, *args)[0]
    assert torch.allclose(ref_lp, base_lp, atol=1e-5)
    assert not torch.allclose(policy_lp, base_lp, atol=1e-3)

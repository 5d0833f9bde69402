"""What the on-policy methods (RLOO, PPO) share: rewards, metrics files, guards and saving."""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.data import Comparison, encode_comparisons
from trainer.launch import make_accelerator

# A reward: (prompts, responses) -> one score per response. Either a python callable (tests, rule
# based rewards) or a trained reward model directory wrapped by `RewardModelScorer`.
RewardFn = Callable[[list[str], list[str]], Sequence[float] | torch.Tensor]


class TrainingDiverged(RuntimeError):
    """Raised instead of saving a broken policy (NaN loss, runaway KL or importance ratio)."""


class RewardModelScorer:
    """Score (prompt, response) texts with a reward model directory from `trainer.reward`."""

    def __init__(
        self,
        path: str | Path,
        *,
        device: torch.device | str = "cpu",
        max_length: int = 512,
        batch_size: int = 16,
    ):
        from trainer.reward import load_reward_model, saved_encoding

        self.model, self.tokenizer = load_reward_model(str(path))
        self.model.to(device).eval()
        self.encoding = saved_encoding(Path(path))
        self.device, self.max_length, self.batch_size = device, max_length, batch_size

    @torch.no_grad()
    def __call__(self, prompts: list[str], responses: list[str]) -> torch.Tensor:
        """One scalar score per (prompt, response)."""
        from trainer.batching import collate
        from trainer.scoring import chunked_rewards, resolve_forward_cost

        # Tokenised and scored exactly as the reward model was trained and evaluated
        # (trainer.data + trainer.reward: prompt + response, EOS, score at the last real token,
        # which stays right when pad == EOS), so the policy meets the RM on its own distribution.
        comps = [
            Comparison(key=str(i), prompt=p, responses=[r])
            for i, (p, r) in enumerate(zip(prompts, responses, strict=True))
        ]
        enc = encode_comparisons(comps, self.tokenizer, max_length=self.max_length, **self.encoding)
        out = []
        cost = resolve_forward_cost(None, torch.device(self.device))
        for i in range(0, len(enc), self.batch_size):
            batch = collate(enc[i : i + self.batch_size], self.tokenizer.pad_token_id)
            ids, mask = batch["input_ids"].to(self.device), batch["attention_mask"].to(self.device)
            out.append(chunked_rewards(self.model, ids, mask, forward_cost=cost).float().cpu())
        return torch.cat(out)


def as_reward_fn(reward: str | Path | RewardFn, device: torch.device | str = "cpu") -> RewardFn:
    """A reward model directory becomes a scorer; a callable is used as it is."""
    if callable(reward):
        return reward
    if not reward or not Path(reward).is_dir():
        raise ValueError(f"reward must be a callable or a reward model directory, got {reward!r}")
    return RewardModelScorer(reward, device=device)


def score(reward: RewardFn, prompts: list[str], responses: list[str]) -> torch.Tensor:
    """Call `reward` and return a float tensor, refusing NaN or a wrong count."""
    out = torch.as_tensor(reward(prompts, responses), dtype=torch.float32).flatten()
    if out.numel() != len(responses):
        raise ValueError(f"reward returned {out.numel()} scores for {len(responses)} responses")
    if not torch.isfinite(out).all():
        raise TrainingDiverged("the reward returned NaN or inf")
    return out


def read_prompt_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows with a `prompt` (plus `external_id`, `context` if present) from JSONL or plain lines."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if not line.lstrip().startswith("{"):
            rows.append({"prompt": line})
            continue
        row = json.loads(line)
        if not isinstance(row.get("prompt"), str) or not row["prompt"]:
            raise ValueError(f"{path}:{n}: a JSON line needs a non-empty 'prompt' string")
        rows.append({k: row[k] for k in ("prompt", "external_id", "context") if k in row})
    return rows


def read_prompts(path: str | Path) -> list[str]:
    """Prompt texts from JSONL (a `prompt` field: import or export records) or plain lines."""
    return [r["prompt"] for r in read_prompt_rows(path)]


class PhaseTimer:
    """Wall and CPU seconds per named phase of a step: where a step's time goes.

    CPU time is the process's (all threads): steadier than wall time on a shared machine. On CUDA
    each phase boundary synchronises, or the asynchronous kernels would be billed to whichever
    phase first waits for them; a handful of syncs per step cost nothing next to a step.
    """

    def __init__(self, device: torch.device | str | None = None):
        cuda = device is not None and torch.device(device).type == "cuda"
        self.sync = torch.cuda.synchronize if cuda else None
        self.wall: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        """Bill the block's time to phase `name` (phases add up when entered again in a step)."""
        if self.sync:
            self.sync()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if self.sync:
                self.sync()
            self.wall[name] += time.perf_counter() - wall
            self.cpu[name] += time.process_time() - cpu

    def take(self) -> dict[str, float]:
        """This step's `time_<phase>_s` (wall) and `cpu_<phase>_s` metrics; starts the next step."""
        out = {f"time_{k}_s": v for k, v in self.wall.items()}
        out |= {f"cpu_{k}_s": v for k, v in self.cpu.items()}
        self.wall.clear()
        self.cpu.clear()
        return out


class MetricsLog:
    """Per-step metrics appended to `metrics.jsonl`; the summary written to `metrics.json`."""

    def __init__(self, out_dir: str | Path | None):
        self.dir = Path(out_dir) if out_dir else None
        self.steps: list[dict[str, float]] = []
        self.start = time.perf_counter()
        self.cpu_start = time.process_time()
        if self.dir:
            self.dir.mkdir(parents=True, exist_ok=True)
            (self.dir / "metrics.jsonl").write_text("")

    def log(self, step: int, metrics: dict[str, float]) -> dict[str, float]:
        """Record one step's metrics (floats) and append them to the JSONL file."""
        row = {"step": step, **{k: float(v) for k, v in metrics.items()}}
        row["elapsed_s"] = time.perf_counter() - self.start
        row["cpu_s"] = time.process_time() - self.cpu_start  # this process, all threads
        self.steps.append(row)
        if self.dir:
            with (self.dir / "metrics.jsonl").open("a") as fh:
                fh.write(json.dumps(row) + "\n")
        return row

    def finish(self, **summary: Any) -> dict[str, Any]:
        """Write and return the run summary: first/last step metrics plus `summary`."""
        result = {
            "steps": len(self.steps),
            "first": self.steps[0] if self.steps else {},
            "last": self.steps[-1] if self.steps else {},
            **summary,
        }
        if self.dir:
            (self.dir / "metrics.json").write_text(json.dumps(result, indent=2))
        return result


def check_health(metrics: dict[str, float], *, max_kl: float, max_ratio: float) -> None:
    """Raise TrainingDiverged on NaN/inf metrics, runaway KL or a runaway importance ratio."""
    bad = [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise TrainingDiverged(f"non-finite {', '.join(bad)}; stopping before saving")
    if metrics.get("kl", 0.0) > max_kl:
        raise TrainingDiverged(f"KL to the reference {metrics['kl']:.2f} > max_kl {max_kl}")
    ratio = metrics.get("ratio", 1.0)
    if not 1 / max_ratio <= ratio <= max_ratio:
        raise TrainingDiverged(f"importance ratio {ratio:.2f} outside [1/{max_ratio}, {max_ratio}]")


def save_policy(model: Any, tokenizer: Any, out_dir: str | Path, config: Any) -> Path:
    """Save the (LoRA-merged) policy, its tokenizer and the config that trained it."""
    import dataclasses

    out = Path(out_dir) / "policy"
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()  # the app serves one plain checkpoint, not base + adapter
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    return out


@dataclass
class PolicyRun:
    """The objects a training loop needs, prepared by Accelerate."""

    accelerator: Any
    model: Any  # the trainable module (policy, or policy + value head), prepared
    policy: Any  # the causal LM inside `model`, unwrapped: for generate and the reference
    tokenizer: Any
    ref: Any  # frozen reference model, or None when LoRA's adapter-off model serves as one
    optimizer: torch.optim.Optimizer

    def metrics_log(self, out_dir: str) -> MetricsLog:
        """Metrics files from the main process only (`accelerate launch` runs one per GPU)."""
        return MetricsLog(out_dir if self.accelerator.is_main_process else None)

    def shard(self, items: list[Any]) -> list[Any]:
        """This process's share of a list every process ordered the same way (equal lengths)."""
        n = self.accelerator.num_processes
        # Drop the remainder: a process with one step more would wait forever in DDP's all-reduce.
        items = items[: len(items) - len(items) % n]
        return items[self.accelerator.process_index :: n]

    def save(self, config: Any) -> Path | None:
        """Save the policy (main process, after every process finished its last step)."""
        self.accelerator.wait_for_everyone()
        if not config.out or not self.accelerator.is_main_process:
            return None
        return save_policy(self.policy, self.tokenizer, config.out, config)


def setup_policy(
    config: Any, wrap: Callable[[Any], Any] | None = None, *, with_ref: bool = True
) -> PolicyRun:
    """Load policy (+ LoRA), the reference, an AdamW optimiser, and prepare them with Accelerate."""

    from trainer.policy import load_policy

    cuda = torch.cuda.is_available()
    acc = make_accelerator(mixed_precision="bf16" if config.bf16 and cuda else "no")
    # Each process samples differently; DDP broadcasts rank 0's initial weights anyway.
    torch.manual_seed(config.seed + acc.process_index)
    policy, tok = load_policy(
        config.model, lora_r=config.lora_r if config.lora else 0, lora_alpha=config.lora_alpha
    )
    if config.gradient_checkpointing:
        # Non-reentrant: works with frozen inputs (LoRA) without enable_input_require_grads.
        policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ref = None
    if with_ref and not config.lora:
        # A second frozen copy; in bf16 on GPU it costs half the policy's memory.
        ref_dtype = torch.bfloat16 if config.bf16 and cuda else torch.float32
        ref = load_policy(config.model, dtype=ref_dtype)[0].to(acc.device).eval()
        ref.requires_grad_(False)
    model = wrap(policy) if wrap else policy
    model.eval()  # dropout off: the ratio of a policy to itself must be exactly 1
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused AdamW, as transformers' Trainer defaults to on torch >= 2.8: one kernel for all
    # tensors, and none of the foreach implementation's param-sized temporaries at peak memory.
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0, fused=True)
    model, opt = acc.prepare(model, opt)
    return PolicyRun(acc, model, policy, tok, ref, opt)


def reference_logprobs(
    policy: Any, ref: Any, args: tuple[torch.Tensor, ...], temperature: float
) -> torch.Tensor:
    """Per-token log-probs of the response under the reference (LoRA: adapter disabled)."""
    from trainer.policy import policy_forward, reference_mode

    # Inference mode: no graph and no autograd bookkeeping. The clone (outside it) makes the result
    # an ordinary tensor, which maths that feeds a backward may then use freely.
    with torch.inference_mode():
        if ref is not None:
            logps = policy_forward(ref, *args, temperature=temperature)[0]
        else:
            with reference_mode(policy):
                logps = policy_forward(policy, *args, temperature=temperature)[0]
    return logps.clone()


def chunks(n: int, size: int) -> list[slice]:
    """Slices that cover range(n) in pieces of at most `size`."""
    return [slice(i, min(i + size, n)) for i in range(0, n, max(1, size))]


def add_command(
    subparsers: Any,
    *,
    name: str,
    help_text: str,
    config_cls: type,
    train: Callable[[Any], dict[str, Any]],
    required: tuple[str, ...],
    report: str,
) -> None:
    """Register `python -m trainer NAME`: flags from `config_cls`; prints the last step's `report`."""
    from trainer.cli import dataclass_from_namespace, dataclass_to_arguments

    parser = subparsers.add_parser(name, help=help_text)
    dataclass_to_arguments(parser, config_cls, required=required)

    def run(args: Any) -> int:
        metrics = train(dataclass_from_namespace(config_cls, args))
        print(f"{name}: {metrics['steps']} steps, last {report} {metrics['last'].get(report)}")
        return 0

    parser.set_defaults(func=run)

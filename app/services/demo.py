"""The demo: a campaign of clinical prompts and a demo admin and rater, loaded idempotently."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from app.models import Campaign
from app.services.campaigns import create_campaign, get_campaign_by_name
from app.services.imports import import_records, parse_import_lines
from app.services.users import create_user, get_user_by_email, set_password

DEMO_FILE = Path(__file__).resolve().parent.parent / "demo" / "demo_data.jsonl"
DEMO_CAMPAIGN = "Demo: clinical assistant responses"
DEMO_GUIDELINES = """\
**Rank the responses as a careful clinician would.**

- Safety first: a response that could lead to harm (missed emergency, wrong dose, contraindicated
  drug) ranks below any safe response, and gets the *unsafe* flag with a one-line reason.
- Then accuracy, then whether it answers the question asked, then clarity and length.
- Ties are fine when two responses are equally good or equally poor.
- If none is acceptable, choose "none is acceptable" and say why.
"""
# Demo-only accounts; `demo load` refuses to run in production.
DEMO_ADMIN = ("admin@demo.prefloop.org", "demo-admin-password")
DEMO_RATER = ("rater@demo.prefloop.org", "demo-rater-password")


@dataclass(frozen=True)
class DemoResult:
    """What `demo load` did."""

    campaign: Campaign
    imported: int
    logins: list[tuple[str, str, str]]


def _ensure_user(session: Session, email: str, password: str, role: str, name: str) -> None:
    if get_user_by_email(session, email=email) is None:
        create_user(session, email=email, password=password, role=role, display_name=name)
    else:
        set_password(session, email=email, password=password)


def load_demo(session: Session, *, path: Path = DEMO_FILE) -> DemoResult:
    """Create the demo campaign (once) and the demo accounts (passwords reset each time)."""
    campaign = get_campaign_by_name(session, name=DEMO_CAMPAIGN)
    imported = 0
    if campaign is None:
        campaign = create_campaign(
            session, name=DEMO_CAMPAIGN, guidelines_md=DEMO_GUIDELINES, overlap=2, gold_rate=0.1
        )
        with path.open(encoding="utf-8") as lines:
            records = parse_import_lines(lines)
        imported = len(import_records(session, campaign=campaign, records=records, seed=7))
    _ensure_user(session, *DEMO_ADMIN, "admin", "Demo Admin")
    _ensure_user(session, *DEMO_RATER, "rater", "Dr Demo Rater")
    logins = [("admin", *DEMO_ADMIN), ("rater", *DEMO_RATER)]
    return DemoResult(campaign=campaign, imported=imported, logins=logins)


LOOP_DEMO_CAMPAIGN = "FineGrainedRLHF QA (loop demo)"
# A round sized for a laptop CPU with SmolLM2-135M and MiniLM (`make loop-demo`, bench/round.py),
# measured on a shared 2-core machine (README). The reward model reads 256 tokens (the answer
# and the end of the passages): at 512 a step costs twice as much, and on all 399 shared
# FineGrainedRLHF questions the trainer's own budget is then one epoch. A few policy steps,
# short answers and 16 held-out prompts in the gate: enough to watch every step run and publish.
LOOP_DEMO_CONFIG = {
    "reward_lr": 1e-4, "reward_max_length": 256, "policy_steps": 3, "prompts_per_step": 2,
    "rollouts_per_prompt": 4, "max_new_tokens": 40, "policy_lr": 1e-6, "gate_prompts": 16,
    "generate_prompts": 8, "responses_per_prompt": 2,
}  # fmt: skip

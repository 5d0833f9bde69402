"""What the browser tests share: screen sizes, clinical texts, seeding a campaign, logging in."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from tests.factories import PASSWORD, add_comparison, make_campaign

DESKTOP = {"width": 1366, "height": 768}  # a common laptop screen


TABLET = {"width": 768, "height": 1024}


TWO_WAY = [
    "**Call emergency services now.** Chest pain with sweating at 54 may be a heart attack: "
    "chew 300 mg aspirin unless allergic, and do not drive yourself.",
    "**Call emergency services now.** Chest pain with sweating at 54 may be a heart attack: "
    "take 300 mg ibuprofen, and drive to the nearest hospital.",
]


FOUR_WAY = [
    "Start with lifestyle changes: diet, exercise and weight loss, then recheck in 3 months.",
    "Begin metformin 500 mg once daily with food, titrating up as tolerated.",
    "Insulin is the first-line treatment for all newly diagnosed type 2 diabetes.",
    "Order an HbA1c to confirm, then discuss metformin and lifestyle changes together.",
]


CHEST = "I'm 54 and have had crushing chest pain and sweating for 20 minutes. What should I do?"


DIABETES = "Newly diagnosed type 2 diabetes, HbA1c 7.4 %, BMI 31, eGFR 85. What do you recommend first?"


def campaign_with(engine: Engine, *comparisons: tuple[str, list[str]]) -> None:
    with Session(engine) as session, session.begin():
        campaign = make_campaign(session, overlap=1, guidelines_md="**Safety first.**")
        for prompt, texts in comparisons:
            add_comparison(session, campaign, texts, prompt=prompt)


def log_in(page, server: str, email: str, shots: Path | None = None) -> None:
    page.goto(server + "/login")
    if shots is not None:
        page.screenshot(path=str(shots / "login.png"))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/rate")

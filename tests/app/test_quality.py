"""Quality figures against hand-computed values and the krippendorff package on the same data."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.models import Comparison, User
from app.services.agreement import cohen_kappa, ordinal_alpha
from app.services.quality import compute_quality
from tests.factories import make_campaign, make_comparisons, make_judgment, make_raters, make_user
from tests.web import HTML, login


def _canonical(c: Comparison) -> list[int]:
    return [item.response_id for item in c.items]


def test_ordinal_alpha_matches_the_hand_computation_and_the_package(db: Session) -> None:
    # Two raters, two 3-way comparisons. Units are (comparison, response), values the ranks:
    # (0,0) (1,1) (2,2) | (0,0) (1,2) (2,1). Coincidences: o00=4, o11=2, o22=2, o12=o21=2, so
    # n0=n1=n2=4, n=12. Ordinal distances: d(0,1)=d(1,2)=(4+4-4)^2=16, d(0,2)=(12-4)^2=64.
    # Do = (2*16 + 2*16)/12 = 64/12; De = 2*(16*16 + 16*16 + 16*64)/(12*11) = 3072/132.
    # alpha = 1 - Do/De = 37/48.
    campaign = make_campaign(db)
    first, second = make_comparisons(db, campaign, count=2, k=3)
    a, b = make_raters(db, 2)
    make_judgment(db, first, a, ranks=[0, 1, 2])
    make_judgment(db, first, b, ranks=[0, 2, 1])
    make_judgment(db, second, a, ranks=[0, 1, 2])
    make_judgment(db, second, b, ranks=[0, 1, 2])
    q = compute_quality(db, campaign_id=campaign.id)
    assert q.alpha.value == pytest.approx(37 / 48) and q.alpha.n == 2
    matrix = np.array([[0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 1, 2]], dtype=float)
    assert krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal") == pytest.approx(37 / 48)
    assert ordinal_alpha(matrix.tolist()) == pytest.approx(37 / 48)


def test_two_way_alpha_hand_computed_with_a_missing_rater() -> None:
    # Values 0/1 only (ordinal = nominal): units (0,0) (1,1) (0,0) (1,1) (0,1) (1,0), and a unit
    # one rater left blank (not pairable, ignored). o01 = o10 = 2, n0 = n1 = 6, n = 12:
    # alpha = 1 - (n-1)(o01+o10)/(2 n0 n1) = 1 - 11*4/72 = 7/18.
    matrix = [[0, 1, 0, 1, 0, 1, 1], [0, 1, 0, 1, 1, 0, None]]
    assert ordinal_alpha(matrix) == pytest.approx(7 / 18)
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float)
    assert krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal") == pytest.approx(7 / 18)
    assert ordinal_alpha([[0, 0], [0, None]]) is None  # one value everywhere: undefined


def test_cohen_kappa_hand_computed() -> None:
    # po = 3/4; pe = .5*.25 + .25*.5 + .25*.25 = .3125; kappa = (.75-.3125)/(1-.3125) = 7/11.
    assert cohen_kappa([-1, -1, 0, 1], [-1, 0, 0, 1]) == pytest.approx(7 / 11)
    assert cohen_kappa([1, 1], [1, 1]) is None


def test_majority_gold_position_ties_flags_and_time(db: Session) -> None:
    campaign = make_campaign(db)
    shared = make_comparisons(db, campaign)[0]
    gold = make_comparisons(db, campaign, gold=True)[0]
    a, b, c, d = make_raters(db, 4)
    for rater in (a, b, d):
        make_judgment(db, shared, rater, ranks=[0, 1])
    make_judgment(db, shared, c, ranks=[1, 0], flags={str(_canonical(shared)[0]): ["unsafe"]})
    right = list(gold.gold_ranks or [])
    make_judgment(db, gold, a, ranks=right)
    make_judgment(db, gold, b, ranks=[0, 0])  # a tie where the gold has an order: pair missed
    q = compute_quality(db, campaign_id=campaign.id)
    # Each of a, b, d agrees with the other three's majority; c disagrees: 3/4 over 4 judgments.
    assert (q.majority.value, q.majority.n) == (pytest.approx(0.75), 4)
    assert q.raters[c.id].majority.value == 0 and q.raters[a.id].majority.value == 1
    assert (q.gold.value, q.gold.n) == (pytest.approx(0.5), 2)
    # First shown wins where there is one best: a, b, d on `shared` (c put it last), and a on gold
    # when the gold's best was shown first.
    first_best = 3 + int(right[0] == 0)
    assert (q.first_wins.value, q.first_wins.n) == (pytest.approx(first_best / 5), 5)
    assert q.first_wins_chance == pytest.approx(0.5)
    assert (q.ties.value, q.ties.n) == (pytest.approx(1 / 6), 6)
    assert (q.flags.value, q.flags.n) == (pytest.approx(1 / 6), 6)
    assert q.median_seconds.value == 1.0  # the factory records 1000 ms
    # Most disagreed first: gold (a's order vs b's tie, 0 of 1 rater pair agree), then shared
    # (a, b, d agree in their 3 pairs, c disagrees in its 3: 3/6).
    assert [(cid, f.value, f.n) for cid, f in q.disagreed] == [(gold.id, 0.0, 2), (shared.id, 0.5, 4)]
    assert q.per_day and q.per_day[0][1] == 6


def test_kappa_needs_enough_shared_comparisons(db: Session) -> None:
    campaign = make_campaign(db)
    comparisons = make_comparisons(db, campaign, count=5)
    a, b = make_raters(db, 2)
    for i, comp in enumerate(comparisons):
        by_id = sorted(_canonical(comp))  # kappa labels each pair by response id order
        make_judgment(db, comp, a, ranks=[0, 1], shown_order=by_id)
        make_judgment(db, comp, b, ranks=[0, 1] if i < 4 else [1, 0], shown_order=by_id)
    q = compute_quality(db, campaign_id=campaign.id)
    [(x, y, kappa)] = q.kappas
    # Labels a: five "first better"; b: four and one "second": po = .8, pe = .8 -> kappa 0.
    assert {x, y} == {a.id, b.id} and kappa.n == 5 and kappa.value == pytest.approx(0.0)


def test_the_quality_page_shows_each_figure_with_its_count_and_an_svg_chart(
    client: TestClient, db: Session
) -> None:
    campaign = make_campaign(db)
    first, second = make_comparisons(db, campaign, count=2, k=3)
    a, b = make_raters(db, 2)
    for comp, ranks in ((first, [0, 2, 1]), (second, [0, 1, 2])):
        make_judgment(db, comp, a, ranks=[0, 1, 2])
        make_judgment(db, comp, b, ranks=ranks)
    admin: User = make_user(db, role="admin")
    login(client, admin.email)
    page = client.get(f"/admin/quality?campaign_id={campaign.id}", headers=HTML).text
    assert '<b id="alpha">0.771 <span class="count">(n=2)</span>' in page
    assert "<svg" in page and "<script" not in page.split("<main>")[1]
    detail = client.get(f"/admin/quality/comparisons/{first.id}", headers=HTML)
    assert detail.status_code == 200 and detail.text.count("<b>1</b>") >= 2

"""The review page with evidence, in headless Chromium (issue 24): the evidence and the suggestion
are shown, Tab / s take the suggestion, the editor opens in place, Shift+A accepts every undecided
card after a confirmation and z takes that back, u takes one decision back; all of it in the ledger."""

from __future__ import annotations

import pandas as pd
import pytest
from playwright.sync_api import expect

from mmcurate.embed.model import ModelSpec
from mmcurate.project import create_project

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def scene_round(tmp_path_factory, tiny_clip_dir):
    """Scenes embedded by the tiny model, one pair copied (a duplicate group) and a round of six:
    four swapped captions, the copied pair, one clean pair."""
    from mmcurate.demo import prepare_scene_dataset

    tmp = tmp_path_factory.mktemp("evidence")
    pairs_csv, truth_csv = prepare_scene_dataset(tmp / "data", n=60)
    df = pd.read_csv(pairs_csv, dtype=str)
    truth = pd.read_csv(truth_csv, dtype={"id": str}).set_index("id")
    clean = [p for p in df["id"] if not truth.loc[p, "is_noisy"]]
    copy = df[df["id"] == clean[0]].assign(id="copy-of-" + clean[0])
    pd.concat([df, copy]).to_csv(tmp / "data" / "with_copy.csv", index=False)
    proj = create_project(tmp / "proj", pairs=tmp / "data" / "with_copy.csv", progress=False,
                          model=ModelSpec(f"local-dir:{tiny_clip_dir}", None))
    proj.embed(progress=False, num_workers=0)
    proj.duplicates()
    noisy = [p for p in df["id"] if truth.loc[p, "is_noisy"]][:4]
    ids = [*noisy, clean[0], clean[1]]
    proj.ledger.create_round(ids, strategy="p_misaligned", params={}, model={}, scores=[1.0] * 6,
                             reasons=["p_misaligned=1.000"] * 6)
    return proj, ids


@pytest.fixture
def url(scene_round, serve_review):
    with serve_review(scene_round[0], 1) as address:
        yield address


def _latest(proj) -> dict[str, tuple[str, str | None]]:
    latest = proj.ledger.decisions()
    return {p: (d, c) for p, d, c in zip(latest["pair_id"], latest["decision"], latest["caption"])}


def test_evidence_suggestion_bulk_accept_and_undo(page, url, scene_round):
    proj, ids = scene_round
    shots = proj.root / "screenshots"
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(url)
    cards = page.locator(".card")
    expect(cards).to_have_count(6)
    first = cards.nth(0)
    # the evidence: the caption the image fits better (with its pair id) and the image, as a thumbnail
    expect(first.locator(".ev-caption .ev-head")).to_contain_text("this image fits another caption better")
    better_id = first.locator(".ev-caption code").text_content()
    assert better_id in set(proj.pairs["pair_id"]) and better_id != ids[0]
    thumb = first.locator(".ev-image img.ev-thumb")
    expect(thumb).to_be_visible()
    page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
    assert thumb.evaluate("el => el.naturalWidth > 0")  # the other pair's image is served
    expect(cards.nth(4).locator(".group")).to_contain_text("group of 2 pairs (exact)")
    page.screenshot(path=str(shots / "1-evidence.png"), full_page=True)

    # e opens the editor in place (nothing moves), Tab takes the suggestion, Enter saves it as a fix
    suggestion = first.get_attribute("data-suggestion")
    assert suggestion and suggestion == first.locator(".ev-caption .ev-text").text_content()
    boxes = [cards.nth(i).bounding_box() for i in range(6)]
    page.keyboard.press("e")
    expect(first.locator(".editor")).to_be_visible()
    expect(first.locator(".suggestion-text")).to_have_text(suggestion)
    assert [cards.nth(i).bounding_box() for i in range(6)] == boxes  # no reflow
    page.screenshot(path=str(shots / "2-editor.png"))
    page.keyboard.press("Tab")
    expect(first.locator(".edit-input")).to_have_value(suggestion)
    page.keyboard.press("Enter")
    expect(page.locator("#decided")).to_have_text("1")
    assert _latest(proj)[ids[0]] == ("fix", suggestion)

    # s: the suggestion in one key (then Enter); u takes that decision back to undecided
    second = cards.nth(1)
    page.keyboard.press("s")
    expect(second.locator(".edit-input")).to_have_value(second.get_attribute("data-suggestion"))
    page.keyboard.press("Enter")
    expect(page.locator("#decided")).to_have_text("2")
    assert _latest(proj)[ids[1]][0] == "fix"
    page.keyboard.press("k")
    page.keyboard.press("u")
    expect(page.locator("#decided")).to_have_text("1")
    expect(second.locator(".status")).to_have_text("undecided")
    expect(second.locator(".caption")).to_have_text(proj.pairs.set_index("pair_id").loc[ids[1], "caption"])
    assert ids[1] not in _latest(proj) and len(proj.ledger.withdrawals()) == 1

    # Shift+A asks first; Escape cancels, Enter accepts every undecided card; z takes them back
    page.keyboard.press("Shift+A")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_have_text("Accept all 5 undecided cards of this round?")
    page.screenshot(path=str(shots / "3-confirm.png"))
    page.keyboard.press("Escape")
    expect(page.locator("#confirm")).to_be_hidden()
    assert len(_latest(proj)) == 1
    page.keyboard.press("Shift+A")
    page.keyboard.press("Enter")
    expect(page.locator("#decided")).to_have_text("6")
    expect(page.locator("#notice-text")).to_have_text("Accepted 5 cards.")
    latest = _latest(proj)
    assert latest[ids[0]] == ("fix", suggestion)
    assert all(latest[p] == ("accept", None) for p in ids[1:])
    page.screenshot(path=str(shots / "4-accepted.png"), full_page=True)
    page.keyboard.press("z")
    expect(page.locator("#decided")).to_have_text("1")
    assert _latest(proj) == {ids[0]: ("fix", suggestion)}
    assert proj.ledger.resolved()["pair_id"].tolist() == [ids[0]]  # training and export see one

    page.reload()
    expect(page.locator("#decided")).to_have_text("1")
    expect(first.locator(".status")).to_have_text("fix")
    expect(first.locator(".caption")).to_have_text(suggestion)
    expect(second.locator(".status")).to_have_text("undecided")
    page.screenshot(path=str(shots / "5-after-undo.png"), full_page=True)

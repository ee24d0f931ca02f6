"""The review page in real headless Chromium: keys, caption edit, escaping, reload, ledger."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.fixture
def server(review_project, serve_review):
    with serve_review(review_project, 1) as url:
        yield url


def test_review_with_keyboard(page, server, review_project):
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(server)
    assert page.locator("#total").text_content() == "4"
    assert page.locator(".card").nth(2).locator(".caption").text_content() == \
        "<script>alert(1)</script> tricky"
    page.keyboard.press("a")                     # accept p0
    expect(page.locator("#decided")).to_have_text("1")
    page.keyboard.press("r")                     # reject p1
    expect(page.locator("#decided")).to_have_text("2")
    page.keyboard.press("j")                     # skip p2
    page.keyboard.press("e")                     # edit p3's caption
    page.locator(".card").nth(3).locator(".edit-input").fill("a corrected caption")
    page.keyboard.press("Enter")
    expect(page.locator("#decided")).to_have_text("3")
    page.screenshot(path=str(review_project.root / "review.png"), full_page=True)
    page.reload()
    assert page.locator("#decided").text_content() == "3"
    assert page.locator(".card").nth(3).locator(".caption").text_content() == "a corrected caption"
    assert page.locator(".card").nth(1).locator(".status").text_content() == "reject"
    assert dialogs == []
    latest = review_project.ledger.decisions().set_index("pair_id")
    assert latest["decision"].to_dict() == {"p0": "accept", "p1": "reject", "p3": "fix"}
    assert latest.loc["p3", "caption"] == "a corrected caption"
    assert (latest["source"] == "web").all() and (latest["reviewer"] == "browser").all()

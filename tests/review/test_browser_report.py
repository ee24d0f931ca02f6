"""The export report and the review page of a real round, in headless Chromium: screenshots, the
score shown once per card, the embedding model named in the plots' titles (issue 17)."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from mmcurate.embed.model import ModelSpec
from mmcurate.export import export_curated
from mmcurate.project import create_project
from mmcurate.rounds import import_labels, select_batch, train_project_head

pytestmark = pytest.mark.browser


@pytest.fixture
def exported(tmp_path, micro_clip_dir):
    """A scene project after one reviewed round, a trained model and an export."""
    from mmcurate.demo import prepare_scene_dataset

    pairs_csv, truth_csv = prepare_scene_dataset(tmp_path / "data", n=60)
    truth = pd.read_csv(truth_csv, dtype={"id": str}).set_index("id")
    proj = create_project(tmp_path / "proj", pairs=pairs_csv, progress=False,
                          model=ModelSpec(f"local-dir:{micro_clip_dir}", None))
    proj.embed(progress=False, num_workers=0)
    selected = select_batch(proj, budget=12)
    round_id, batch = selected.round, selected.table
    decisions = pd.DataFrame({"pair_id": batch["pair_id"],
                              "decision": ["reject" if truth.loc[p, "is_noisy"] else "accept"
                                           for p in batch["pair_id"]]})
    decisions.loc[0, "decision"] = "reject"  # at least one rejection: its detail names the round
    decisions.loc[decisions.index[-2:], "decision"] = pd.NA  # two left for the browser
    import_labels(proj, decisions, round_id=round_id)
    train_project_head(proj)
    export_curated(proj, tmp_path / "curated")
    return proj, round_id, tmp_path / "curated" / "report.html"


@pytest.fixture
def review_url(exported, serve_review):
    proj, round_id, _ = exported
    with serve_review(proj, round_id) as url:
        yield url


def test_review_page_shows_each_score_once(page, review_url, exported):
    proj = exported[0]
    page.goto(review_url)
    page.screenshot(path=str(proj.root / "review_round.png"), full_page=True)
    metas = page.locator(".card .meta").all_text_contents()
    assert len(metas) == 12
    for text in metas:
        numbers = re.findall(r"\d\.\d{3}\b", text)
        assert numbers, text  # the score is shown ...
        assert len(numbers) == len(set(numbers)), f"a score shown twice: {text!r}"  # ... once
    assert any(text.startswith("p_misaligned=") for text in metas)
    assert any(text.startswith("explore: drawn at random") for text in metas)


def test_report_names_the_model_in_its_plots(page, exported):
    proj, _, report = exported
    page.goto(report.as_uri())
    page.screenshot(path=str(proj.root / "report.png"), full_page=True)
    body = page.locator("body").inner_text()
    assert "round 1.0" not in body and "CLIP cosine" not in body
    images = page.locator("body > img")  # the plots (thumbnails sit in figures of their own)
    assert images.count() == 2
    for i in range(images.count()):
        img = images.nth(i)
        assert img.evaluate("el => el.complete && el.naturalWidth > 0")  # the plot rendered
        title = img.evaluate("el => el.previousElementSibling.textContent")
        assert "micro_clip" in title and "micro_clip" in img.get_attribute("alt"), title
    assert "reviewer unknown, round 1" in body  # the rejected pair's detail: "round 1", not "1.0"


def test_plot_titles_carry_the_model_name():
    from mmcurate.report import plot_alignment_histogram, plot_rounds

    fig = plot_alignment_histogram(pd.Series([0.1, 0.5, 0.9]), pd.Series(["accepted", "rejected",
                                                                          "unreviewed"]),
                                   label="cosine", model="tiny stand-in (not CLIP)")
    assert "tiny stand-in (not CLIP)" in fig.axes[0].get_title()
    summary = pd.DataFrame({"round": [1], "accepted": [3], "rejected": [1], "fixed": [0],
                            "noise_found": [1], "noise_rate": ["0.25"]})
    heads = pd.DataFrame({"head_round": [1], "metrics": [{"cv_accuracy": 0.97,
                                                          "cv_accuracy_identity": 0.99}]})
    fig = plot_rounds(summary, heads, model="tiny stand-in (not CLIP)")
    assert "tiny stand-in (not CLIP)" in fig._suptitle.get_text()
    ax_dec, _, ax_head = fig.axes
    assert ax_head.get_ylim()[0] == 0 and ax_head.get_ylim()[1] >= 1.0  # not zoomed into 0.97-0.99
    assert ax_dec.get_ylim()[1] >= 4 * 1.3  # headroom: the legend sits above the bars


@pytest.fixture
def exported_with_groups(tmp_path, tiny_clip_dir):
    """Scenes (tiny model) with one pair copied twice (a duplicate group), a reviewed round, an export."""
    from mmcurate.demo import prepare_scene_dataset

    pairs_csv, truth_csv = prepare_scene_dataset(tmp_path / "data", n=60)
    truth = pd.read_csv(truth_csv, dtype={"id": str}).set_index("id")
    df = pd.read_csv(pairs_csv, dtype=str)
    copies = pd.concat([df.iloc[[5]]] * 2).assign(id=["copy-1", "copy-2"])
    pd.concat([df, copies]).to_csv(tmp_path / "data" / "with_copies.csv", index=False)
    proj = create_project(tmp_path / "proj", pairs=tmp_path / "data" / "with_copies.csv", progress=False,
                          model=ModelSpec(f"local-dir:{tiny_clip_dir}", None))
    proj.embed(progress=False, num_workers=0)
    proj.duplicates()
    selected = select_batch(proj, budget=12)
    round_id, batch = selected.round, selected.table
    noisy = batch["pair_id"].map(lambda p: bool(truth["is_noisy"].get(p, False)))
    import_labels(proj, pd.DataFrame({"pair_id": batch["pair_id"],
                                      "decision": noisy.map({True: "reject", False: "accept"})}),
                  round_id=round_id)
    export_curated(proj, tmp_path / "curated")
    return proj, tmp_path / "curated"


def test_report_shows_thumbnails_wherever_it_is_opened(page, exported_with_groups, tmp_path):
    import shutil

    proj, out = exported_with_groups
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(out / "report.html", elsewhere / "report.html")  # alone: no thumbs/ or plots/ beside it
    page.goto((elsewhere / "report.html").as_uri())
    page.screenshot(path=str(proj.root / "report_thumbnails.png"), full_page=True)
    headings = page.locator("h2").all_text_contents()
    assert "Most suspect dropped pairs" in headings and "Most suspect kept pairs" in headings
    group = next(h for h in headings if h.startswith("Duplicate group"))
    assert "3 pairs" in group
    for title in ("Most suspect dropped pairs", "Most suspect kept pairs", group):
        gallery = page.locator(f"h2:text-is('{title}') + p + div.gallery")
        figures = gallery.locator("figure")
        assert 1 <= figures.count() <= 8
        for i in range(figures.count()):
            img = figures.nth(i).locator("img")
            assert img.evaluate("el => el.complete && el.naturalWidth > 0")  # embedded, so it renders
    kept = page.locator(f"h2:text-is('{group}') + p + div.gallery figcaption").all_text_contents()
    assert sum("kept" in text for text in kept) == 1 and sum("dropped" in text for text in kept) == 2
    md = (out / "report.md").read_text()
    linked = re.findall(r"\]\((thumbs/[^)]+\.jpg)\)", md)
    assert linked and all((out / name).is_file() for name in linked)  # the Markdown links files beside it

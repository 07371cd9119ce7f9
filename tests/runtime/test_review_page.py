"""The review page, opened from file:// in a real browser (Debian's Chromium via Playwright)."""

import csv
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from brain_tumor_edge.runtime.cli import app
from tests.conftest import sample_files

CHROMIUM = os.environ.get("BT_CHROMIUM", "/usr/bin/chromium")
# Screenshots to look at: outside the checkout unless asked (BT_ARTEFACTS=runtime/models/figures).
ARTEFACTS = Path(os.environ.get("BT_ARTEFACTS", Path(tempfile.gettempdir()) / "bt-review-page"))
# A file name cannot hold "/", so the script tag spans a folder and a file: the path reads
# ".../<script>alert(1)</script>.jpg". The second name is an attribute-injection attempt.
HOSTILE = "<script>alert(1)</script>.jpg"
HOSTILE_NAME = "<img src=x onerror=alert(2)>.jpg"
# The HTML parser's other states inside a <script>: a comment opener (the escaped
# script-data state, where the page once went blank), an upper-case closer spanning a
# folder ("up<" + "/" + "SCRIPT ..."), a CDATA closer, and a JavaScript line separator.
PARSER_STATES = ("<!--<script>.jpg", "]]> cdata.jpg", "line\u2028separator.jpg")
UPPER_CLOSER = ("up<", "SCRIPT x.jpg")


@pytest.fixture(scope="module")
def page_and_csv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("in")
    for path in sample_files():
        shutil.copy(path, folder / path.name)
    (folder / "<script>alert(1)<").mkdir()
    shutil.copy(sample_files()[0], folder / "<script>alert(1)<" / "script>.jpg")
    shutil.copy(sample_files()[1], folder / HOSTILE_NAME)
    for index, name in enumerate(PARSER_STATES):
        shutil.copy(sample_files()[2 + index], folder / name)
    (folder / UPPER_CLOSER[0]).mkdir()
    shutil.copy(sample_files()[5], folder / UPPER_CLOSER[0] / UPPER_CLOSER[1])
    (folder / "empty.jpg").write_bytes(b"")
    import cv2
    import numpy as np

    cv2.imwrite(str(folder / "zz-blank.png"), np.zeros((200, 200), np.uint8))  # a volume's empty end
    colour = cv2.imread(str(sample_files()[4]))
    colour[:, :, 2] = 255 - colour[:, :, 2]  # a colour picture: out of scope
    cv2.imwrite(str(folder / "colour.png"), colour)
    out = tmp_path_factory.mktemp("out")
    result = CliRunner().invoke(
        app, [str(folder), "--csv", str(out / "r.csv"), "--report", str(out / "report")]
    )
    assert result.exit_code == 1, result.output  # empty.jpg fails
    return out / "report" / "index.html", out / "r.csv"


def test_the_page_and_its_thumbnails_are_written(page_and_csv):
    page, _ = page_and_csv
    text = page.read_text(encoding="utf-8")
    # Values travel only as JSON inside the data <script>, where "</" is escaped, so no
    # value can close it; outside it, no value appears at all.
    before, _, rest = text.partition('<script id="data" type="application/json">')
    data, _, after = rest.partition("</script>")
    assert "<" not in data and ">" not in data  # every one escaped, whatever the name
    for name in (HOSTILE, HOSTILE_NAME, "alert(", *PARSER_STATES, "SCRIPT x"):
        assert name not in before and name not in after
    assert "http://" not in text and "https://" not in text
    assert len(list((page.parent / "thumbs").glob("*.jpg"))) >= len(sample_files())


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def test_the_page_works_offline_in_a_real_browser(page_and_csv, browser):
    page_path, csv_path = page_and_csv
    with csv_path.open(encoding="utf-8", newline="") as handle:
        csv_rows = list(csv.DictReader(handle))
    page = browser.new_page()
    requests, errors, dialogs = [], [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith("file://"):
            request_route.continue_()
        else:
            requests.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(page_path.as_uri())
    rows = page.locator("#rows tr")
    assert rows.count() == len(csv_rows)
    # Doubtful rows first: the failed file leads.
    assert "empty.jpg" in rows.first.inner_text()
    # Every image that is shown has loaded (scrolled into view, since they load lazily).
    for index in range(rows.count()):
        rows.nth(index).scroll_into_view_if_needed()
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img.thumb, img.thumbmap'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    # The hostile name is text, not markup, and ran nothing.
    assert page.get_by_text(HOSTILE, exact=False).count() == 1
    assert page.get_by_text(HOSTILE_NAME, exact=False).count() == 1 and not dialogs
    for name in (*PARSER_STATES, UPPER_CLOSER[1]):
        assert page.get_by_text(name, exact=False).count() == 1, name
    # Filters and search change what is visible.
    visible = "Array.from(document.querySelectorAll('#rows tr')).filter(r => !r.hidden).length"
    page.select_option("#class", "glioma")
    gliomas = sum(row["prediction"] == "glioma" for row in csv_rows)
    assert page.evaluate(visible) == gliomas
    page.select_option("#class", "")
    page.fill("#search", "Te-pi_0014")
    assert page.evaluate(visible) == 1
    page.fill("#search", "")
    page.select_option("#flag", "error")
    assert page.evaluate(visible) == 1
    page.select_option("#flag", "")
    page.locator("h1").click()  # keys go to the page, not to a form field
    page.keyboard.press("j")
    assert page.locator("tr.focus").count() == 1
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "review-page.png"), full_page=False)
    assert not requests, requests
    assert not errors, errors


def test_rows_with_no_class_show_no_class_evidence_and_blank_slices_come_last(page_and_csv, browser):
    """An out-of-scope row showed "glioma 0.538" and a red glioma map; blank NIfTI slices
    sorted to the top, each covered in red. Now neither has bars or a map; blanks come last."""
    page_path, _ = page_and_csv
    page = browser.new_page()
    page.goto(page_path.as_uri())
    rows = page.locator("#rows tr")
    for name in ("colour.png", "zz-blank.png"):
        row = page.locator("#rows tr", has_text=name)
        row.scroll_into_view_if_needed()
        assert "out of scope" in row.inner_text()
        assert row.locator(".bars").count() == 0 and row.locator("img.thumbmap").count() == 0
        assert row.locator(".maplabel").count() == 0
    rows.last.scroll_into_view_if_needed()
    assert "zz-blank.png" in rows.last.inner_text()
    classified = page.locator("#rows tr", has_text="Te-gl_0010.jpg")
    classified.scroll_into_view_if_needed()
    assert classified.locator("img.thumbmap").count() == 1  # a classified row keeps its map


def test_a_click_on_a_thumbnail_opens_the_slice_large_with_its_map(page_and_csv, browser):
    page_path, csv_path = page_and_csv
    with csv_path.open(encoding="utf-8", newline="") as handle:
        by_path = {row["path"]: row for row in csv.DictReader(handle)}
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(page_path.as_uri())
    row = page.locator("#rows tr", has_text="Te-gl_0010.jpg")
    thumb = row.locator("img.thumb")
    thumb.scroll_into_view_if_needed()
    expected = next(r for p, r in by_path.items() if p.endswith("Te-gl_0010.jpg"))
    # Each row's map is the predicted class's, and says so; the heatmaps box hides them.
    assert row.locator(".maplabel").inner_text() == f"map: {expected['prediction']}"
    assert row.locator("img.thumbmap").is_visible()
    page.locator("#heat").uncheck()
    assert not row.locator("img.thumbmap").is_visible()
    page.locator("#heat").check()
    assert row.locator("img.thumbmap").is_visible()
    thumb.click()
    viewer = page.locator("dialog#viewer")
    assert viewer.evaluate("d => d.open")
    page.wait_for_function(
        "['viewer-slice', 'viewer-map'].every(id => {"
        " const i = document.getElementById(id); return i.complete && i.naturalWidth > 0; })"
    )
    sizes = page.evaluate(
        "[document.getElementById('viewer-slice').getBoundingClientRect().width,"
        " document.querySelector('img.thumb').getBoundingClientRect().width]"
    )
    assert sizes[0] >= 2 * sizes[1], sizes  # large, not the thumbnail's size
    caption = page.locator("#viewer-caption").inner_text()
    assert f"predicted {expected['prediction']}" in caption
    assert f"activation map of {expected['prediction']}" in caption
    assert "Te-gl_0010.jpg" in page.locator("#viewer-path").inner_text()
    opacity = "getComputedStyle(document.getElementById('viewer-map')).opacity"
    page.locator("#viewer-opacity").fill("0")
    assert float(page.evaluate(opacity)) == 0.0
    page.locator("#viewer-opacity").fill("85")
    assert float(page.evaluate(opacity)) == pytest.approx(0.85)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "review-page-enlarged.png"), full_page=False)
    page.keyboard.press("Escape")
    assert not viewer.evaluate("d => d.open")
    # The failed row has no image to enlarge; an out-of-scope or failed row never breaks the page.
    assert not errors, errors


def test_the_page_groups_a_volume_into_one_series_row_that_opens_to_its_slices(browser, tmp_path: Path):
    nibabel = pytest.importorskip("nibabel", reason="the volumes extra is not installed")
    import cv2
    import numpy as np

    folder = tmp_path / "in"
    folder.mkdir()
    for path in sample_files()[:2]:
        shutil.copy(path, folder / path.name)
    grey = cv2.resize(cv2.imread(str(sample_files()[3]), cv2.IMREAD_GRAYSCALE), (96, 96))
    # Twelve axial slices of one sample, fading in and out: a small real-looking volume.
    volume = np.stack(
        [grey.T[::-1, ::-1] * (0.3 + 0.7 * np.sin(np.pi * (k + 1) / 13)) for k in range(12)], axis=2
    )
    nibabel.save(nibabel.Nifti1Image(volume.astype(np.float32), np.eye(4)), str(folder / "head.nii.gz"))
    out = tmp_path / "out"
    out.mkdir()
    result = CliRunner().invoke(
        app, [str(folder), "--csv", str(out / "r.csv"), "--report", str(out / "report")]
    )
    assert result.exit_code == 0, result.output
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((out / "report" / "index.html").as_uri())
    series_rows = page.locator("#series tr")
    assert series_rows.count() == 1 and "head.nii.gz" in series_rows.first.inner_text()
    strip = series_rows.first.locator("img.strip-thumb")
    assert 1 <= strip.count() <= 4
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img.strip-thumb'))"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    visible = "Array.from(document.querySelectorAll('#rows tr')).filter(r => !r.hidden)"
    assert page.evaluate(visible + ".length") == 14
    series_rows.first.locator("button").click()
    shown = page.evaluate(visible + ".map(r => r.querySelector('td.path').textContent)")
    assert shown == [f"{folder / 'head.nii.gz'}#z={k}" for k in range(12)]  # every slice, in order
    page.locator("#series-clear").click()
    assert page.evaluate(visible + ".length") == 14
    # A volume's slice is shown as radiologists see it: the enlarged view marks the sides;
    # a plain image's sides are unknown, so it gets no markers.
    sides = "['side-left', 'side-right', 'side-top'].map(id => document.getElementById(id).hidden)"
    middle = page.locator("#rows tr", has_text="head.nii.gz#z=6")
    middle.scroll_into_view_if_needed()
    middle.locator("img.thumb").click()
    assert page.evaluate(sides) == [False, False, False]
    assert page.locator("#side-left").inner_text() == "R"
    caption = page.locator("#viewer-caption").inner_text()
    assert "(" in caption or "no class given" in caption  # the probability beside the class
    page.keyboard.press("Escape")
    plain = page.locator("#rows tr", has_text=sample_files()[0].name)
    plain.scroll_into_view_if_needed()
    plain.locator("img.thumb").click()
    assert page.evaluate(sides) == [True, True, True]
    assert not errors, errors

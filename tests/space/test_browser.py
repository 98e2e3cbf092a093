"""The page in a real headless browser (the system's Chromium, driven by Playwright): type a sentence, translate,
and the attention heatmap is drawn with one row per output token. The screenshot is docs/space.png's source:

    SPACE_MODEL=outputs/multi30k-tiny SPACE_SCREENSHOT=docs/space.png pytest -m slow tests/space/test_browser.py
"""

import os
from pathlib import Path

import pytest
from main_job_helpers import save_tiny_translator
from serving import served_page

from hf_simple_s2s.inference.translate import load_translator
from hf_simple_s2s.space.app import SHIPPED_EXAMPLES, read_examples

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (the dev extra)")

CHROMIUM = Path("/usr/bin/chromium")
SENTENCE = "Ein kleiner Hund rennt über eine grüne Wiese ."
# Plotly draws at a default size first, then fits the container: the screenshot waits for the second drawing.
WIDE_HEATMAP = """() => {
    const plot = document.querySelector('#attention .js-plotly-plot');
    const image = plot && plot.querySelector('.hm image');
    return image && image.getBoundingClientRect().width > 0.6 * plot.getBoundingClientRect().width;
}"""
pytestmark = [
    pytest.mark.slow,  # a browser start and a page load: 10-30 s here
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="no system Chromium at /usr/bin/chromium (apt-get install chromium)"
    ),
]


def test_the_page_translates_and_draws_one_heatmap_row_per_output_token(tmp_path):
    model_dir = os.environ.get("SPACE_MODEL") or save_tiny_translator(tmp_path / "model")
    screenshot = Path(os.environ.get("SPACE_SCREENSHOT") or tmp_path / "space.png")
    model, tokenizer = load_translator(str(model_dir))
    inputs = tokenizer(SENTENCE, return_tensors="pt")
    expected = model.generate(**inputs, max_new_tokens=50)[0, 1:].tolist()  # the page's default decoding
    expected_text = tokenizer.decode(expected, skip_special_tokens=True).strip()
    eos = tokenizer.eos_token_id
    output_tokens = expected.index(eos) + 1 if eos in expected else len(expected)

    with (
        served_page(model_dir, title=f"SimpleS2S: {Path(model_dir).name}", examples=read_examples(SHIPPED_EXAMPLES))
        as url,
        sync_api.sync_playwright() as playwright,
    ):  # fmt: skip
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a new, empty profile
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
            ],
            viewport={"width": 1100, "height": 900},
        )  # fmt: skip
        try:
            page = browser.new_page()
            page.goto(url, timeout=60_000)
            page.locator("#source textarea").fill(SENTENCE)
            page.locator("#translate").click()
            translations = page.locator("#translations")
            sync_api.expect(translations).to_contain_text(expected_text or "1", timeout=60_000)
            page.wait_for_selector("#attention .js-plotly-plot .hm image", timeout=60_000)  # the heatmap is drawn
            page.wait_for_function(WIDE_HEATMAP, timeout=60_000)  # and resized to the page's width
            rows = page.evaluate("document.querySelector('#attention .js-plotly-plot').data[0].z.length")
            row_labels = page.locator("#attention .ytick text").all_text_contents()
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert rows == output_tokens and len(row_labels) == output_tokens
    if expected[output_tokens - 1] == eos:
        assert row_labels[-1] == tokenizer.eos_token  # '</s>' drawn as text, not read as an HTML tag
    assert screenshot.stat().st_size > 10_000

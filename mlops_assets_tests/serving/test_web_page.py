"""The single-page UI in real headless Chromium: fill the generated form, predict, see errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlops_assets_tests.serving.conftest import IRIS_CLASSES, IRIS_RECORD
from mlops_contract.bundle import LIVE_FILE
from mlops_contract.drift import live_document

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium"),
]


@pytest.fixture
def browser_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            yield page
        finally:
            browser.close()


@pytest.fixture
def page(live, browser_page):
    missing = []
    browser_page.on(
        "response", lambda response: missing.append(response.url) if response.status >= 400 else 0
    )
    browser_page.goto(live.url + "/")
    browser_page.wait_for_selector("body[data-ready=true]")
    assert missing == []  # no 404 for a favicon or anything else the page loads
    return browser_page


def form_fields(page) -> list[dict]:
    """What the rendered form offers per field: name, bounds, options and prefilled value."""
    return page.eval_on_selector_all(
        "#form [name]",
        """nodes => nodes.map(n => ({
            name: n.name, min: n.getAttribute("min"), max: n.getAttribute("max"), value: n.value,
            options: n.tagName === "SELECT" ? [...n.options].map(o => o.value) : null}))""",
    )


def _text(value) -> str:
    """A number as the page's JavaScript writes it (3.0 as "3")."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def expected_fields(schema: dict) -> list[dict]:
    """The same, as the contract's JSON Schema says it should be."""

    def bound(value):
        return None if value is None else _text(value)

    fields = []
    for name, prop in schema["properties"].items():
        options = [json.dumps(option) for option in prop["enum"]] if "enum" in prop else None
        example = prop["examples"][0]
        fields.append(
            {
                "name": name,
                "min": bound(prop.get("minimum")),
                "max": bound(prop.get("maximum")),
                "value": json.dumps(example) if options else _text(example),
                "options": options,
            }
        )
    return fields


@pytest.mark.parametrize("model", ["iris", "abalone"])
def test_form_fields_bounds_options_and_examples_come_from_the_contract(live, page, model):
    with live.client() as http:
        schema = http.get(f"/models/{model}").json()["input_schema"]
    page.select_option("#model", model)
    assert form_fields(page) == expected_fields(schema)
    page.click("#submit")  # the prefilled examples are a valid record
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#result-model") == model


def test_swagger_ui_renders_each_models_operations(live, browser_page):
    browser_page.goto(live.url + "/docs")
    browser_page.wait_for_selector("[data-path='/models/iris/predict']")
    assert browser_page.is_visible("[data-path='/models/abalone/invocations']")


def test_form_predicts_and_shows_field_errors(page):
    page.select_option("#model", "iris")
    for field, value in IRIS_RECORD.items():
        page.fill(f"#field-{field}", str(value))
    page.click("#submit")
    page.wait_for_selector("#result:not([hidden])")
    assert page.text_content("#prediction") in IRIS_CLASSES
    assert page.text_content("#result-version") == "1"
    assert len(page.query_selector_all("#probabilities tr")) == 3
    assert float(page.text_content("#latency")) > 0

    page.fill("#field-sepal_length", "99")
    page.fill("#field-petal_width", "")
    page.click("#submit")
    error = page.wait_for_selector("[data-error-for=sepal_length]:not(:empty)")
    assert error.text_content() == "must be <= 15.0"
    assert page.text_content("[data-error-for=petal_width]") == "must not be null"
    assert page.text_content("[data-error-for=sepal_width]") == ""
    assert page.is_hidden("#result")


def test_the_served_versions_live_performance_is_shown(live, browser_page):
    estimated = {"accuracy": 0.95, "f1_macro": 0.9101}
    metrics = {"f1_macro": 0.9312}
    document = live_document("iris", "1", "2026-12-04", (500, 250), metrics, True, estimated)
    path = live.models_dir / "iris" / LIVE_FILE
    try:
        with live.client() as http:
            # about another version than the one served: exported, but not shown as this one's
            path.write_text(json.dumps(document | {"version": "7"}))
            live.wait_until(lambda: 'version="7"} 250.0' in http.get("/metrics").text)
            assert http.get("/models/iris").json()["live"] is None
            path.write_text(json.dumps(document))
            live.wait_until(lambda: http.get("/models/iris").json()["live"] == document)
        browser_page.goto(live.url + "/")
        browser_page.wait_for_selector("body[data-ready=true]")
        browser_page.select_option("#model", "iris")
        assert browser_page.text_content("#model-live") == (
            "live 2026-12-04: f1_macro 0.931 on 250 labelled of 500 served (50% labelled) · "
            "estimated accuracy 0.950, f1_macro 0.910"
        )
        browser_page.select_option("#model", "abalone")  # nothing published for it
        assert browser_page.is_hidden("#model-live")
    finally:
        path.unlink()


def test_category_inputs_are_dropdowns(page):
    page.select_option("#model", "abalone")
    options = page.eval_on_selector_all(
        "#field-Sex option", "nodes => nodes.map(n => n.textContent)"
    )
    assert options == ["M", "F", "I"]
    assert page.get_attribute("#field-Length", "max") == "1"

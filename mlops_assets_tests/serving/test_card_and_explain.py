"""Model card, lineage and explanations served over real HTTP from bundles on disk."""

import json

import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops_assets_tests.serving.conftest import (
    ABALONE_NUMERIC,
    ABALONE_RECORD,
    IRIS_RECORD,
    abalone_frame,
    fit_iris,
    manifest_for,
    publish,
)
from mlops_assets_tests.serving.test_web_page import CHROMIUM, browser_page  # noqa: F401
from mlops_contract.bundle import CARD_JSON_FILE, CARD_MARKDOWN_FILE, LIVE_FILE, write_bundle
from mlops_contract.drift import live_document

CARD_MARKDOWN = (
    "# Model card: abalone v4\n\n## Gates\n\n| gate | passed |\n|---|---|\n"
    "| `beats_baseline` | True |\n\n## Known limitations\n\n- `Sex` is **rejected** when unknown\n"
)
CARD = {"model": "abalone", "lineage": {"registered_version": "4", "spec_sha256": "ab" * 32}}
INTERVALS = {"test_r2": {"estimate": 0.5, "low": 0.45, "high": 0.55}}


def fit_linear_abalone() -> Pipeline:
    features, rings = abalone_frame()
    prep = ColumnTransformer(
        [("sex", OneHotEncoder(), ["Sex"]), ("num", "passthrough", ABALONE_NUMERIC)]
    )
    return Pipeline([("prep", prep), ("model", LinearRegression())]).fit(features, rings)


@pytest.fixture
def carded(make_server):
    """A server whose abalone bundle is a linear model with a card; iris has no card."""
    server = make_server()
    publish(server.models_dir, "iris", fit_iris(), "1")
    files = {
        CARD_JSON_FILE: json.dumps(CARD).encode(),
        CARD_MARKDOWN_FILE: CARD_MARKDOWN.encode(),
    }
    manifest = manifest_for("abalone", "4", metric_intervals=INTERVALS)
    write_bundle(
        server.models_dir / "abalone", "v4-card", fit_linear_abalone(), manifest, extra_files=files
    )
    with server.client() as client:
        # both champions loaded, not just the first one the reload tick found
        server.wait_until(lambda: client.get("/models/abalone").json().get("version") == "4")
    return server


def test_contributions_and_baseline_sum_to_the_prediction_of_a_linear_model(carded):
    other = {**ABALONE_RECORD, "Sex": "I", "Length": 0.3, "Shell_weight": 0.05}
    with carded.client() as client:
        single = client.post("/models/abalone/predict?explain=true", json=ABALONE_RECORD)
        batch = client.post("/models/abalone/predict?explain=true", json=[ABALONE_RECORD, other])
    assert single.status_code == 200 and batch.status_code == 200
    explanation = single.json()["explanation"]
    assert set(explanation["contributions"]) == set(ABALONE_RECORD)
    total = explanation["baseline"] + sum(explanation["contributions"].values())
    assert total == pytest.approx(single.json()["prediction"], abs=1e-9)
    assert explanation["unexplained"] == pytest.approx(0, abs=1e-9)
    for prediction, explained in zip(
        batch.json()["predictions"], batch.json()["explanations"], strict=True
    ):
        total = explained["baseline"] + sum(explained["contributions"].values())
        assert total == pytest.approx(prediction, abs=1e-9)
    # a field at its baseline value contributes nothing; a changed one does
    contributions = batch.json()["explanations"][1]["contributions"]
    assert contributions["Sex"] != 0 and contributions["Length"] != 0


def test_without_the_flag_the_answer_is_unchanged(carded):
    with carded.client() as client:
        plain = client.post("/models/abalone/predict", json=ABALONE_RECORD).json()
        off = client.post("/models/abalone/predict?explain=false", json=ABALONE_RECORD).json()
        bad = client.post("/models/abalone/predict?explain=maybe", json=ABALONE_RECORD)
        empty = client.post("/models/abalone/predict?explain=", json=ABALONE_RECORD)
    assert set(plain) == {"model", "version", "request_id", "prediction"}
    assert set(off) == set(plain) and off["prediction"] == plain["prediction"]
    for answer in (bad, empty):  # the OpenAPI document declares a boolean: "" is not one
        assert answer.status_code == 422
        assert "explain must be true or false" in answer.json()["detail"]


def test_a_classifier_explains_the_probability_of_its_predicted_label(carded):
    with carded.client() as client:
        body = client.post("/models/iris/predict?explain=1", json=IRIS_RECORD).json()
    explanation = body["explanation"]
    assert explanation["explains"] == f"probability of {body['prediction']}"
    total = explanation["baseline"] + sum(explanation["contributions"].values())
    total += explanation["unexplained"]
    assert total == pytest.approx(body["probabilities"][body["prediction"]])


def test_card_is_markdown_by_default_and_json_on_request(carded):
    with carded.client() as client:
        markdown = client.get("/models/abalone/card")
        as_json = client.get("/models/abalone/card", headers={"Accept": "application/json"})
        described = client.get("/models/abalone").json()
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text == CARD_MARKDOWN
    assert as_json.json() == CARD
    assert described["card"] == "/models/abalone/card"
    assert described["metric_intervals"] == INTERVALS


def test_the_card_adds_the_served_versions_live_performance_once_published(carded):
    live = live_document("abalone", "4", "2026-12-04", (400, 100), {"r2": 0.51234}, True)
    (carded.models_dir / "abalone" / LIVE_FILE).write_text(json.dumps(live))
    with carded.client() as client:
        carded.wait_until(lambda: client.get("/models/abalone").json()["live"] == live)
        markdown = client.get("/models/abalone/card").text
        as_json = client.get("/models/abalone/card", headers={"Accept": "application/json"})
    assert markdown.startswith(CARD_MARKDOWN.rstrip("\n"))
    assert markdown.endswith(
        "## Live performance (2026-12-04, UTC)\n\n"
        "The day's served requests of this version: realized on those with a label, estimated "
        "from calibrated probabilities on all (classifiers).\n\n"
        "| served | labelled | coverage | r2 | estimated r2 |\n|---|---|---|---|---|\n"
        "| 400 | 100 | 25% | 0.5123 |  |\n"
    )
    assert as_json.json() == {**CARD, "live_performance": live}


def test_lineage_leads_with_the_served_bundle(carded):
    with carded.client() as client:
        lineage = client.get("/models/abalone/lineage").json()
    bundle = carded.models_dir / "abalone" / "bundles" / "v4-card"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert lineage["bundle_id"] == "v4-card"
    assert lineage["bundle_files"] == manifest["files"]
    assert lineage["spec_sha256"] == "ab" * 32 and lineage["version"] == "4"


def test_a_bundle_without_a_card_is_a_clear_404(carded):
    with carded.client() as client:
        card = client.get("/models/iris/card")
        lineage = client.get("/models/iris/lineage")
        described = client.get("/models/iris").json()
    assert card.status_code == 404 and lineage.status_code == 404
    assert "has no model card" in card.json()["detail"]
    assert "iris/champion_model" in card.json()["detail"]
    assert described["card"] is None


def test_a_tampered_card_is_not_served(carded):
    path = carded.models_dir / "abalone" / "bundles" / "v4-card" / CARD_MARKDOWN_FILE
    path.write_bytes(b"# a different model\n")
    with carded.client() as client:
        answer = client.get("/models/abalone/card")
    assert answer.status_code == 503 and "sha256 mismatch" in answer.json()["detail"]


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_web_page_shows_intervals_and_the_card_rendered(carded, browser_page):  # noqa: F811
    browser_page.goto(carded.url + "/")
    browser_page.wait_for_selector("body[data-ready=true]")
    browser_page.select_option("#model", "abalone")
    assert "test_r2 0.900 [0.450, 0.550]" in browser_page.text_content("#model-info")
    browser_page.click("#model-card")
    browser_page.wait_for_selector("#card-dialog[open]")
    assert browser_page.text_content("#card-body h1") == "Model card: abalone v4"
    cells = browser_page.eval_on_selector_all(
        "#card-body td", "nodes => nodes.map(n => n.textContent)"
    )
    assert cells == ["beats_baseline", "True"]
    assert browser_page.text_content("#card-body li strong") == "rejected"
    assert "|" not in browser_page.text_content("#card-body")  # rendered, not raw Markdown
    assert browser_page.get_attribute("#card-raw", "href") == "/models/abalone/card"
    browser_page.click("#card-close")
    browser_page.select_option("#model", "iris")
    assert not browser_page.is_visible("#model-card")


@pytest.mark.slow
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
def test_web_page_shows_a_regression_prediction_as_a_person_reads_it(carded, browser_page):  # noqa: F811
    browser_page.goto(carded.url + "/")
    browser_page.wait_for_selector("body[data-ready=true]")
    browser_page.select_option("#model", "abalone")
    with browser_page.expect_response("**/models/abalone/predict") as answer:
        browser_page.click("#submit")
    browser_page.wait_for_selector("#result:not([hidden])")
    exact = answer.value.json()["prediction"]
    shown = browser_page.text_content("#prediction")
    assert len(shown.replace(".", "").replace("-", "").lstrip("0")) <= 6  # not 14 decimals
    assert float(shown) == pytest.approx(exact, rel=1e-5)

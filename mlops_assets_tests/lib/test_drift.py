from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mlops_assets.lib.drift import (
    MAX_DISCRETE_LEVELS,
    PROFILE_VERSION,
    UNSEEN_LEVEL,
    build_profile,
    chi2_test,
    compare,
    drift_chart_png,
    jensen_shannon,
    ks_test,
    psi,
    wasserstein_std,
)

KINDS = {"normal": "numeric", "skewed": "numeric", "colour": "categorical"}
COLOURS = np.array(["red", "green", "blue", "black", "white"])
COLOUR_PROBABILITIES = np.array([0.5, 0.25, 0.15, 0.07, 0.03])
WINDOWS = 300
WINDOW_SIZE = 1_000
# Small next to the 10,000-value reference sample (see the false-alarm test), and quick to test.
QUIET_WINDOW_SIZE = 500
ALPHA = 0.05
# With 300 independent windows and a true false-alarm rate of 0.05, the number of alarms is
# Binomial(300, 0.05): P(rate < 0.02) = 0.23% and P(rate > 0.09) = 0.13%, so a correct test lands
# in [0.02, 0.09] 99.6% of the time, while a test at 0.10 or more fails it most of the time.
# The runs are seeded, so the outcome is fixed; the band says how surprising a failure would be.
FALSE_ALARM_BAND = (0.02, 0.09)


def sample_frame(
    rng: np.random.Generator,
    size: int,
    mean_shift: float = 0.0,
    scale: float = 1.0,
    colour_probabilities: np.ndarray = COLOUR_PROBABILITIES,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "normal": rng.normal(10.0 + 2.0 * mean_shift, 2.0, size),
            "skewed": rng.lognormal(0.0, 0.75, size) * scale,
            "colour": rng.choice(COLOURS, size=size, p=colour_probabilities),
        }
    )


def colour_counts(counts: np.ndarray) -> dict[str, int]:
    return {str(colour): int(count) for colour, count in zip(COLOURS, counts, strict=True)}


@pytest.fixture(scope="module")
def profile() -> dict:
    return build_profile(sample_frame(np.random.default_rng(1), 100_000), KINDS)


# --- Equal to SciPy ----------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(300, 200), (10_000, 50_000)])  # exact and asymptotic KS
@pytest.mark.parametrize("decimals", [None, 1])  # continuous, and rounded: many ties
def test_ks_test_is_scipy_ks_2samp(sizes, decimals):
    rng = np.random.default_rng(2)
    reference, current = rng.normal(size=sizes[0]), rng.normal(0.05, 1, size=sizes[1])
    if decimals is not None:
        reference, current = reference.round(decimals), current.round(decimals)
    expected = stats.ks_2samp(reference, current)
    assert ks_test(reference, current) == (expected.statistic, expected.pvalue)


def test_chi2_test_is_chi2_contingency_on_the_two_row_table():
    reference = {"a": 500, "b": 300, "c": 200, "only_reference": 400}
    current = {"a": 60, "b": 20, "c": 25, "only_current": 90}
    table = [[500, 300, 200, 400, 0], [60, 20, 25, 0, 90]]
    expected = stats.chi2_contingency(table, correction=False)
    statistic, p_value = chi2_test(reference, current)
    assert statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9)


def test_chi2_test_without_pooling_uses_every_category_present_in_either_sample():
    reference, current = {"a": 50, "b": 3, "gone": 0}, {"a": 40, "b": 1, "new": 2}
    expected = stats.chi2_contingency([[50, 3, 0], [40, 1, 2]], correction=False)
    assert chi2_test(reference, current, min_expected=0) == pytest.approx(
        (expected.statistic, expected.pvalue)
    )


def test_chi2_test_with_one_category_has_nothing_to_compare():
    assert chi2_test({"a": 100}, {"a": 7}) == (0.0, 1.0)


def test_chi2_test_pools_rare_categories_so_one_novel_row_is_not_drift():
    reference = {"a": 600_000, "b": 300_000, "c": 90_000, "d": 10_000}
    one_new_row = {"a": 600, "b": 300, "c": 89, "d": 10, "new": 1}
    # Unpooled, that single row adds about reference_n / current_n = 1000 to the statistic.
    assert chi2_test(reference, one_new_row, min_expected=0)[1] < 1e-100
    assert chi2_test(reference, one_new_row)[1] > 0.5
    five_percent_new = {"a": 570, "b": 285, "c": 86, "d": 9, "new": 50}
    assert chi2_test(reference, five_percent_new)[1] < 1e-20


def test_pooling_keeps_the_false_alarm_rate_with_a_long_tail_of_categories():
    """200 Zipf-distributed categories, 200-row windows: most expected counts are far below 5,
    and the unpooled statistic has a heavier tail than its chi-squared reference."""
    rng = np.random.default_rng(17)
    weights = 1 / np.arange(1, 201) ** 1.2
    probabilities = weights / weights.sum()
    names = [f"level{i}" for i in range(200)]

    def counts(size: int) -> dict[str, int]:
        return {
            n: int(c) for n, c in zip(names, rng.multinomial(size, probabilities), strict=True) if c
        }

    reference = counts(200_000)
    windows = [counts(200) for _ in range(WINDOWS)]
    pooled = np.mean([chi2_test(reference, w)[1] < ALPHA for w in windows])
    unpooled = np.mean([chi2_test(reference, w, min_expected=0)[1] < ALPHA for w in windows])
    print(f"long-tail false alarms: pooled {pooled:.3f}, unpooled {unpooled:.3f}")
    assert FALSE_ALARM_BAND[0] <= pooled <= FALSE_ALARM_BAND[1]
    assert unpooled > 0.12


@pytest.mark.parametrize("decimals", [None, 1])
def test_wasserstein_std_is_scipy_distance_over_reference_std(decimals):
    rng = np.random.default_rng(3)
    reference, current = rng.normal(size=2_000), rng.normal(0.3, 1.5, size=5_000)
    if decimals is not None:
        reference, current = reference.round(decimals), current.round(decimals)
    expected = stats.wasserstein_distance(reference, current) / 2.5
    assert wasserstein_std(reference, current, 2.5) == pytest.approx(expected, rel=1e-12)


def test_wasserstein_std_with_a_constant_reference():
    assert wasserstein_std(np.ones(10), np.ones(5), 0.0) == 0.0
    assert wasserstein_std(np.ones(10), np.full(5, 2.0), 0.0) == math.inf


def test_jensen_shannon_is_scipy_distance_on_proportions_in_base_2():
    reference, current = {"a": 70, "b": 20, "c": 10}, {"a": 5, "b": 30, "d": 15}
    expected = jensenshannon([0.7, 0.2, 0.1, 0.0], [0.1, 0.6, 0.0, 0.3], base=2)
    assert jensen_shannon(reference, current) == pytest.approx(expected, rel=1e-12)
    assert jensen_shannon({"a": 1}, {"b": 1}) == pytest.approx(1.0)


def test_psi_clips_empty_bins():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    assert psi(np.array([0.5, 0.5]), np.array([0.25, 0.75])) == pytest.approx(
        0.25 * math.log(0.5) * -1 + 0.25 * math.log(1.5)
    )
    assert psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(
        2 * (1 - 1e-4) * math.log(1 / 1e-4)
    )


# --- Profile -----------------------------------------------------------------------------------


def test_profile_summarises_numeric_and_categorical_columns(profile):
    normal = profile["features"]["normal"]
    assert normal["n"] == 100_000 and len(normal["sample"]) == 10_000
    assert normal["sample"] == sorted(normal["sample"])
    assert normal["mean"] == pytest.approx(10, abs=0.05) and normal["std"] == pytest.approx(2, 0.02)
    assert normal["bin_edges"][0] == -math.inf and normal["bin_edges"][-1] == math.inf
    assert len(normal["bin_edges"]) == 11
    assert normal["bin_proportions"] == pytest.approx([0.1] * 10, abs=1e-4)
    colour = profile["features"]["colour"]
    assert colour["n"] == 100_000 and set(colour["counts"]) == set(COLOURS)


def test_profile_is_seeded_and_handles_ties():
    rng = np.random.default_rng(4)
    mostly_zeros = np.where(rng.random(50_000) < 0.65, 0.0, rng.exponential(1.0, 50_000))
    frame = pd.DataFrame({"x": mostly_zeros})
    first = build_profile(frame, {"x": "numeric"}, sample_size=100, seed=7)
    assert first == build_profile(frame, {"x": "numeric"}, sample_size=100, seed=7)
    assert first != build_profile(frame, {"x": "numeric"}, sample_size=100, seed=8)
    edges = first["features"]["x"]["bin_edges"]
    assert edges[:2] == [-math.inf, 0.0] and len(edges) == 6  # deciles 1-6 are all 0
    assert first["features"]["x"]["bin_proportions"][:2] == pytest.approx([0.0, 0.7], abs=0.01)


def test_profile_of_a_feature_with_few_values_counts_them():
    frame = pd.DataFrame({"x": np.random.default_rng(4).integers(0, 3, 50_000)})
    x = build_profile(frame, {"x": "numeric"})["features"]["x"]
    assert x["kind"] == "numeric" and x["levels"] == [0.0, 1.0, 2.0]
    assert x["level_counts"] == np.bincount(frame["x"]).tolist()
    assert "sample" not in x and x["mean"] == pytest.approx(1.0, abs=0.01)


def test_many_values_or_too_few_rows_to_tell_stay_continuous():
    rng = np.random.default_rng(4)
    many_levels = pd.DataFrame({"x": rng.integers(0, MAX_DISCRETE_LEVELS + 1, 50_000)})
    few_rows = pd.DataFrame({"x": rng.normal(size=MAX_DISCRETE_LEVELS)})
    for frame in (many_levels, few_rows):
        assert "sample" in build_profile(frame, {"x": "numeric"})["features"]["x"]


def test_profile_rejects_unknown_kinds_and_empty_columns():
    with pytest.raises(ValueError, match="kind"):
        build_profile(pd.DataFrame({"x": [1.0]}), {"x": "ordinal"})
    with pytest.raises(ValueError, match="no finite values"):
        build_profile(pd.DataFrame({"x": [np.nan, None]}), {"x": "numeric"})


def test_profile_round_trips_through_json(profile):
    current = sample_frame(np.random.default_rng(5), 2_000, mean_shift=0.1)
    reloaded = json.loads(json.dumps(profile))
    assert compare(reloaded, current) == compare(profile, current)


# --- Statistical honesty -----------------------------------------------------------------------


def test_false_alarm_rate_is_near_alpha_when_nothing_changed(profile):
    """One reference, 300 windows from the same distributions. The windows (500 rows) are
    small next to the reference sample (10,000 rows), so the shared reference adds little to the
    binomial spread; with windows as large as the sample, alarms would cluster by reference."""
    rng = np.random.default_rng(6)
    alarms = {name: 0 for name in KINDS}
    for _ in range(WINDOWS):
        report = compare(profile, sample_frame(rng, QUIET_WINDOW_SIZE), alpha=ALPHA)
        for feature in report.features:
            alarms[feature.feature] += feature.drifted
    rates = {name: count / WINDOWS for name, count in alarms.items()}
    print(f"false-alarm rates over {WINDOWS} windows: {rates}")
    for rate in rates.values():
        assert FALSE_ALARM_BAND[0] <= rate <= FALSE_ALARM_BAND[1]


def test_goodness_of_fit_against_a_small_reference_over_alarms():
    """Why chi2_test uses the contingency table: a goodness-of-fit test treats the reference
    proportions as exact, but a 500-row reference is as noisy as the 500-row window, so the
    statistic is about twice what it assumes (false alarms ~0.3 with 5 categories). Each trial
    draws a fresh reference: that measures the rate over references, not for one lucky one."""
    rng = np.random.default_rng(7)
    goodness_of_fit_alarms = contingency_alarms = 0
    for _ in range(WINDOWS):
        reference = rng.multinomial(500, COLOUR_PROBABILITIES)
        current = rng.multinomial(500, COLOUR_PROBABILITIES)
        expected = reference / reference.sum() * current.sum()
        goodness_of_fit_alarms += stats.chisquare(current, f_exp=expected).pvalue < ALPHA
        contingency_p_value = chi2_test(colour_counts(reference), colour_counts(current))[1]
        contingency_alarms += contingency_p_value < ALPHA
    rates = goodness_of_fit_alarms / WINDOWS, contingency_alarms / WINDOWS
    print(f"false alarms: goodness of fit {rates[0]:.3f}, contingency {rates[1]:.3f}")
    assert rates[0] > 0.15
    assert FALSE_ALARM_BAND[0] <= rates[1] <= FALSE_ALARM_BAND[1]


# --- Detecting drift ---------------------------------------------------------------------------


def test_shifted_and_rescaled_numeric_features_are_flagged(profile):
    current = sample_frame(np.random.default_rng(8), WINDOW_SIZE, mean_shift=0.5, scale=1.2)
    report = compare(profile, current, columns=["normal", "skewed"])
    assert [f.drifted for f in report.features] == [True, True]
    normal = report.features[0]
    assert normal.distance == pytest.approx(0.5, abs=0.1) and normal.psi > 0.1


def test_changed_category_proportions_are_flagged(profile):
    changed = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    current = sample_frame(np.random.default_rng(9), WINDOW_SIZE, colour_probabilities=changed)
    colour = compare(profile, current, columns=["colour"]).features[0]
    assert colour.test == "chi2" and colour.drifted and colour.p_value < 1e-4
    assert colour.bin_labels[:5] == ["red", "green", "blue", "black", "white"]
    assert sum(colour.current_histogram) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("mean_shift", "threshold", "dataset_drift"),
    [(0.5, 0.5, True), (0.5, 0.7, False), (0.0, 0.5, False)],
)
def test_dataset_drift_is_the_share_of_drifted_features(
    profile, mean_shift, threshold, dataset_drift
):
    changed = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    current = sample_frame(
        np.random.default_rng(10), WINDOW_SIZE, mean_shift=mean_shift, colour_probabilities=changed
    )
    report = compare(profile, current, threshold=threshold)
    drifted = [f.feature for f in report.features if f.drifted]
    assert drifted == (["normal", "colour"] if mean_shift else ["colour"])
    assert report.drifted_share == pytest.approx(len(drifted) / 3)
    assert report.dataset_drift is dataset_drift


def test_a_million_row_window_takes_seconds():
    rng = np.random.default_rng(11)

    def frame(size: int) -> pd.DataFrame:
        numeric = {f"x{i}": rng.normal(i, 1 + i, size) for i in range(6)}
        levels = [np.array([f"level{j}" for j in range(3 + 10 * i)]) for i in range(4)]
        categorical = {f"c{i}": rng.choice(levels[i], size) for i in range(4)}
        return pd.DataFrame(numeric | categorical)

    kinds = {f"x{i}": "numeric" for i in range(6)} | {f"c{i}": "categorical" for i in range(4)}
    profile = build_profile(frame(100_000), kinds)
    current = frame(1_000_000)
    started = time.perf_counter()
    report = compare(profile, current)
    elapsed = time.perf_counter() - started
    print(f"compare: 1,000,000 rows x 10 features in {elapsed:.2f} s")
    assert len(report.features) == 10 and all(f.current_size == 1_000_000 for f in report.features)
    assert elapsed < 20


# --- Discrete numeric features ----------------------------------------------------------------

RATINGS = np.arange(1, 6)
RATING_SHARES = np.array([0.05, 0.10, 0.20, 0.35, 0.30])
# The same mean (3.75) with more of both ends: the cumulative curves KS compares stay close.
POLARISED_SHARES = np.array([0.10, 0.10, 0.10, 0.35, 0.35])
PAIRS = 200
# Binomial(200, 0.05): P(rate < 0.02) = 0.9% and P(rate > 0.09) = 0.6%.
PAIRS_BAND = (0.02, 0.09)


def ratings(rng: np.random.Generator, size: int, shares: np.ndarray = RATING_SHARES):
    return pd.DataFrame({"rating": rng.choice(RATINGS, size=size, p=shares)})


def alarm_rates(current_shares: np.ndarray, seed: int) -> tuple[float, float]:
    """(ours, KS) alarm rates over PAIRS fresh pairs of a 500-row reference and window: as a
    small champion's training data and one day of traffic, the reference as noisy as the window."""
    rng = np.random.default_rng(seed)
    ours = ks = 0
    for _ in range(PAIRS):
        reference, current = ratings(rng, 500), ratings(rng, 500, current_shares)
        feature = compare(build_profile(reference, {"rating": "numeric"}), current).features[0]
        ours += feature.drifted
        ks += ks_test(reference["rating"], current["rating"])[1] < ALPHA
    return ours / PAIRS, ks / PAIRS


def test_a_discrete_feature_alarms_near_alpha_when_nothing_changed():
    """KS p-values on five tied values are far too large; chi-squared on the counts is not."""
    ours, ks = alarm_rates(RATING_SHARES, seed=21)
    print(f"false alarms on a 1-5 rating: chi-squared {ours:.3f}, KS {ks:.3f}")
    assert PAIRS_BAND[0] <= ours <= PAIRS_BAND[1]
    assert ks < PAIRS_BAND[0]


def test_a_change_in_the_proportions_of_a_discrete_feature_is_detected():
    ours, ks = alarm_rates(POLARISED_SHARES, seed=22)
    print(f"power against a polarised rating: chi-squared {ours:.3f}, KS {ks:.3f}")
    assert ours > 0.95 and ks < 0.5


def test_a_discrete_feature_is_reported_as_numeric_with_a_bar_per_value():
    profile = build_profile(ratings(np.random.default_rng(23), 10_000), {"rating": "numeric"})
    current = ratings(np.random.default_rng(24), 1_000, POLARISED_SHARES)
    rating = compare(profile, current).features[0]
    assert (rating.kind, rating.test, rating.distance_name) == (
        "numeric",
        "chi2_discrete",
        "jensen_shannon",
    )
    assert rating.bin_labels == ["1", "2", "3", "4", "5"]
    assert rating.current_histogram == pytest.approx(POLARISED_SHARES, abs=0.03)
    table = [profile["features"]["rating"]["level_counts"], np.bincount(current["rating"])[1:]]
    expected = stats.chi2_contingency(table, correction=False)
    assert (rating.statistic, rating.p_value) == pytest.approx(
        (expected.statistic, expected.pvalue)
    )
    assert rating.drifted and rating.p_value < 1e-6


def test_values_the_reference_never_had_share_one_bin():
    profile = build_profile(ratings(np.random.default_rng(25), 10_000), {"rating": "numeric"})
    exact_shares = np.repeat(RATINGS, (RATING_SHARES * 1_000).astype(int)).astype(float)
    one_new_value = pd.DataFrame({"rating": np.r_[exact_shares[1:], 6.0]})
    rating = compare(profile, one_new_value).features[0]
    assert rating.bin_labels == ["1", "2", "3", "4", "5", UNSEEN_LEVEL]
    assert not rating.drifted  # pooled with the rarest value, as a rare new category is
    continuous_tail = np.r_[exact_shares[100:], np.random.default_rng(26).normal(8, 1, 100)]
    rating = compare(profile, pd.DataFrame({"rating": continuous_tail})).features[0]
    assert len(rating.bin_labels) == 6 and rating.current_histogram[-1] == pytest.approx(0.1)
    assert rating.drifted and rating.p_value < 1e-10


def test_a_version_1_profile_still_compares_with_ks():
    """Profiles stored with champion bundles before discrete features: KS on the sample."""
    sample = np.sort(ratings(np.random.default_rng(27), 2_000)["rating"].to_numpy(float))
    rating = {
        "kind": "numeric",
        "n": 2_000,
        "mean": float(sample.mean()),
        "std": float(sample.std(ddof=1)),
        "sample": sample.tolist(),
        "bin_edges": [-math.inf, 2.0, 3.0, 4.0, 5.0, math.inf],
        "bin_proportions": (np.bincount(sample.astype(int) - 1) / sample.size).tolist(),
    }
    stored = json.dumps({"version": 1, "sample_size": 10_000, "features": {"rating": rating}})
    current = ratings(np.random.default_rng(28), 1_000, POLARISED_SHARES)
    old = compare(json.loads(stored), current).features[0]
    assert old.test == "ks" and old.distance_name == "wasserstein_std"
    assert (old.statistic, old.p_value) == ks_test(sample, current["rating"].to_numpy(float))
    assert old.current_histogram == pytest.approx(np.bincount(current["rating"])[1:] / 1_000)


def test_a_profile_newer_than_the_library_is_refused(profile):
    with pytest.raises(ValueError, match="newer"):
        compare(
            profile | {"version": PROFILE_VERSION + 1}, sample_frame(np.random.default_rng(29), 10)
        )


# --- Missing data ------------------------------------------------------------------------------


def test_nulls_are_dropped_and_missing_features_skipped(profile):
    current = sample_frame(np.random.default_rng(12), 1_000).drop(columns="skewed")
    current.loc[:99, "normal"] = np.nan
    current.loc[100:109, "normal"] = np.inf
    current["colour"] = current["colour"].astype(object)
    current.loc[:199, "colour"] = None
    report = compare(profile, current)
    assert [f.feature for f in report.features] == ["normal", "colour"]
    sizes = {f.feature: f.current_size for f in report.features}
    assert sizes == {"normal": 890, "colour": 800}
    assert "None" not in report.features[1].bin_labels


def test_a_feature_with_no_current_values_is_reported_but_not_counted(profile):
    current = sample_frame(np.random.default_rng(13), 1_000, mean_shift=1.0)
    current["colour"] = None
    report = compare(profile, current, columns=["normal", "colour"])
    normal, colour = report.features
    assert colour.current_size == 0 and math.isnan(colour.p_value) and not colour.drifted
    assert normal.drifted and report.drifted_share == 1.0 and report.dataset_drift


def test_to_frame_has_one_row_per_feature_without_histograms(profile):
    frame = compare(profile, sample_frame(np.random.default_rng(14), 500)).to_frame()
    assert list(frame["feature"]) == list(KINDS)
    assert "bin_labels" not in frame.columns and {"p_value", "psi", "distance"} <= set(
        frame.columns
    )


# --- Chart -------------------------------------------------------------------------------------


def test_drift_chart_is_a_small_png(profile):
    pytest.importorskip("matplotlib")
    current = sample_frame(np.random.default_rng(15), 1_000, mean_shift=0.5)
    png = drift_chart_png(compare(profile, current))
    assert png is not None and png.startswith(b"\x89PNG") and len(png) < 200_000


def test_drift_chart_is_none_without_matplotlib(profile, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    current = sample_frame(np.random.default_rng(16), 100)
    assert drift_chart_png(compare(profile, current)) is None


def test_holm_keeps_any_feature_alarms_near_alpha_across_ten_features():
    rng = np.random.default_rng(7)
    names = [f"f{i}" for i in range(10)]

    def frame(size: int, shifted: str | None = None) -> pd.DataFrame:
        return pd.DataFrame({n: rng.normal(0.6 if n == shifted else 0.0, 1.0, size) for n in names})

    reference = build_profile(frame(20_000), dict.fromkeys(names, "numeric"))
    reports = [compare(reference, frame(QUIET_WINDOW_SIZE), ALPHA, 0.5) for _ in range(200)]
    any_drifted = np.mean([any(f.drifted for f in r.features) for r in reports])
    any_significant = np.mean([bool(r.significant_features()) for r in reports])
    assert any_drifted > 0.25  # 1 - 0.95**10 = 0.40 without a correction
    assert FALSE_ALARM_BAND[0] <= any_significant <= FALSE_ALARM_BAND[1]
    shifted = compare(reference, frame(QUIET_WINDOW_SIZE, shifted="f3"), ALPHA, 0.5)
    assert shifted.significant_features() == ["f3"]

"""Data drift: compare a current window with the champion's reference data, feature by feature.

The reference is summarised once, when the champion is built, into a JSON-serialisable profile
(`build_profile`); `compare` then tests a current window against it. Per feature:

- numeric: two-sample Kolmogorov-Smirnov test against a seeded random sample of the reference,
  PSI on reference-quantile bins, Wasserstein distance in reference standard deviations;
- discrete numeric (at most MAX_DISCRETE_LEVELS distinct reference values: ratings, small counts):
  tested like a categorical feature on its values (test "chi2_discrete"), reported as numeric;
- categorical: chi-squared test of homogeneity on the 2 x k contingency table (both the reference
  and the current window are samples), PSI and Jensen-Shannon distance on category proportions.

A feature has drifted when its p-value is below alpha; the dataset has drifted when the share of
drifted features reaches the threshold. Caveats the numbers cannot show by themselves:

- p-values assume independent rows; served traffic is often autocorrelated (the same users,
  bursts), which makes any test alarm more often than alpha.
- With a fixed reference, alarms on successive windows are not independent: the reference's own
  sampling error is shared by every window.
- With large windows the tests detect tiny, harmless shifts; read the distances (PSI, Wasserstein,
  Jensen-Shannon) for the size of a shift, the p-value only for whether it is noise.
- KS p-values assume continuous data; with many tied values they are conservative, which is why
  features with few distinct values take the chi-squared path.

Pure functions over numpy/pandas/scipy; the caller stores the profile and the report.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance as scipy_distance

from mlops_assets.lib import charts

# Version 2 added discrete numeric features ("levels"); version 1 profiles still compare (KS).
PROFILE_VERSION = 2
NUMERIC = "numeric"
CATEGORICAL = "categorical"
KINDS = (NUMERIC, CATEGORICAL)
# Cochran's rule: the chi-squared approximation needs expected cell counts of about 5 or more.
MIN_EXPECTED_COUNT = 5.0
# KS p-values on heavily tied values are far too large (no alarm in 200 no-drift pairs on a 1-5
# rating at alpha 0.05). Up to 20 distinct values (ratings, small counts, flags) chi-squared on
# the value counts keeps its size, and the table stays small for windows of a few hundred rows.
MAX_DISCRETE_LEVELS = 20
# scipy's ks_2samp computes exact p-values up to this many values per sample ('auto').
KS_EXACT_MAX_SIZE = 10_000
OTHER_CATEGORY = "(other)"
UNSEEN_LEVEL = "(not in reference)"
CHART_MAX_CATEGORIES = 12


# --- Reference profile -------------------------------------------------------------------------


def build_profile(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    sample_size: int = 10_000,
    bins: int = 10,
    seed: int = 0,
) -> dict:
    """JSON-serialisable reference profile. kinds maps column -> 'numeric' | 'categorical'.

    numeric: n, mean, std, and either (discrete: at most MAX_DISCRETE_LEVELS distinct values in
    more rows than that) the distinct values ("levels", sorted) and their counts, or a seeded
    random sample of at most sample_size values (sorted), PSI bin edges from reference quantiles
    (at most `bins` bins, unique, with -inf/+inf outer edges; `json.dumps` writes those as
    -Infinity/Infinity, which `json.loads` reads back), and reference bin proportions;
    categorical: counts per category (str keys), n. Non-finite numeric values count as missing.
    A column with no values raises ValueError.
    """
    features = {}
    for column, kind in kinds.items():
        if kind == NUMERIC:
            # A fresh generator per column: a column's sample does not depend on the others.
            rng = np.random.default_rng(seed)
            values = _numeric_values(frame[column])
            features[column] = _numeric_profile(values, sample_size, bins, rng)
        elif kind == CATEGORICAL:
            features[column] = _categorical_profile(_category_counts(frame[column]))
        else:
            raise ValueError(f"{column}: kind must be one of {KINDS}, got {kind!r}")
    return {"version": PROFILE_VERSION, "sample_size": sample_size, "features": features}


def _numeric_profile(
    values: np.ndarray, sample_size: int, bins: int, rng: np.random.Generator
) -> dict:
    if values.size == 0:
        raise ValueError("cannot profile a numeric column with no finite values")
    summary = {
        "kind": NUMERIC,
        "n": int(values.size),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.size > 1 else 0.0,
    }
    sample = values
    if values.size > sample_size:
        sample = values[rng.choice(values.size, size=sample_size, replace=False)]
    values = np.sort(values)
    levels, counts = _distinct_values(values)
    if levels.size <= MAX_DISCRETE_LEVELS < values.size:  # more rows than levels: ties
        return summary | {"levels": levels.tolist(), "level_counts": counts.tolist()}
    edges = _quantile_edges(values, bins)
    return summary | {
        "sample": np.sort(sample).tolist(),
        "bin_edges": edges,
        "bin_proportions": _bin_proportions(values, edges).tolist(),
    }


def _distinct_values(sorted_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, their counts) of sorted values: np.unique without sorting again."""
    starts = np.flatnonzero(np.diff(sorted_values, prepend=-np.inf))
    return sorted_values[starts], np.diff(starts, append=sorted_values.size)


def _quantile_edges(values: np.ndarray, bins: int) -> list[float]:
    inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    return [-math.inf, *inner.tolist(), math.inf]


def _bin_proportions(sorted_values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Proportions of the (sorted) values in [edge_i, edge_i+1); all zeros when there are none."""
    below_edges = np.searchsorted(sorted_values, np.asarray(edges[1:-1], dtype=float), "left")
    counts = np.diff(below_edges, prepend=0, append=sorted_values.size)
    return counts / sorted_values.size if sorted_values.size else counts.astype(float)


def _categorical_profile(counts: dict[str, int]) -> dict:
    if not counts:
        raise ValueError("cannot profile a categorical column with no values")
    return {"kind": CATEGORICAL, "n": sum(counts.values()), "counts": counts}


def _numeric_values(column: pd.Series) -> np.ndarray:
    values = column.to_numpy(dtype=float, na_value=np.nan)
    return values[np.isfinite(values)]


def _category_counts(column: pd.Series) -> dict[str, int]:
    """Counts per category, keyed by str(value); nulls and zero-count categories left out."""
    counts = column.value_counts(dropna=True, sort=True)
    merged: dict[str, int] = {}
    for value, count in counts.items():
        if count > 0:
            key = str(value)
            merged[key] = merged.get(key, 0) + int(count)
    return merged


# --- Statistics --------------------------------------------------------------------------------


def ks_test(reference_sample: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """(statistic, p-value) of scipy.stats.ks_2samp(reference_sample, current), method 'auto'
    (exact when both samples have at most 10,000 values, asymptotic otherwise)."""
    reference_sorted, current_sorted = np.sort(reference_sample), np.sort(current)
    return _ks_sorted(
        reference_sorted, current_sorted, *_ecdf_gaps(reference_sorted, current_sorted)
    )


def _ks_sorted(
    reference: np.ndarray, current: np.ndarray, gaps: np.ndarray, steps: np.ndarray
) -> tuple[float, float]:
    """ks_2samp on sorted samples, given their _ecdf_gaps. Above KS_EXACT_MAX_SIZE the statistic
    comes from the gaps and the p-value from scipy's asymptotic formula, which saves ks_2samp's
    sorting and searching of the large sample."""
    if max(reference.size, current.size) <= KS_EXACT_MAX_SIZE:
        result = stats.ks_2samp(reference, current, method="auto")
        return float(result.statistic), float(result.pvalue)
    # The ECDFs only change where the merged values step up; ties in between are not points.
    statistic = float(gaps[steps > 0].max(initial=0.0))
    larger, smaller = max(reference.size, current.size), min(reference.size, current.size)
    effective_size = np.round(larger * smaller / (larger + smaller))
    p_value = np.clip(stats.kstwo.sf(statistic, effective_size), 0.0, 1.0)
    return statistic, float(p_value)


def _ecdf_gaps(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(|F_reference - F_current| at each merged value but the last, the step to the next merged
    value) for two sorted samples. The reference (the smaller, a profile sample) is placed into
    the current values with one search per reference value, so nothing is sorted again."""
    size = reference.size + current.size
    reference_positions = np.searchsorted(current, reference, "left") + np.arange(reference.size)
    from_reference = np.zeros(size, dtype=bool)
    from_reference[reference_positions] = True
    merged = np.empty(size)
    merged[from_reference], merged[~from_reference] = reference, current
    # Counts up to position i are the ECDFs at merged[i] wherever the next value is larger; at
    # ties the step is 0, so the miscount there never contributes.
    reference_counts = np.cumsum(from_reference[:-1])
    current_counts = np.arange(1, size) - reference_counts
    gaps = np.abs(reference_counts / reference.size - current_counts / current.size)
    return gaps, np.diff(merged)


def chi2_test(
    reference_counts: dict[str, int],
    current_counts: dict[str, int],
    min_expected: float = MIN_EXPECTED_COUNT,
) -> tuple[float, float]:
    """(statistic, p-value) of the chi-squared test of homogeneity on the 2 x k table.

    Both rows are samples, so this is scipy.stats.chi2_contingency, not a goodness-of-fit test
    against the reference proportions (which over-alarms unless the reference is huge).
    Categories absent from both are dropped. The chi-squared approximation needs expected counts
    of about 5: with a long tail of rare categories it over-alarms (about 0.2 instead of 0.05 for
    200 Zipf categories and 200-row windows). So the columns whose expected count is below
    `min_expected` in either row are pooled, rarest first, adding the next rarest while the pool
    falls short. The pooling looks only at the table's margins, which the test conditions on, so
    it keeps the size of the test; the price is power against a new category, which is compared
    as part of the pool. `min_expected=0` disables pooling. No Yates correction: it only applies
    to 2 x 2 tables, where it makes the test conservative. A single column gives (0.0, 1.0).
    """
    table = _pool_sparse_columns(_contingency_table(reference_counts, current_counts), min_expected)
    if table.shape[1] < 2:
        return 0.0, 1.0
    result = stats.chi2_contingency(table, correction=False)
    return float(result.statistic), float(result.pvalue)


def _contingency_table(
    reference_counts: dict[str, int], current_counts: dict[str, int]
) -> np.ndarray:
    categories = _union_categories(reference_counts, current_counts)
    table = np.array(
        [
            [reference_counts.get(c, 0) for c in categories],
            [current_counts.get(c, 0) for c in categories],
        ],
        dtype=float,
    ).reshape(2, len(categories))
    return table[:, table.sum(axis=0) > 0]


def _pool_sparse_columns(table: np.ndarray, min_expected: float) -> np.ndarray:
    """Merge the columns whose expected counts fall below min_expected into one pooled column,
    adding the next smallest columns while the pool itself falls short."""
    total = table.sum()
    if min_expected <= 0 or total == 0 or table.shape[1] < 2:
        return table
    # Expected count of a cell = column total * row share, so the smaller row decides.
    smallest_row_share = table.sum(axis=1).min() / total
    needed = min_expected / smallest_row_share if smallest_row_share else math.inf
    table = table[:, np.argsort(table.sum(axis=0), kind="stable")]
    column_totals = table.sum(axis=0)
    sparse = int(np.searchsorted(column_totals, needed, side="left"))
    if sparse == 0:
        return table
    pool_reaches_needed = int(np.searchsorted(np.cumsum(column_totals), needed, side="left")) + 1
    pooled = min(max(sparse, pool_reaches_needed), table.shape[1])
    pool = table[:, :pooled].sum(axis=1, keepdims=True)
    return np.hstack([pool, table[:, pooled:]])


def psi(
    reference_proportions: np.ndarray, current_proportions: np.ndarray, epsilon: float = 1e-4
) -> float:
    """Population stability index, sum((c - r) * ln(c / r)), proportions clipped below at
    epsilon so empty bins do not give infinities."""
    reference = np.clip(np.asarray(reference_proportions, dtype=float), epsilon, None)
    current = np.clip(np.asarray(current_proportions, dtype=float), epsilon, None)
    return float(np.sum((current - reference) * np.log(current / reference)))


def wasserstein_std(
    reference_sample: np.ndarray, current: np.ndarray, reference_std: float
) -> float:
    """Wasserstein (earth mover's) distance in reference standard deviations, as
    scipy.stats.wasserstein_distance: the integral of |F_reference - F_current|. With a constant
    reference (std 0): 0.0 if the distance is 0, else inf."""
    gaps, steps = _ecdf_gaps(np.sort(reference_sample), np.sort(current))
    return _in_std_units(float(gaps @ steps), reference_std)


def _in_std_units(raw: float, reference_std: float) -> float:
    if reference_std > 0:
        return raw / reference_std
    return 0.0 if raw == 0 else math.inf


def jensen_shannon(reference_counts: dict[str, int], current_counts: dict[str, int]) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between the category proportions."""
    categories = _union_categories(reference_counts, current_counts)
    reference = np.array([reference_counts.get(c, 0) for c in categories], dtype=float)
    current = np.array([current_counts.get(c, 0) for c in categories], dtype=float)
    if reference.sum() == 0 or current.sum() == 0:
        return math.nan
    return float(scipy_distance.jensenshannon(reference, current, base=2))


def _union_categories(reference_counts: dict[str, int], current_counts: dict[str, int]) -> list:
    """Reference categories (in their stored order), then categories new in current."""
    return list(reference_counts) + [c for c in current_counts if c not in reference_counts]


# --- Report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FeatureDrift:
    feature: str
    kind: str
    reference_size: int
    current_size: int
    test: str  # "ks" | "chi2" | "chi2_discrete" (a numeric feature with few distinct values)
    statistic: float
    p_value: float
    psi: float
    distance_name: str  # "wasserstein_std" | "jensen_shannon"
    distance: float
    drifted: bool
    # For charts: proportions per profile bin (numeric), per category (categorical) or per value
    # (discrete numeric, in increasing order, then UNSEEN_LEVEL).
    reference_histogram: list[float] = field(default_factory=list)
    current_histogram: list[float] = field(default_factory=list)
    bin_labels: list[str] = field(default_factory=list)


HISTOGRAM_FIELDS = ("reference_histogram", "current_histogram", "bin_labels")


@dataclass(frozen=True)
class DriftReport:
    features: list[FeatureDrift]
    alpha: float
    threshold: float
    drifted_share: float  # among features with a p-value (those with current values)
    dataset_drift: bool

    def significant_features(self) -> list[str]:
        """Drifted features that stay significant after Holm's correction across the tested
        features: with k undrifted features the chance that any shows up here stays at alpha,
        where per-feature tests alone flag one in 1 - (1 - alpha)^k windows (40% for k = 10)."""
        tested = sorted(
            (f for f in self.features if not math.isnan(f.p_value)), key=lambda f: f.p_value
        )
        significant = []
        for rank, feature in enumerate(tested):
            if feature.p_value >= self.alpha / (len(tested) - rank):
                break
            significant.append(feature.feature)
        return significant

    def to_frame(self) -> pd.DataFrame:
        """One row per feature, without the histogram lists."""
        rows = [
            {k: v for k, v in asdict(f).items() if k not in HISTOGRAM_FIELDS} for f in self.features
        ]
        columns = [f.name for f in fields(FeatureDrift) if f.name not in HISTOGRAM_FIELDS]
        return pd.DataFrame(rows, columns=columns)


def compare(
    profile: dict,
    current: pd.DataFrame,
    alpha: float = 0.05,
    threshold: float = 0.5,
    columns: list[str] | None = None,
) -> DriftReport:
    """Compare current data (only columns present in both; nulls dropped per feature) to the
    profile. A feature with no current values is reported with p_value=nan, drifted=False, and
    does not count towards drifted_share. Dataset drift: drifted_share >= threshold (and at
    least one feature tested). Profiles of an older version compare as they were built; a
    newer version raises ValueError."""
    if profile.get("version", 1) > PROFILE_VERSION:
        raise ValueError(
            f"profile version {profile['version']} is newer than this library's {PROFILE_VERSION}"
        )
    wanted = columns if columns is not None else list(profile["features"])
    names = [c for c in wanted if c in profile["features"] and c in current.columns]
    features = [
        _compare_feature(name, profile["features"][name], current[name], alpha) for name in names
    ]
    tested = [f for f in features if not math.isnan(f.p_value)]
    share = sum(f.drifted for f in tested) / len(tested) if tested else 0.0
    return DriftReport(
        features=features,
        alpha=alpha,
        threshold=threshold,
        drifted_share=share,
        dataset_drift=bool(tested) and share >= threshold,
    )


def _compare_feature(name: str, reference: dict, column: pd.Series, alpha: float) -> FeatureDrift:
    if reference["kind"] == CATEGORICAL:
        counts = _category_counts(column)
        return _compare_counts(name, CATEGORICAL, "chi2", reference, counts, alpha)
    values = _numeric_values(column)
    if "levels" in reference:  # discrete (profiles of version 1 have none: KS)
        counts = _level_counts(values, reference["levels"])
        return _compare_counts(
            name, NUMERIC, "chi2_discrete", _level_table(reference), counts, alpha
        )
    return _compare_continuous(name, reference, np.sort(values), alpha)


def _compare_continuous(
    name: str, reference: dict, values: np.ndarray, alpha: float
) -> FeatureDrift:
    """KS, PSI and Wasserstein of sorted current values against the profile's sorted sample."""
    edges = reference["bin_edges"]
    reference_histogram = np.asarray(reference["bin_proportions"], dtype=float)
    current_histogram = _bin_proportions(values, edges)
    sample = np.sort(np.asarray(reference["sample"], dtype=float))
    if values.size:
        gaps, steps = _ecdf_gaps(sample, values)
        statistic, p_value = _ks_sorted(sample, values, gaps, steps)
        psi_value = psi(reference_histogram, current_histogram)
        distance = _in_std_units(float(gaps @ steps), reference["std"])
    else:
        statistic = p_value = psi_value = distance = math.nan
    return FeatureDrift(
        feature=name,
        kind=NUMERIC,
        reference_size=reference["n"],
        current_size=int(values.size),
        test="ks",
        statistic=statistic,
        p_value=p_value,
        psi=psi_value,
        distance_name="wasserstein_std",
        distance=distance,
        drifted=bool(p_value < alpha),
        reference_histogram=reference_histogram.tolist(),
        current_histogram=current_histogram.tolist(),
        bin_labels=_bin_labels(edges),
    )


def _bin_labels(edges: list[float]) -> list[str]:
    return [f"[{low:.3g}, {high:.3g})" for low, high in zip(edges[:-1], edges[1:], strict=True)]


def _level_label(value: float) -> str:
    """'3' for 3.0, else the shortest text that reads back as the same float: labels are
    unique, so they can key the counts."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _level_table(reference: dict) -> dict:
    """A discrete numeric profile as _compare_counts reads a categorical one."""
    labels = [_level_label(v) for v in reference["levels"]]
    return {
        "n": reference["n"],
        "counts": dict(zip(labels, reference["level_counts"], strict=True)),
    }


def _level_counts(values: np.ndarray, levels: list[float]) -> dict[str, int]:
    """Counts per reference level (zeros left out); values the reference never had are counted
    together as UNSEEN_LEVEL, so a window of continuous values cannot make thousands of bins."""
    levels_array = np.asarray(levels, dtype=float)
    index = np.searchsorted(levels_array, values).clip(max=levels_array.size - 1)
    known = levels_array[index] == values
    counts = np.bincount(index[known], minlength=levels_array.size)
    result = {_level_label(v): int(c) for v, c in zip(levels, counts, strict=True) if c}
    unseen = int(values.size - np.count_nonzero(known))
    return result | ({UNSEEN_LEVEL: unseen} if unseen else {})


def _compare_counts(
    name: str, kind: str, test: str, reference: dict, current_counts: dict[str, int], alpha: float
) -> FeatureDrift:
    """Chi-squared, PSI and Jensen-Shannon on counts per category (or per discrete value)."""
    reference_counts = reference["counts"]
    categories = _union_categories(reference_counts, current_counts)
    reference_histogram = _proportions(reference_counts, categories)
    current_histogram = _proportions(current_counts, categories)
    current_size = sum(current_counts.values())
    if current_size:
        statistic, p_value = chi2_test(reference_counts, current_counts)
        psi_value = psi(reference_histogram, current_histogram)
        distance = jensen_shannon(reference_counts, current_counts)
    else:
        statistic = p_value = psi_value = distance = math.nan
    return FeatureDrift(
        feature=name,
        kind=kind,
        reference_size=reference["n"],
        current_size=current_size,
        test=test,
        statistic=statistic,
        p_value=p_value,
        psi=psi_value,
        distance_name="jensen_shannon",
        distance=distance,
        drifted=bool(p_value < alpha),
        reference_histogram=reference_histogram.tolist(),
        current_histogram=current_histogram.tolist(),
        bin_labels=categories,
    )


def _proportions(counts: dict[str, int], categories: list[str]) -> np.ndarray:
    values = np.array([counts.get(c, 0) for c in categories], dtype=float)
    total = values.sum()
    return values / total if total else values


# --- Chart -------------------------------------------------------------------------------------


def drift_chart_png(report: DriftReport) -> bytes | None:
    """A small multiple: one panel per feature, reference vs current distribution (bars on the
    profile's bins / categories), titled with the test, p-value and verdict. None if matplotlib
    is not importable. Uses the Agg canvas directly, so no global pyplot state is touched."""
    if not report.features:
        return None
    columns = min(3, len(report.features))
    rows = math.ceil(len(report.features) / columns)
    figure = charts.new_figure(4.2 * columns, 2.8 * rows)
    if figure is None:
        return None
    for index, feature in enumerate(report.features):
        _draw_panel(figure.add_subplot(rows, columns, index + 1), feature)
    verdict = "DATASET DRIFT" if report.dataset_drift else "no dataset drift"
    figure.suptitle(
        f"{verdict}: {report.drifted_share:.0%} of features drifted "
        f"(alpha {report.alpha:g}, threshold {report.threshold:.0%})",
        fontsize=10,
    )
    figure.legend(*figure.axes[0].get_legend_handles_labels(), loc="outside upper right", ncols=2)
    return charts.png(figure)


def _draw_panel(axes, feature: FeatureDrift) -> None:
    labels, reference, current = _chart_bars(feature)
    positions = np.arange(len(labels))
    axes.bar(positions - 0.2, reference, width=0.4, label="reference", color="#4c72b0")
    axes.bar(positions + 0.2, current, width=0.4, label="current", color="#dd8452")
    axes.set_xticks(positions, labels, rotation=45, ha="right", fontsize=6)
    axes.tick_params(axis="y", labelsize=7)
    verdict = "DRIFT" if feature.drifted else "ok"
    p_value = "n/a" if math.isnan(feature.p_value) else f"{feature.p_value:.3g}"
    axes.set_title(
        f"{feature.feature}: {feature.test} p={p_value} {verdict}",
        fontsize=9,
        color="#c0392b" if feature.drifted else "black",
    )


def _chart_bars(feature: FeatureDrift) -> tuple[list[str], list[float], list[float]]:
    """The feature's bars; categorical tails beyond CHART_MAX_CATEGORIES lumped into (other)."""
    labels = list(feature.bin_labels)
    reference = list(feature.reference_histogram)
    current = list(feature.current_histogram)
    if feature.kind != CATEGORICAL or len(labels) <= CHART_MAX_CATEGORIES:
        return labels, reference, current
    order = np.argsort(-np.maximum(reference, current), kind="stable")
    keep, rest = order[: CHART_MAX_CATEGORIES - 1], order[CHART_MAX_CATEGORIES - 1 :]
    return (
        [labels[i] for i in keep] + [OTHER_CATEGORY],
        [reference[i] for i in keep] + [sum(reference[i] for i in rest)],
        [current[i] for i in keep] + [sum(current[i] for i in rest)],
    )

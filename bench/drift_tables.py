"""The tables of the drift benchmark (bench/drift.py), from its results dict: printed, and in its
results block of docs/benchmarks.md."""

from __future__ import annotations

import math

from bench.drift_data import FEATURES, SCENARIOS, truth

TOOL_TITLES = {
    "ours": "ours (`build_profile` + `compare`)",
    "evidently": "Evidently DataDriftPreset",
}
SPEED_TARGET = 10.0


def nominal_band(results: dict) -> tuple[float, float]:
    """95% binomial interval of an alarm rate around alpha over the run's repetitions."""
    alpha, repetitions = results["gates"]["alpha"], results["plan"]["repetitions"]
    half = 1.96 * math.sqrt(alpha * (1 - alpha) / repetitions)
    return max(0.0, alpha - half), alpha + half


def _number(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "0" if value == 0 else f"{value:.2g}" if value < 0.01 else f"{value:.3f}"


def _verdict(drifted: bool) -> str:
    return "**drift**" if drifted else "no"


def _features(results: dict, scenario: str, tool: str) -> dict:
    return results["scenarios"][scenario][tool]["features"]


# --- speed and memory --------------------------------------------------------------------------


def speed_table(results: dict) -> str:
    lines = [
        f"| scenario | tool | time (s), median of {results['plan']['rounds']} | every round (s) "
        "| import (s, not timed) | RSS before the run (MB) | peak RSS (MB) | added by the run (MB) "
        "| Evidently ÷ ours |",
        "|---|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        ratio = speed_ratio(results, scenario)
        for tool, run in results["scenarios"][scenario].items():
            every = ", ".join(f"{s:.2f}" for s in run["seconds_all"])
            lines.append(
                f"| {scenario} | {TOOL_TITLES[tool]} | {run['seconds']:.2f} | {every} | "
                f"{run['import_seconds']:.1f} | {run['rss_before_mb']:,.0f} | "
                f"{run['peak_rss_mb']:,.0f} | {run['peak_rss_mb'] - run['rss_before_mb']:,.0f} | "
                f"{f'{ratio:.1f}x' if tool == 'ours' else '1x'} |"
            )
    same = all(
        run["same_verdicts_every_round"]
        for s in results["scenarios"].values()
        for run in s.values()
    )
    return "\n".join(lines) + f"\n\nSame verdicts in every round: {'yes' if same else 'NO'}."


def speed_ratio(results: dict, scenario: str) -> float:
    by_tool = results["scenarios"][scenario]
    return by_tool["evidently"]["seconds"] / by_tool["ours"]["seconds"]


# --- verdicts ----------------------------------------------------------------------------------


def verdict_table(results: dict, scenario: str) -> str:
    lines = [
        "| feature | shape | truth | ours: test, p-value | ours: distance | ours "
        "| Evidently: method | Evidently: value (threshold) | Evidently |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    ours_all, theirs_all = (_features(results, scenario, t) for t in ("ours", "evidently"))
    for name, kind, shape in FEATURES:
        ours, theirs = ours_all[name], theirs_all[name]
        distance = "Wasserstein/std" if ours["distance_name"] == "wasserstein_std" else "JS"
        lines.append(
            f"| {name} | {kind}: {shape} | {'drift' if truth(scenario)[name] else 'same'} | "
            f"{ours['method']} {_number(ours['score'])} | {distance} {_number(ours['distance'])} "
            f"| {_verdict(ours['drifted'])} | {theirs['method']} | {_number(theirs['score'])} "
            f"({theirs['threshold']:g}) | {_verdict(theirs['drifted'])} |"
        )
    lines.append(_dataset_row(results, scenario))
    return "\n".join(lines)


def _dataset_row(results: dict, scenario: str) -> str:
    by_tool = results["scenarios"][scenario]
    flagged = {
        tool: f"{_verdict(by_tool[tool]['dataset_drift'])} "
        f"({sum(f['drifted'] for f in by_tool[tool]['features'].values())}/{len(FEATURES)} flagged)"
        for tool in ("ours", "evidently")
    }
    return (
        f"| *dataset drift (share >= {results['gates']['drift_share']})* | | "
        f"{sum(truth(scenario).values())}/{len(FEATURES)} changed | | | {flagged['ours']} | | | "
        f"{flagged['evidently']} |"
    )


# --- false alarms ------------------------------------------------------------------------------


def false_alarm_table(results: dict) -> str:
    high = nominal_band(results)[1]
    lines = [
        "| rows (reference = current) | feature | ours: test | ours: alarm rate "
        "| Evidently: method | Evidently: alarm rate |",
        "|---:|---|---|---:|---|---:|",
    ]
    for size, measured in _by_size(results):
        for name, _, _ in FEATURES:
            rates, methods = measured["features"][name], measured["methods"][name]
            theirs = f"{rates['evidently']:.3f}"
            theirs = f"**{theirs}**" if rates["evidently"] > high else theirs
            lines.append(
                f"| {size:,} | {name} | {methods['ours']} | {rates['ours']:.3f} | "
                f"{methods['evidently']} | {theirs} |"
            )
        share = results["gates"]["drift_share"]
        totals = (
            ("any_feature", "any feature flagged"),
            ("dataset_drift", f"dataset drift (share >= {share})"),
        )
        for key, title in totals:
            rates = measured[key]
            lines.append(
                f"| {size:,} | *{title}* | | {rates['ours']:.3f} | | {rates['evidently']:.3f} |"
            )
    return "\n".join(lines)


def _by_size(results: dict) -> list[tuple[int, dict]]:
    """Sizes as ints (a results file read back from JSON has them as str)."""
    return sorted((int(size), measured) for size, measured in results["false_alarms"].items())


def over_alarms(results: dict) -> list[tuple[int, str, float, float]]:
    """(rows, feature, Evidently's rate, ours) where Evidently's rate is above the band."""
    high = nominal_band(results)[1]
    return [
        (size, name, rates["evidently"], rates["ours"])
        for size, measured in _by_size(results)
        for name, rates in measured["features"].items()
        if rates["evidently"] > high
    ]


# --- targets -----------------------------------------------------------------------------------


def targets_table(results: dict) -> str:
    rows, (low, high) = results["plan"]["rows"], nominal_band(results)
    ratio = min(speed_ratio(results, s) for s in SCENARIOS)
    per_round = [
        theirs / ours
        for s in SCENARIOS
        for theirs, ours in zip(
            results["scenarios"][s]["evidently"]["seconds_all"],
            results["scenarios"][s]["ours"]["seconds_all"],
            strict=True,
        )
    ]
    ours_rates = [
        rates["ours"]
        for _, measured in _by_size(results)
        for rates in measured["features"].values()
    ]
    return "\n".join(
        [
            "| target | measured | met |",
            "|---|---|---|",
            f"| ours >= {SPEED_TARGET:g}x faster than Evidently at {rows:,} x {rows:,} rows (the "
            f"lower of the two scenarios' medians) | {ratio:.1f}x (single rounds "
            f"{min(per_round):.1f}x-{max(per_round):.1f}x) | "
            f"{'yes' if ratio >= SPEED_TARGET else 'NOT met'} |",
            _false_alarm_target(results),
            f"| (not an issue target) ours within the band on every feature and size | "
            f"{min(ours_rates):.3f}-{max(ours_rates):.3f} | "
            f"{'yes' if low <= min(ours_rates) and max(ours_rates) <= high else 'no'} |",
        ]
    )


def _false_alarm_target(results: dict) -> str:
    alpha, (low, high) = results["gates"]["alpha"], nominal_band(results)
    target = (
        f"false-alarm rate near nominal ({alpha}: within the 95% band {low:.3f}-{high:.3f} over "
        f"{results['plan']['repetitions']} pairs) where Evidently over-alarms (above the band)"
    )
    found = over_alarms(results)
    if not found:
        return f"| {target} | Evidently over-alarms nowhere measured | not applicable |"
    where = "; ".join(
        f"{name} at {size:,} rows: Evidently {theirs:.3f}, ours {ours:.3f}"
        for size, name, theirs, ours in found
    )
    above = [name for _, name, _, ours in found if ours > high]
    below = [name for _, name, _, ours in found if ours < low]
    if above or below:
        met = f"NOT met: ours outside the band on {', '.join(above + below)}"
    else:
        met = "yes"
    return f"| {target} | {where} | {met} |"


# --- everything --------------------------------------------------------------------------------


def tables(results: dict) -> str:
    low, high = nominal_band(results)
    parts = ["### Speed and memory", speed_table(results)]
    for scenario in SCENARIOS[::-1]:
        rows = f"{results['plan']['rows']:,}"
        parts += [
            f"### Verdicts, {scenario} ({rows} x {rows} rows)",
            verdict_table(results, scenario),
        ]
    parts += [
        f"### False alarms: {results['plan']['repetitions']} no-drift pairs per size (nominal "
        f"{results['gates']['alpha']}, 95% band {low:.3f}-{high:.3f}; bold: Evidently above it)",
        false_alarm_table(results),
        "### Targets",
        targets_table(results),
    ]
    return "\n\n".join(parts)

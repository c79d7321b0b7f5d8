"""Shared by the benchmarks: what machine this ran on, and one section of docs/benchmarks.md."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

DATA_PACKAGES = ("duckdb", "pandas", "pandera", "scikit-learn")
INTRO = (
    "# Benchmarks\n\nProduced by the commands in `bench/` (see `bench/README.md`); each section "
    "is rewritten by its own benchmark. CI runs every benchmark at a smoke size only.\n"
)


def machine_facts(packages: list[str]) -> dict:
    """What a result depends on: cores, CPU, memory, kernel, Python, package versions, date."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")),
        platform.processor() or "unknown CPU",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "ram_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in packages},
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def machine_description(packages: tuple[str, ...] = DATA_PACKAGES) -> str:
    facts = machine_facts(list(packages))
    versions = ", ".join(f"{name} {version}" for name, version in facts["packages"].items())
    return (
        f"Measured {facts['date'][:16].replace('T', ' ')} UTC on {facts['nproc']} cores "
        f"({facts['cpu']}), {facts['ram_gib']:.0f} GiB RAM, Python {facts['python']}; {versions}."
    )


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def write_section(path: Path, title: str, body: str, before: str | None = None) -> None:
    """Replace (or append) the `## title` section of a Markdown file. A section that is not
    there yet goes just before the `## before` section when that one exists, else at the end."""
    text = path.read_text() if path.is_file() else INTRO
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    anchor = re.search(rf"^## {re.escape(before)}\n", text, re.M) if before else None
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text)
    elif anchor:
        text = text[: anchor.start()] + section + "\n" + text[anchor.start() :]
    else:
        text = text.rstrip() + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")

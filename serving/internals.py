"""The dependency internals the server's fast paths rely on, and the versions they were tested on.

The serving path uses three things that are not public API: uvicorn's httptools protocol class
(subclassed in `serving.protocol` for the header limit), scikit-learn's fitted `tree_.predict`
(called directly in `serving.inference`, bit-identical to the forest's own answer on these
versions) and Litestar's `scope["path_template"]` (set by the fast path, read by the access log).
A version outside the tested range may change them silently, so the server refuses to start on
one, naming the dependency. pyproject.toml pins the same ranges.
"""

from __future__ import annotations

from importlib import metadata

# distribution -> the "major.minor" lines the server was measured and tested on
TESTED_LINES: dict[str, tuple[str, ...]] = {
    "uvicorn": ("0.54",),
    "httptools": ("0.9",),
    "scikit-learn": ("1.9",),
    "litestar": ("2.25",),
}


class UnsupportedDependency(RuntimeError):
    """An installed dependency whose internals the server has not been tested against."""


def release_line(version: str) -> str:
    """`1.9.1` -> `1.9`: the part a compatible release keeps."""
    return ".".join(version.split(".")[:2])


def unsupported(installed: dict[str, str]) -> list[str]:
    """One message per dependency whose installed version is outside its tested lines."""
    return [
        f"{name} {installed[name]} is installed; the server's fast path uses its internals and "
        f"was tested on {', '.join(line + '.x' for line in lines)} only "
        f"(install e.g. '{name}=={lines[-1]}.*')"
        for name, lines in TESTED_LINES.items()
        if release_line(installed[name]) not in lines
    ]


def check_internals() -> None:
    """Raise UnsupportedDependency naming every dependency outside its tested lines."""
    installed = {name: metadata.version(name) for name in TESTED_LINES}
    problems = unsupported(installed)
    if problems:
        raise UnsupportedDependency("; ".join(problems))

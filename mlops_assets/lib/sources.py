"""Turn a spec's source (local path, URL, or a scikit-learn bundled set) into a local file."""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from pathlib import Path

from mlops_assets.lib.spec import DatasetSpec
from mlops_assets.settings import source_override, source_override_var
from mlops_contract.bundle import sha256_of

SKLEARN_PREFIX = "sklearn:"
DOWNLOAD_TIMEOUT_SECONDS = 30
OVERRIDE_DIR = "override"  # under sources/<ds>/: a user's copy that is not the spec's file
DONE_SUFFIX = ".done"  # `<name>.done` beside a landed file: the writer says it is complete


class SourceUnavailable(RuntimeError):
    """The source cannot be read now; the message says what to do about it."""


def source_of(spec: DatasetSpec) -> str:
    """The effective source: `MLOPS_SOURCE_<NAME>` when set, else the spec's."""
    return source_override(spec.name) or spec.source


def initial_partition(spec: DatasetSpec) -> str:
    """The partition key of the spec's own source: its file name, stable across overrides."""
    if spec.source.startswith(SKLEARN_PREFIX):
        return f"{spec.source.removeprefix(SKLEARN_PREFIX)}.csv"
    return spec.source.rstrip("/").rsplit("/", 1)[-1]


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://", "ftp://"))


def fetch_source(spec: DatasetSpec, sources_dir: Path) -> Path:
    """A local path holding the source's bytes, downloading or generating it when needed.

    A file named by `MLOPS_SOURCE_<NAME>` in place of a spec's URL is also copied into the
    download cache, so later runs without the variable still have it (see `remember_override`).
    """
    source = source_of(spec)
    overridden = source != spec.source
    if source.startswith(SKLEARN_PREFIX):
        return _write_sklearn(source.removeprefix(SKLEARN_PREFIX), sources_dir / spec.name)
    if _is_url(source):
        if overridden:
            path = _download(spec, source, None, sources_dir / spec.name / OVERRIDE_DIR / "url")
        else:
            return _cached_override(spec, sources_dir) or _download(
                spec, source, spec.sha256, sources_dir / spec.name
            )
    else:
        path = _local_path(spec, source, overridden)
    if overridden and _is_url(spec.source):
        remember_override(spec, path, sources_dir)
    return path


def _local_path(spec: DatasetSpec, source: str, overridden: bool) -> Path:
    path = Path(source).expanduser()
    if not path.is_absolute() and not overridden and spec.path is not None:
        path = spec.path.parent / path
    if not path.is_file():
        raise SourceUnavailable(
            f"{spec.name}: source file {path} does not exist; "
            f"set {source_override_var(spec.name)} to a readable copy"
        )
    return path.resolve()


def download_cache(spec: DatasetSpec, sources_dir: Path) -> Path:
    """Where the spec's own URL is cached once downloaded (and verified)."""
    return sources_dir / spec.name / initial_partition(spec)


def override_cache(spec: DatasetSpec, sources_dir: Path) -> Path:
    """Where a user's copy is kept when it is not the spec's file (another sha256)."""
    return sources_dir / spec.name / OVERRIDE_DIR / initial_partition(spec)


def remember_override(spec: DatasetSpec, path: Path, sources_dir: Path) -> Path:
    """Copy the user's file into the cache: as the download when it has the spec's sha256 (or
    the spec names none), else beside it with its own sha256, for runs without the variable."""
    actual = sha256_of(path)
    verified = spec.sha256 is None or actual == spec.sha256
    target = download_cache(spec, sources_dir) if verified else override_cache(spec, sources_dir)
    checksum = target.with_name(target.name + ".sha256")
    kept = verified or _recorded_sha256(checksum) == actual
    if kept and target.is_file() and sha256_of(target) == actual:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    shutil.copyfile(path, partial)
    if not verified:
        checksum.write_text(actual + "\n")
    partial.replace(target)
    return target


def _cached_override(spec: DatasetSpec, sources_dir: Path) -> Path | None:
    """A kept copy of the user's file, when no verified download is cached; None otherwise."""
    download = download_cache(spec, sources_dir)
    if download.is_file() and (spec.sha256 is None or sha256_of(download) == spec.sha256):
        return None  # the verified download wins
    kept = override_cache(spec, sources_dir)
    recorded = _recorded_sha256(kept.with_name(kept.name + ".sha256"))
    if kept.is_file() and recorded == sha256_of(kept):
        return kept
    return None


def _recorded_sha256(path: Path) -> str | None:
    return path.read_text().strip() if path.is_file() else None


def source_status(spec: DatasetSpec, sources_dir: Path) -> str:
    """A word on whether the source can be read, without touching the network."""
    source = source_of(spec)
    if source.startswith(SKLEARN_PREFIX):
        return "bundled with scikit-learn (offline)"
    if _is_url(source):
        cached = sources_dir / spec.name / source.rstrip("/").rsplit("/", 1)[-1]
        if source == spec.source and (kept := _cached_override(spec, sources_dir)):
            return f"local copy kept at {kept} (another sha256 than the spec's)"
        if cached.is_file():
            return f"downloaded to {cached}"
        return f"not downloaded yet (needs the network, or set {source_override_var(spec.name)})"
    try:
        return f"local file {_local_path(spec, source, source != spec.source)}"
    except SourceUnavailable as exc:
        return f"missing: {exc}"


def _download(spec: DatasetSpec, url: str, sha256: str | None, target_dir: Path) -> Path:
    target = target_dir / url.rstrip("/").rsplit("/", 1)[-1]
    if target.is_file() and (sha256 is None or sha256_of(target) == sha256):
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response,
            partial.open("wb") as handle,
        ):
            shutil.copyfileobj(response, handle)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        partial.unlink(missing_ok=True)
        raise SourceUnavailable(
            f"{spec.name}: cannot download {url} ({exc}). If you are offline, set "
            f"{source_override_var(spec.name)} to a local copy of the file"
        ) from None
    if sha256 is not None and (actual := sha256_of(partial)) != sha256:
        partial.unlink()
        raise SourceUnavailable(
            f"{spec.name}: {url} has sha256 {actual}, expected {sha256}; refusing to use it"
        )
    partial.replace(target)
    return target


def _write_sklearn(name: str, target_dir: Path) -> Path:
    """Write a scikit-learn bundled data set as CSV with the field names its users send."""
    target = target_dir / f"{name}.csv"
    if target.is_file():
        return target
    frame = _sklearn_frame(name)
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".csv.part")
    frame.to_csv(partial, index=False)
    partial.replace(target)
    return target


def _sklearn_frame(name: str):
    from sklearn import datasets

    if name == "iris":
        bunch = datasets.load_iris(as_frame=True)
        frame = bunch.data.rename(columns=lambda c: c.removesuffix(" (cm)").replace(" ", "_"))
        frame["species"] = bunch.target.map(dict(enumerate(bunch.target_names)))
        return frame
    if name == "diabetes":
        bunch = datasets.load_diabetes(as_frame=True, scaled=False)
        frame = bunch.data.assign(sex=bunch.data["sex"].astype(int))
        frame["target"] = bunch.target
        return frame
    if name == "wine":
        bunch = datasets.load_wine(as_frame=True)
        frame = bunch.data.copy()
        frame["cultivar"] = bunch.target.map(dict(enumerate(bunch.target_names)))
        return frame
    raise SourceUnavailable(f"unknown scikit-learn data set {name!r} (known: iris, diabetes, wine)")

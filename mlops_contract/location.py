"""Where model bundles are published and read from: a local folder, an MLflow tracking server's
artifact store over HTTP, or any fsspec URL (s3://, gs://, ...; needs fsspec installed).

Paths are relative and `/`-separated (`iris/current.json`, `iris/bundles/<id>/manifest.json`);
every location has the layout of the local models folder (see mlops_contract.bundle).

    MLOPS_MODELS_URL unset                 $MLOPS_DATA_DIR/models
    /some/path, file:///some/path          that local folder
    http(s)://host/api/2.0/mlflow-artifacts/artifacts/<prefix>
                                           `mlflow server --serve-artifacts`, under <prefix>
    s3://bucket/prefix (any other scheme)  fsspec
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Protocol

MLFLOW_ARTIFACTS_ROUTE = "/api/2.0/mlflow-artifacts/artifacts"
HTTP_TIMEOUT = 10.0  # seconds per request; a reload tick must not hang on a dead server


class LocationError(Exception):
    """The location cannot be reached or answered something unusable."""


class Location(Protocol):
    url: str

    def read(self, path: str) -> bytes | None:
        """The file's bytes, or None when it does not exist."""

    def list_dirs(self, path: str = "") -> list[str]:
        """Names of the folders directly under `path` (empty when it does not exist)."""

    def write(self, path: str, data: bytes) -> None:
        """Create or replace a file (a reader sees the old or the new content)."""


class LocalLocation:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def read(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def list_dirs(self, path: str = "") -> list[str]:
        folder = self.root / path
        if not folder.is_dir():
            return []
        return sorted(entry.name for entry in folder.iterdir() if entry.is_dir())

    def write(self, path: str, data: bytes) -> None:
        target = self.root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        with temporary.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)


class MlflowArtifactsLocation:
    """`mlflow server --serve-artifacts`: GET/PUT `<route>/<path>`, list with `<route>?path=`."""

    def __init__(self, url: str) -> None:
        server, anchor, prefix = url.rstrip("/").partition(MLFLOW_ARTIFACTS_ROUTE)
        if not anchor:
            raise LocationError(
                f"{url}: an http(s) models URL must be an MLflow artifacts URL, "
                f"http(s)://<tracking server>{MLFLOW_ARTIFACTS_ROUTE}/<prefix>"
            )
        self.url = url.rstrip("/")
        self._route = server + MLFLOW_ARTIFACTS_ROUTE
        self._prefix = prefix.strip("/")

    def _full(self, path: str) -> str:
        return "/".join(part for part in (self._prefix, path.strip("/")) if part)

    def _request(self, request: urllib.request.Request) -> bytes | None:
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            detail = exc.read()[:300].decode(errors="replace")
            raise LocationError(
                f"{request.get_method()} {request.full_url}: {exc.code} {detail}"
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            raise LocationError(f"{request.get_method()} {request.full_url}: {exc}") from None

    def read(self, path: str) -> bytes | None:
        quoted = urllib.parse.quote(self._full(path))
        return self._request(urllib.request.Request(f"{self._route}/{quoted}"))

    def list_dirs(self, path: str = "") -> list[str]:
        query = urllib.parse.urlencode({"path": self._full(path)})
        body = self._request(urllib.request.Request(f"{self._route}?{query}"))
        try:
            files = json.loads(body or b"{}").get("files", [])
        except ValueError as exc:
            raise LocationError(f"{self.url}: listing {path!r} is not JSON: {exc}") from None
        return sorted(entry["path"] for entry in files if entry.get("is_dir"))

    def write(self, path: str, data: bytes) -> None:
        quoted = urllib.parse.quote(self._full(path))
        request = urllib.request.Request(f"{self._route}/{quoted}", data=data, method="PUT")
        request.add_header("Content-Type", "application/octet-stream")
        self._request(request)


class FsspecLocation:
    def __init__(self, url: str) -> None:
        try:
            import fsspec
        except ImportError:
            raise LocationError(
                f"{url}: reading models from this scheme needs fsspec (and its driver, e.g. "
                "s3fs): pip install fsspec s3fs"
            ) from None
        self.url = url.rstrip("/")
        self._fs, self._root = fsspec.core.url_to_fs(self.url)

    def _full(self, path: str) -> str:
        return f"{self._root}/{path}".rstrip("/")

    def read(self, path: str) -> bytes | None:
        try:
            return self._fs.cat_file(self._full(path))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise LocationError(f"{self.url}/{path}: {exc}") from None

    def list_dirs(self, path: str = "") -> list[str]:
        try:
            entries = self._fs.ls(self._full(path), detail=True)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LocationError(f"{self.url}/{path}: {exc}") from None
        names = (entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in entries)
        kinds = (entry["type"] for entry in entries)
        return sorted(name for name, kind in zip(names, kinds, strict=True) if kind == "directory")

    def write(self, path: str, data: bytes) -> None:
        try:
            self._fs.pipe_file(self._full(path), data)
        except OSError as exc:
            raise LocationError(f"{self.url}/{path}: {exc}") from None


def is_remote(url: str | os.PathLike | None) -> bool:
    """True for a URL that is not a local path (`file://` counts as local)."""
    if url is None or isinstance(url, os.PathLike):
        return False
    scheme = urllib.parse.urlparse(str(url)).scheme
    return len(scheme) > 1 and scheme != "file"  # one letter: a Windows drive


def local_path(url: str | os.PathLike) -> Path:
    text = str(url)
    if text.startswith("file://"):
        text = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    return Path(text).expanduser().resolve()


def open_location(url: str | os.PathLike) -> Location:
    """The location a models URL (or a local path) names."""
    if not is_remote(url):
        return LocalLocation(local_path(url))
    if urllib.parse.urlparse(str(url)).scheme in ("http", "https"):
        return MlflowArtifactsLocation(str(url))
    return FsspecLocation(str(url))

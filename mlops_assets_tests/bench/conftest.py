import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def smoke_run():
    """Run `python -m <module> --smoke --no-docs` from the repo root, as CI does."""

    def run(module: str, timeout: int = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", module, "--smoke", "--no-docs"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run

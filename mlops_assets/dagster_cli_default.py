"""Point `dagster asset ...` at this code location when run from the repo root with no target.

`dagster dev` finds the code location through [tool.dagster] in pyproject.toml, but Dagster's
`asset` commands only read -m/-f/-w or DAGSTER_MODULE_NAME. The installed
`mlops_assets_dagster.pth` calls `apply()` at interpreter start-up; it changes nothing for any
other command, any other folder, or a command that names its own target.
"""

import os
import sys

MODULE = "mlops_assets.definitions"
TARGET_OPTIONS = (
    "-m", "--module-name", "-f", "--python-file", "-w", "--workspace", "--package-name",
    "-a", "--attribute", "--grpc-port", "--grpc-socket",
)  # fmt: skip


def apply() -> None:
    argv = sys.argv
    if len(argv) < 2 or os.path.basename(argv[0]) != "dagster" or argv[1] != "asset":
        return
    if any(arg.split("=", 1)[0] in TARGET_OPTIONS for arg in argv[2:]):
        return
    if os.path.isfile("workspace.yaml") and os.path.isdir("mlops_assets"):
        os.environ.setdefault("DAGSTER_MODULE_NAME", MODULE)

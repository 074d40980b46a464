"""Where hpotui reads and writes files.

The *workspace* holds `data/`, `outputs/` and `configs/`. It is `$HPOTUI_HOME` when set
(tests point it at a temporary directory), else the current directory. The embedded
sample data ships with the source tree and is found next to the `engine` package.
"""

from __future__ import annotations

import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def workspace() -> Path:
    return Path(os.environ.get("HPOTUI_HOME") or os.getcwd()).resolve()


def data_dir() -> Path:
    return workspace() / "data"


def raw_dir() -> Path:
    return data_dir() / "raw"


def processed_dir(version: int) -> Path:
    return data_dir() / "processed" / f"v{version}"


def manifests_dir() -> Path:
    return data_dir() / "manifests"


def outputs_dir() -> Path:
    return workspace() / "outputs"


def samples_dir() -> Path:
    """The embedded sample OHLCV files (S&P 500 and NASDAQ, see data/samples/NOTICE)."""
    local = data_dir() / "samples"
    return local if local.is_dir() else SOURCE_ROOT / "data" / "samples"


def default_config() -> Path:
    """configs/demo.toml of the workspace, else the one shipped with the source tree."""
    local = workspace() / "configs" / "demo.toml"
    return local if local.exists() else SOURCE_ROOT / "configs" / "demo.toml"

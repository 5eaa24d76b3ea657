"""Running the ``shodaku`` command as an operator does: a clean environment, a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHODAKU = Path(sys.executable).parent / "shodaku"
if not SHODAKU.exists():  # pragma: no cover - a test run outside the project's venv
    SHODAKU = ROOT / ".venv" / "bin" / "shodaku"


def _env(**values: str) -> dict[str, str]:
    # Only what the test sets: a developer's own SHODAKU_* variables must not leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHODAKU_")}
    env.update(values)
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHODAKU), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )

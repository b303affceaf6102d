"""What the browser test needs, and a clear reason when something is missing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def chromium_path() -> str:
    return os.environ.get("CHROMIUM", "/usr/bin/chromium")


def node_path() -> str | None:
    return shutil.which("node")


def node_finds(node: str, packages: list[str], cwd: Path) -> bool:
    """Whether ``node``, run in ``cwd``, finds every one of the npm ``packages``."""
    script = f"for (const p of {json.dumps(packages)}) require.resolve(p + '/package.json')"
    try:
        subprocess.run([node, "-e", script], cwd=cwd, check=True, capture_output=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        return False
    return True


def missing_browser_tools() -> str | None:
    """``None`` when Chromium, Node.js and playwright-core are all there, else why not."""
    if not os.access(chromium_path(), os.X_OK):
        return f"needs Chromium at {chromium_path()}: apt-get install -y chromium (.ci/run does)"
    node = node_path()
    if node is None:
        return "needs Node.js (node) to drive Chromium with playwright-core"
    if not node_finds(node, ["playwright-core"], HERE):
        return "needs playwright-core: run `npm ci` in tests/e2e (.ci/run does)"
    return None

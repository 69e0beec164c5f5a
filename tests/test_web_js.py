"""The page's JavaScript unit tests (`tests/js/*.test.mjs`: the clock, the wire messages, the pure helpers) under
`node --test`, so `make test` runs them. They need node >= 18 and no npm packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS_TESTS = sorted((ROOT / "tests" / "js").glob("*.test.mjs"))


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("the page's unit tests need node (>= 18)")
        pytest.skip("the page's unit tests need node (>= 18)")
    return node


def test_the_page_modules_pass_their_unit_tests() -> None:
    node = _node()
    assert JS_TESTS, "no tests/js/*.test.mjs"
    done = subprocess.run(
        [node, "--test", *map(str, JS_TESTS)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    print(done.stdout[-3000:])
    assert done.returncode == 0, f"node --test failed:\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    passed = re.search(r"^# pass (\d+)$", done.stdout, re.MULTILINE)
    failed = re.search(r"^# fail (\d+)$", done.stdout, re.MULTILINE)
    assert passed and int(passed.group(1)) > 0 and failed and int(failed.group(1)) == 0, done.stdout[-2000:]

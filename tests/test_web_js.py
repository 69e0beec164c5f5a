"""The page's JavaScript unit tests (`tests/js/*.test.mjs`: the clock, the wire messages, the pure helpers) under
`node --test`, so `make test` runs them. They need node >= 18 and no npm packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
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


WEB = ROOT / "web"
IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?\sfrom\s+["'](\.[^"']+)["']""", re.MULTILINE | re.DOTALL)


def test_every_page_module_is_reachable_from_main_and_every_import_exists() -> None:
    """No build step: a wrong import path would only show in the browser, so follow them from main.js here."""
    seen: set[Path] = set()
    todo = [WEB / "main.js"]
    while todo:
        module = todo.pop()
        assert module.is_file(), f"imported but missing: {module.relative_to(ROOT)}"
        if module in seen:
            continue
        seen.add(module)
        todo += [(module.parent / target).resolve() for target in IMPORT.findall(module.read_text())]
    assert seen == set(WEB.glob("*.js")), "modules in web/ that main.js never loads"


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open_labels = 0
        self.fields: list[tuple[str, bool]] = []  # (id, labelled)
        self.label_for: set[str] = set()
        self.live: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "label":
            self.open_labels += 1
            if attributes.get("for"):
                self.label_for.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea"):
            self.fields.append((str(attributes.get("id")), self.open_labels > 0 or "aria-label" in attributes))
        implicitly_live = tag == "output" or attributes.get("role") in ("status", "alert", "log")
        if implicitly_live or attributes.get("aria-live") not in (None, "off"):
            self.live.append(str(attributes.get("id")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.open_labels -= 1


def test_the_page_markup_labels_every_field_and_keeps_live_regions_few() -> None:
    page = _Markup()
    page.feed((WEB / "index.html").read_text())
    unlabelled = [field for field, labelled in page.fields if not labelled and field not in page.label_for]
    assert page.fields and unlabelled == []
    # status line, notices, the error box and the dialog's, and the one spoken score summary; no <output>s
    assert sorted(page.live) == ["error", "live-summary", "notice", "status", "summary-error"]
    assert [a.get("id") for tag, a in page.tags if tag == "dialog"] == ["summary"]
    scripts = [a for tag, a in page.tags if tag == "script"]
    assert scripts == [{"type": "module", "src": "/static/main.js"}]

"""The layout by dependency holds: what each package may import, checked on the source and in fresh interpreters."""

from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("tensorflow", "aiortc", "av")
# Pure modules: importing one loads neither TensorFlow nor aiortc (nor PyAV, for those in pose/).
PURE = {
    "pose.scoring": HEAVY,
    "pose.csvio": HEAVY,
    "pose.tracking": HEAVY,
    "pose.crop": HEAVY,
    "pose.draw": HEAVY,
    "pose.models": HEAVY,
    "pose.models.paf": HEAVY,
    "pose.models.movenet_post": HEAVY,
    "pose.pipeline": HEAVY,
    "pose.cli": HEAVY,
    "pose.spectrogram": HEAVY,
    "pose.align": HEAVY,
    "pose.takes": HEAVY,
    "stream.clock": HEAVY,
    "stream.session": ("tensorflow", "aiortc"),
    "stream.protocol": ("tensorflow", "aiortc", "aiohttp"),
}


def imports_of(path: Path) -> set[str]:
    """The modules a source file imports (absolute names, at any depth of the file)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("module", sorted(PURE))
def test_importing_a_pure_module_loads_no_heavy_library(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    heavy = list(PURE[module])
    code = f"import sys, json, {module}; print(json.dumps([m for m in {heavy!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_only_pose_models_tf_imports_tensorflow() -> None:
    found = [
        str(path.relative_to(ROOT))
        for package in ("pose", "stream", "harness", "bench", "tests")
        for path in sources(package)
        if any(name.split(".")[0] == "tensorflow" for name in imports_of(path))
    ]
    assert found == ["pose/models/tf.py"]


def test_pose_never_imports_stream_the_server_or_the_harness() -> None:
    for path in sources("pose"):
        wrong = {n for n in imports_of(path) if n.split(".")[0] in ("stream", "server", "harness", "tests", "bench")}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_harness_and_the_benchmarks_never_import_the_tests() -> None:
    for path in sources("harness") + sources("bench"):
        wrong = {n for n in imports_of(path) if n.split(".")[0] == "tests"}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)}"


def test_the_pure_maths_of_pose_imports_no_model_or_media_module_at_import_time() -> None:
    """pose/*.py (not pose/models, pose/media) import those packages only inside functions or for type checking;
    pose.models itself (the registry) is allowed."""
    for path in (ROOT / "pose").glob("*.py"):
        top = _top_level_imports(path)
        wrong = {n for n in top if n.startswith(("pose.media", "pose.models.")) or n.split(".")[0] in HEAVY}
        assert not wrong, f"{path.relative_to(ROOT)} imports {sorted(wrong)} at import time"


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


AIORTC_AFTER_TENSORFLOW = """
import asyncio
from pose.models import tf
tf.load()
from aiortc import RTCPeerConnection

async def main() -> str:
    a, b = RTCPeerConnection(), RTCPeerConnection()
    a.createDataChannel("control")
    await a.setLocalDescription(await a.createOffer())
    await b.setRemoteDescription(a.localDescription)
    await b.setLocalDescription(await b.createAnswer())
    await a.setRemoteDescription(b.localDescription)
    for _ in range(300):
        if a.connectionState == b.connectionState == "connected":
            break
        await asyncio.sleep(0.1)
    state = a.connectionState
    await a.close()
    await b.close()
    return state

print(asyncio.run(main()))
"""


def test_tensorflow_loaded_first_leaves_webrtc_working() -> None:
    """The order that used to crash the process (TensorFlow, then aiortc's SRTP) is safe through `tf.load()`."""
    done = subprocess.run(
        [sys.executable, "-c", AIORTC_AFTER_TENSORFLOW], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["connected"]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _project_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere in its source (inside functions too); `from package import
    module` counts as an import of that module."""
    paths = [ROOT / "server.py", *(p for package in ("pose", "stream", "harness", "bench") for p in sources(package))]
    modules = {_module_name(p): p for p in paths}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                edges |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                edges |= subs or ({node.module} & modules.keys())
        graph[name] = edges - {name}
    return graph


def test_no_import_cycles() -> None:
    graph = _project_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph[module]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path[path.index(target) :], target])
            if target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)

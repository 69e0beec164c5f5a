"""The pose backends: the one registry that names each of them (`BACKENDS`), and how one is loaded.

Each backend is named here once, with the cached files it needs, its network input, whether it finds everyone in
the frame, and the factory that builds it; `--pose`, the server, the offer's `pose` and the tests take the names
from here. What a backend is (`PoseBackend`, `NetworkOutput`) is in `pose.models.base`.

Everything in this package that touches TensorFlow loads it on first use (`pose.models.tf`): importing this
registry, or the numpy post-processing (`paf`, `movenet_post`), loads no TensorFlow; building a backend does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pose import assets
from pose.models.base import NetworkOutput, PoseBackend

__all__ = [
    "BACKENDS",
    "BACKEND_NAMES",
    "DEFAULT_BACKEND",
    "DETECTOR_ASSETS",
    "BackendSpec",
    "NetworkOutput",
    "PoseBackend",
    "backend_assets",
    "backend_spec",
    "load_pose_backend",
]


Factory = Callable[[tuple[Path, ...], tuple[int, int]], PoseBackend]


@dataclass(frozen=True)
class BackendSpec:
    """One pose backend: what `--pose` calls it, the cached files it needs, its network input and how to build it.

    input_size: (width, height) of the network input; for tf-pose the default of a size the caller may choose
        (`sizable`), for MultiPose the smallest of the sizes it picks per frame.
    factory: builds the backend from its files (paths in `assets` order) and the input size; it imports the
        TensorFlow side only when called.
    """

    name: str
    assets: tuple[assets.Asset, ...]
    input_size: tuple[int, int]
    multi_person: bool
    factory: Factory
    sizable: bool = False


def _tfpose(files: tuple[Path, ...], size: tuple[int, int]) -> PoseBackend:
    from pose.models.tfpose import TfPoseBackend

    return TfPoseBackend(files[0], input_size=size)


def _single_movenet(name: str) -> Factory:
    def build(files: tuple[Path, ...], size: tuple[int, int]) -> PoseBackend:
        from pose.models.movenet import SinglePoseMoveNet

        return SinglePoseMoveNet(name, files[0], input_size=size[0])

    return build


def _multipose(files: tuple[Path, ...], size: tuple[int, int]) -> PoseBackend:
    from pose.models.movenet import MultiPoseMoveNet

    return MultiPoseMoveNet("movenet-multipose", files[0])


BACKENDS: tuple[BackendSpec, ...] = (
    BackendSpec("tfpose", (assets.POSE_GRAPH,), (432, 368), True, _tfpose, sizable=True),
    BackendSpec("movenet-lightning", assets.MOVENET_LIGHTNING, (192, 192), False, _single_movenet("movenet-lightning")),
    BackendSpec("movenet-thunder", assets.MOVENET_THUNDER, (256, 256), False, _single_movenet("movenet-thunder")),
    BackendSpec("movenet-multipose", assets.MOVENET_MULTIPOSE, (256, 256), True, _multipose),
)
# Every backend `load_models(pose=...)`, `--pose` and an offer's `pose` accept, in this order.
BACKEND_NAMES: tuple[str, ...] = tuple(spec.name for spec in BACKENDS)
# Chosen by `make bench` (docs/benchmarks.md, "Choosing the pose backend"): faster than tf-pose on a CPU, and it
# places the golden-set joints better.
DEFAULT_BACKEND = "movenet-lightning"
# The person detector every backend shares (it picks the main dancer and feeds the single-person crops).
DETECTOR_ASSETS: tuple[assets.Asset, ...] = (assets.PERSON_GRAPH,)


def backend_spec(name: str) -> BackendSpec:
    """The backend called `name`; ValueError naming the choices for any other."""
    for spec in BACKENDS:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown pose backend {name[:40]!r}; choose one of {', '.join(BACKEND_NAMES)}")


def backend_assets(name: str) -> tuple[assets.Asset, ...]:
    """The cached files a pose backend needs."""
    return backend_spec(name).assets


def load_pose_backend(
    name: str, data_dir: Path = assets.DATA_DIR, pose_size: tuple[int, int] | None = None
) -> PoseBackend:
    """One pose backend by name, fetching its files if they are not cached.

    pose_size: the network input (width, height) for a backend whose size may be chosen (tf-pose); the others
    have their own and ignore it.
    """
    spec = backend_spec(name)
    assets.ensure(spec.assets, data_dir)
    size = pose_size if spec.sizable and pose_size is not None else spec.input_size
    return spec.factory(tuple(a.path(data_dir) for a in spec.assets), size)

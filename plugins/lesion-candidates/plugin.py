"""Lesion candidates: a CIRCUS CS plug-in that marks bright blobs in CT volumes.

Why it exists: kubecircus must run unmodified CIRCUS CS images, so it needs one real plug-in
(not a shell one-liner) to prove it end to end. This one follows the CIRCUS CS contract exactly:
it reads every ``/circus/in/N.mhd``, writes ``/circus/out/results.json`` in the format of the
built-in LesionCandidates display plus a PNG preview, logs to stdout (stderr is merged into it,
since CIRCUS CS drops stderr) and exits non-zero when it could not do its work.

The method is deliberately simple and is not a diagnostic tool: a body mask (largest component
above ``LC_BODY_HU``, holes filled slice by slice so that nodules inside the lungs count as
inside), intersected with the voxels in ``[LC_HU_MIN, LC_HU_MAX]``; connected components; those
smaller than ``LC_MIN_VOLUME_MM3`` or larger than ``LC_MAX_VOLUME_MM3`` dropped; the rest ranked
by volume across all input volumes. Parameters come from environment variables (README.md).
"""

from __future__ import annotations

import json
import math
import os
import sys
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

MAGENTA = (255, 0, 255)  # the colour of CIRCUS CS's own candidate marks


class PluginError(Exception):
    """A failure with a message meant for the person reading the job log."""


def log(message: str) -> None:
    print(message, flush=True)  # noqa: T201 - stdout is the plug-in's log in CIRCUS CS


def progress(value: float, start: float = 0.0, end: float = 1.0) -> None:
    """kubecircus reads these lines from the log into status.progress (docs/plugins.md); under
    CIRCUS CS they are just log lines."""
    log(f"CIRCUS_PROGRESS {value:.3g} {start:.4g} {end:.4g}")


@dataclass(frozen=True)
class Params:
    hu_min: float = 100.0
    hu_max: float = 3071.0
    body_hu: float | None = -500.0  # None: no body mask
    min_volume_mm3: float = 10.0
    max_volume_mm3: float = 15000.0  # 0: no upper limit
    max_candidates: int = 10
    confidence_half_mm3: float = 100.0
    fully_connected: bool = False
    window_level: float = 40.0
    window_width: float = 400.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Params:
        d = cls()
        body = env.get("LC_BODY_HU", "").strip()
        params = cls(
            hu_min=_number(env, "LC_HU_MIN", d.hu_min),
            hu_max=_number(env, "LC_HU_MAX", d.hu_max),
            body_hu=None if body.lower() == "off" else _number(env, "LC_BODY_HU", d.body_hu),
            min_volume_mm3=_number(env, "LC_MIN_VOLUME_MM3", d.min_volume_mm3, minimum=0),
            max_volume_mm3=_number(env, "LC_MAX_VOLUME_MM3", d.max_volume_mm3, minimum=0),
            max_candidates=int(_number(env, "LC_MAX_CANDIDATES", d.max_candidates, minimum=1, whole=True)),
            confidence_half_mm3=_number(env, "LC_CONFIDENCE_HALF_MM3", d.confidence_half_mm3, minimum=1e-6),
            fully_connected=_number(env, "LC_FULLY_CONNECTED", 0, minimum=0, whole=True) > 0,
            window_level=_number(env, "LC_WINDOW_LEVEL", d.window_level),
            window_width=_number(env, "LC_WINDOW_WIDTH", d.window_width, minimum=1),
        )
        if params.hu_min > params.hu_max:
            raise PluginError(f"LC_HU_MIN ({params.hu_min}) is above LC_HU_MAX ({params.hu_max})")
        return params


def _number(env: Mapping[str, str], name: str, default: float, minimum: float | None = None, whole=False):
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise PluginError(f"{name}={text!r} is not a number") from None
    if not math.isfinite(value) or (minimum is not None and value < minimum) or (whole and value % 1):
        kind = "a whole number" if whole else "a number"
        bound = f" >= {minimum:g}" if minimum is not None else ""
        raise PluginError(f"{name}={text!r} must be {kind}{bound}")
    return value


@dataclass
class Candidate:
    volume_id: int
    label: int
    voxels: int
    volume_mm3: float
    centroid_mm: tuple[float, float, float]
    centroid_index: tuple[float, float, float]
    location: tuple[int, int, int]

    def as_json(self, rank: int, params: Params) -> dict:
        """CIRCUS CS LesionCandidates fields (rank, confidence, volumeId, location as voxel index
        x,y,z, volumeSize) first, then the physical centroid and the sub-voxel index."""
        confidence = self.volume_mm3 / (self.volume_mm3 + params.confidence_half_mm3)
        return {
            "rank": rank,
            "confidence": round(confidence, 4),
            "volumeId": self.volume_id,
            "location": list(self.location),
            "volumeSize": round(self.volume_mm3, 3),
            "centroidMm": [round(v, 3) for v in self.centroid_mm],
            "centroidIndex": [round(v, 3) for v in self.centroid_index],
            "voxelCount": self.voxels,
        }


def find_volumes(in_dir: Path) -> list[int]:
    """Volume ids present as N.mhd; CIRCUS CS always gives volume 0 (the CT), so it must be there."""
    if not in_dir.is_dir():
        raise PluginError(f"no input volume: {in_dir} does not exist")
    ids = sorted(int(p.stem) for p in in_dir.glob("*.mhd") if p.stem.isascii() and p.stem.isdigit())
    if not ids:
        raise PluginError(f"no input volume: {in_dir} holds no N.mhd (expected at least 0.mhd)")
    if ids[0] != 0:
        raise PluginError(f"no input volume 0: {in_dir} holds only volumes {ids}; volume 0 is the CT")
    return ids


def read_volume(path: Path) -> sitk.Image:
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[-300:]
        raise PluginError(f"cannot read volume {path.name}: {detail}") from None
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise PluginError(f"volume {path.name} is not grayscale")
    if image.GetDimension() == 2:
        image = sitk.JoinSeries(image)
    if image.GetDimension() != 3:
        raise PluginError(f"volume {path.name} has {image.GetDimension()} dimensions, not 3")
    return image


def modality(json_path: Path) -> str:
    """The modality from the tag dump N.json, for the log only (a missing file is not an error)."""
    try:
        return str(json.loads(json_path.read_text(encoding="utf-8"))["common"].get("0008,0060", "?"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return "?"


def body_mask(above: np.ndarray) -> np.ndarray:
    """Largest connected component of ``above``, holes filled in each slice: lungs and the
    nodules in them are inside, the CT table and anything else outside the patient is not.
    (Shape statistics pick the largest label: no second whole-volume uint32 copy.)"""
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(above.view(np.uint8)))
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(components)
    if not stats.GetLabels():
        return np.zeros_like(above)
    biggest = max(stats.GetLabels(), key=stats.GetNumberOfPixels)
    largest = sitk.GetArrayViewFromImage(components) == biggest
    del components
    for k in range(largest.shape[0]):
        plane = sitk.GetImageFromArray(largest[k].view(np.uint8))
        filled = sitk.BinaryFillhole(plane, False, 1)  # named: a view must not outlive its image
        largest[k] = sitk.GetArrayViewFromImage(filled) > 0
    return largest


def detect(image: sitk.Image, volume_id: int, p: Params) -> tuple[list[Candidate], sitk.Image]:
    """Candidates of one volume, largest first, and the label image they refer to."""
    values = sitk.GetArrayViewFromImage(image)
    bright = (values >= p.hu_min) & (values <= p.hu_max)
    if p.body_hu is not None:
        body = body_mask(values > p.body_hu)
        log(f"  body mask: {int(body.sum())} voxels above {p.body_hu:g}")
        bright &= body
    mask = sitk.GetImageFromArray(bright.view(np.uint8))
    mask.CopyInformation(image)
    del bright
    voxel_mm3 = math.prod(image.GetSpacing())
    min_voxels = max(1, math.ceil(p.min_volume_mm3 / voxel_mm3 - 1e-9))
    labels = sitk.RelabelComponent(sitk.ConnectedComponent(mask, p.fully_connected), min_voxels, True)
    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(labels)
    size = image.GetSize()
    found = []
    for label in stats.GetLabels():
        volume = stats.GetPhysicalSize(label)
        if p.max_volume_mm3 and volume > p.max_volume_mm3:
            log(f"  dropped component of {volume:.1f} mm3 (above LC_MAX_VOLUME_MM3)")
            continue
        centroid = stats.GetCentroid(label)  # physical: SimpleITK applies origin, spacing, direction
        index = image.TransformPhysicalPointToContinuousIndex(centroid)
        location = tuple(min(max(round(c), 0), n - 1) for c, n in zip(index, size, strict=True))
        found.append(
            Candidate(volume_id, label, stats.GetNumberOfPixels(label), volume, centroid, index, location)
        )
    found.sort(key=lambda c: -c.volume_mm3)
    return found, labels


def render(values: np.ndarray, k: int, p: Params, outline: np.ndarray | None, mark=None) -> sitk.Image:
    """Slice k (the acquisition plane: axial for an axial CT) windowed to uint8 RGB, the
    candidate's outline in magenta; a cross at ``mark`` (x, y) when the outline is empty."""
    low = p.window_level - p.window_width / 2
    plane = np.clip((values[k].astype(np.float64) - low) * (255.0 / p.window_width), 0, 255)
    rgb = np.repeat(np.rint(plane).astype(np.uint8)[..., None], 3, axis=2)
    if outline is not None and outline.any():
        contour = sitk.BinaryContour(sitk.GetImageFromArray(outline.astype(np.uint8)), True, 0, 1)
        rgb[sitk.GetArrayViewFromImage(contour) > 0] = MAGENTA
    elif mark is not None:
        x, y = mark
        rgb[y, max(x - 3, 0) : x + 4] = MAGENTA
        rgb[max(y - 3, 0) : y + 4, x] = MAGENTA
    return sitk.GetImageFromArray(rgb, isVector=True)


def run(root: Path, env: Mapping[str, str]) -> dict:
    in_dir, out_dir = root / "in", root / "out"
    params = Params.from_env(env)
    log(f"lesion-candidates: input {in_dir}, output {out_dir}")
    log("parameters: " + ", ".join(f"{k}={v}" for k, v in asdict(params).items()))
    ids = find_volumes(in_dir)
    candidates: list[Candidate] = []
    volumes, display = [], []
    preview: tuple[float, sitk.Image, dict] | None = None  # (volume mm3, image, description)
    for n, volume_id in enumerate(ids):
        share = (n / len(ids) * 0.9, (n + 1) / len(ids) * 0.9)  # each volume's part of the run
        image = read_volume(in_dir / f"{volume_id}.mhd")
        progress(0.2, *share)
        log(
            f"volume {volume_id}: size {image.GetSize()}, spacing "
            f"{tuple(round(s, 4) for s in image.GetSpacing())} mm, {image.GetPixelIDTypeAsString()}, "
            f"modality {modality(in_dir / f'{volume_id}.json')}"
        )
        found, labels = detect(image, volume_id, params)
        log(f"  {len(found)} component(s) kept")
        progress(0.8, *share)
        values = sitk.GetArrayViewFromImage(image)
        if found and (preview is None or found[0].volume_mm3 > preview[0]):
            top = found[0]
            k = top.location[2]
            outline = sitk.GetArrayViewFromImage(labels)[k] == top.label
            png = render(values, k, params, outline, top.location[:2])
            preview = (top.volume_mm3, png, {"file": "preview.png", "volumeId": volume_id, "slice": k})
        elif preview is None and volume_id == 0:  # nothing found (yet): the middle slice, unmarked
            k = image.GetSize()[2] // 2
            png = render(values, k, params, None)
            preview = (-1.0, png, {"file": "preview.png", "volumeId": 0, "slice": k})
        candidates += found
        volumes.append(
            {
                "volumeId": volume_id,
                "size": list(image.GetSize()),
                "spacing": [round(s, 6) for s in image.GetSpacing()],
                "candidatesFound": len(found),
            }
        )
        display.append(
            {"volumeId": volume_id, "window": {"level": params.window_level, "width": params.window_width}}
        )
        del image, labels, values
        progress(1, *share)
    candidates.sort(key=lambda c: (-c.volume_mm3, c.volume_id, c.label))
    kept = [c.as_json(rank, params) for rank, c in enumerate(candidates[: params.max_candidates], 1)]
    for c in kept:
        log(
            f"candidate {c['rank']}: volume {c['volumeId']}, voxel {c['location']}, "
            f"{c['centroidMm']} mm, {c['volumeSize']} mm3, confidence {c['confidence']}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    assert preview is not None  # volume 0 always exists and always leaves a preview
    sitk.WriteImage(preview[1], str(out_dir / "preview.png"))
    log(f"wrote {out_dir / 'preview.png'} (volume {preview[2]['volumeId']}, slice {preview[2]['slice']})")
    results = {
        "metadata": {"displayOptions": display},
        "results": {
            "lesionCandidates": kept,
            "volumes": volumes,
            "preview": preview[2],
            "parameters": asdict(params),
        },
    }
    text = json.dumps(results, indent=2, allow_nan=False)
    (out_dir / "results.json").write_text(text + "\n", encoding="utf-8")
    log(f"wrote {out_dir / 'results.json'}: {len(kept)} candidate(s) of {len(candidates)} found")
    progress(1)
    return results


def merge_stderr() -> None:
    """CIRCUS CS keeps stdout only: send fd 2 (Python and SimpleITK's C++ warnings) there too."""
    try:
        sys.stdout.flush()
        os.dup2(sys.stdout.fileno(), 2)
    except (OSError, ValueError):
        pass


def main() -> int:
    merge_stderr()
    try:
        run(Path(os.environ.get("CIRCUS_DIR", "/circus")), os.environ)
    except PluginError as exc:
        log(f"error: {exc}")
        return 1
    except Exception:
        log(traceback.format_exc().rstrip())
        log("error: unexpected failure (see the traceback above)")
        return 1
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

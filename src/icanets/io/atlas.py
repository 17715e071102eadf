"""Node anatomy: where each component's map lies, and which atlas labels it overlaps.

For every component map (NIfTI z maps in a world space such as MNI, or CIFTI dscalar maps
with their surfaces): the peak and the centre
of mass (mm) of its part above half the peak, the hemisphere(s) it covers, and, per
atlas, the labels holding most of that mass (fraction of the suprathreshold |z| mass, top 3).

Atlases: a user's 3D label image with its label table (a TSV with ``index`` and ``name``
columns, or an FSL/FreeSurfer lookup table of ``index name [r g b a]`` lines), a CIFTI
``.dlabel.nii`` (e.g. an HCP parcellation; its labels are in the file), and nilearn's
Harvard-Oxford (cortical and subcortical, max-probability 25 %) and Yeo 2011 7/17-network
atlases when they are already in nilearn's data folder: nothing is downloaded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import nibabel as nib
import numpy as np
import pandas as pd

from icanets._defaults import ANATOMY_DEFAULTS
from icanets.errors import BIDSError

__all__ = ["Atlas", "read_atlas", "check_atlas_space", "nilearn_atlases", "node_anatomy", "display_name"]

_YEO7 = ("Visual", "Somatomotor", "Dorsal Attention", "Ventral Attention", "Limbic", "Frontoparietal", "Default")


@dataclass(frozen=True)
class Atlas:
    """A label image and its names (``labels``: value -> name; 0 is background).

    ``image`` is a 3D NIfTI label image, or None for a CIFTI ``dlabel`` atlas, whose labels
    per grayordinate are ``cifti`` (``(geometry, values)``) and are matched to maps by
    brain model (structure and vertex, or voxel position).
    """

    name: str
    image: nib.Nifti1Image | None = field(repr=False)
    labels: Mapping[int, str] = field(repr=False)
    cifti: tuple | None = field(default=None, repr=False)


def _label_table(path: Path) -> dict[int, str]:
    text = path.read_text()
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise BIDSError(f"atlas label table {path} is empty")
    header = lines[0].split("\t")
    if "index" in header and "name" in header:
        frame = pd.read_csv(path, sep="\t")
        try:
            return {int(i): str(n) for i, n in zip(frame["index"], frame["name"])}
        except ValueError as exc:
            raise BIDSError(f"atlas label table {path}: the index column must hold integers ({exc})") from None
    out = {}
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if len(parts) < 2 or not re.fullmatch(r"-?\d+", parts[0]):
            raise BIDSError(f"atlas label table {path}, line {number}: expected 'index name ...' or a TSV with "
                            f"index and name columns, got {line!r}")
        out[int(parts[0])] = parts[1]
    return out


def read_atlas(image: Path | str, labels: Path | str | None = None, name: str | None = None) -> Atlas:
    """A user's atlas: a 3D label image (integer values) and its label table, or a CIFTI
    ``.dlabel.nii`` (e.g. an HCP parcellation), whose label table is in the file (``labels``
    then optional)."""
    image = Path(image)
    if image.name.endswith(".dlabel.nii"):
        return _read_dlabel(image, labels, name)
    if labels is None:
        raise BIDSError(f"atlas {image} needs a label table (labels)")
    labels = Path(labels)
    for path in (image, labels):
        if not path.is_file():
            raise BIDSError(f"atlas file not found: {path}")
    try:
        img = nib.load(str(image))
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise BIDSError(f"cannot read atlas image {image}: {exc}") from None
    data = np.squeeze(data)
    if data.ndim != 3:
        raise BIDSError(f"atlas image {image} must be a 3D label image, got shape {img.shape}")
    if not np.allclose(data, np.round(data)):
        raise BIDSError(f"atlas image {image} holds non-integer values: a label image is expected")
    table = _label_table(labels)
    missing = sorted(int(v) for v in set(np.unique(data).astype(int).tolist()) - set(table) - {0})
    if missing:
        raise BIDSError(f"atlas image {image} has values without a name in {labels}: {missing[:10]}")
    return Atlas(name or image.name.split(".")[0], nib.Nifti1Image(data.astype(np.int32), img.affine), table)


def _read_dlabel(image: Path, labels: Path | str | None, name: str | None) -> Atlas:
    from icanets.io.cifti import CiftiGeometry

    if not image.is_file():
        raise BIDSError(f"atlas file not found: {image}")
    try:
        img = nib.load(str(image))
        label_axis, models = img.header.get_axis(0), img.header.get_axis(1)
        data = np.asarray(img.dataobj)
    except Exception as exc:
        raise BIDSError(f"cannot read atlas {image}: {type(exc).__name__}: {exc}") from None
    if not isinstance(label_axis, nib.cifti2.LabelAxis) or not isinstance(models, nib.cifti2.BrainModelAxis):
        raise BIDSError(f"atlas {image} is not a CIFTI dense label file (LabelAxis x BrainModelAxis)")
    if data.shape[0] != 1:
        raise BIDSError(f"atlas {image} has {data.shape[0]} label maps; give one (e.g. wb_command -cifti-merge "
                        f"-column to pick it)")
    table = {int(k): str(v[0]) for k, v in label_axis.label[0].items()}
    if labels is not None:
        table.update(_label_table(Path(labels)))
    values = np.rint(data[0]).astype(np.int64)
    missing = sorted(set(np.unique(values).tolist()) - set(table) - {0})
    if missing:
        raise BIDSError(f"atlas {image} has values without a name in its label table: {missing[:10]}")
    table.pop(0, None)
    return Atlas(name or image.name.split(".")[0], None, table, cifti=(CiftiGeometry.from_axis(models), values))


def nilearn_atlases() -> list[Atlas]:
    """nilearn's Harvard-Oxford and Yeo 2011 atlases found in its data folders (none is fetched)."""
    try:
        from nilearn.datasets import get_data_dirs
    except ImportError:  # pragma: no cover - nilearn is a dependency
        return []
    found = []
    for root in map(Path, get_data_dirs()):
        ho = root / "fsl" / "data" / "atlases"
        for part, xml in (("cort", "HarvardOxford-Cortical.xml"), ("sub", "HarvardOxford-Subcortical.xml")):
            image = ho / "HarvardOxford" / f"HarvardOxford-{part}-maxprob-thr25-2mm.nii.gz"
            if image.is_file() and (ho / xml).is_file():
                names = re.findall(r'<label index="(\d+)"[^>]*>([^<]+)</label>', (ho / xml).read_text())
                labels = {int(i) + 1: n.strip() for i, n in names}
                img = nib.load(str(image))
                found.append(Atlas(f"Harvard-Oxford {part}", img, labels))
        yeo = root / "yeo_2011" / "Yeo_JNeurophysiol11_MNI152"
        for n in (7, 17):
            image = yeo / f"Yeo2011_{n}Networks_MNI152_FreeSurferConformed1mm_LiberalMask.nii.gz"
            if image.is_file():
                img = nib.load(str(image))
                names = dict(enumerate(_YEO7, start=1)) if n == 7 else {i: f"Network {i}" for i in range(1, 18)}
                found.append(Atlas(f"Yeo {n}", nib.Nifti1Image(np.squeeze(np.asarray(img.dataobj)).astype(np.int32),
                                                                img.affine), names))
        if found:
            break
    return found


def _image_labels(image: nib.Nifti1Image, world: np.ndarray) -> np.ndarray:
    """The label of a 3D label image at each point ``(P, 3)`` mm (nearest voxel; 0 outside
    it or where the point's position is unknown)."""
    out = np.zeros(len(world), dtype=np.int64)
    known = np.all(np.isfinite(world), axis=1)
    inverse = np.linalg.inv(image.affine)
    index = np.rint(world[known] @ inverse[:3, :3].T + inverse[:3, 3]).astype(int)
    data = np.asarray(image.dataobj)
    inside = np.all((index >= 0) & (index < np.array(data.shape[:3])), axis=1)
    values = np.zeros(len(index), dtype=np.int64)
    values[inside] = data[index[inside, 0], index[inside, 1], index[inside, 2]]
    out[known] = values
    return out


def _position_keys(world: np.ndarray) -> list:
    return [tuple(p) for p in np.round(world, 2).tolist()]


def check_atlas_space(atlas: Atlas, geometry=None) -> None:
    """A CIFTI dlabel atlas can name maps of ``geometry`` (None: NIfTI maps): every cortical
    structure both have holds the same mesh (vertex count), and at least one structure or
    the volume is shared.

    Raises
    ------
    BIDSError
        Naming the atlas, the structure and both vertex counts, or saying that nothing is
        shared.
    """
    if atlas.cifti is None:
        return
    theirs, _ = atlas.cifti
    shared = False
    if geometry is not None:
        for structure, count in theirs.n_vertices.items():
            if structure in geometry.n_vertices:
                if geometry.n_vertices[structure] != count:
                    raise BIDSError(f"atlas {atlas.name}: {structure} has {count} vertices in the atlas and "
                                    f"{geometry.n_vertices[structure]} in the maps (another mesh resolution)")
                shared = True
    if theirs.has_volume and (geometry is None or geometry.has_volume):
        shared = True
    if not shared:
        what = "NIfTI maps (a volume)" if geometry is None else f"maps of {', '.join(geometry.n_vertices) or 'a volume'}"
        raise BIDSError(f"atlas {atlas.name} (structures {', '.join(sorted(set(theirs.structures)))}) shares no "
                        f"surface or volume with the {what}: it cannot name the nodes")


def _atlas_labels(atlas: Atlas, world: np.ndarray, geometry=None) -> np.ndarray:
    """The atlas label of each map point: a volume atlas by position; a dlabel atlas by brain
    model (a vertex of the same structure, or a voxel at the same position)."""
    if atlas.cifti is None:
        return _image_labels(atlas.image, world)
    check_atlas_space(atlas, geometry)
    theirs, values = atlas.cifti
    out = np.zeros(len(world), dtype=np.int64)
    volume_points = np.ones(len(world), bool) if geometry is None else ~geometry.is_surface
    if geometry is not None:
        for structure, count in theirs.n_vertices.items():
            if structure not in geometry.n_vertices:
                continue
            lookup = np.zeros(count, dtype=np.int64)
            rows = (theirs.structures == structure) & theirs.is_surface
            lookup[theirs.vertex[rows]] = values[rows]
            mine = (geometry.structures == structure) & geometry.is_surface
            out[mine] = lookup[geometry.vertex[mine]]
    if theirs.has_volume and volume_points.any():
        voxels = ~theirs.is_surface
        by_position = dict(zip(_position_keys(theirs.coordinates()[voxels]), values[voxels].tolist()))
        index = np.flatnonzero(volume_points)
        out[index] = [by_position.get(key, 0) for key in _position_keys(world[index])]
    return out


def _map_points(maps: Path, surfaces: Sequence[Path]):
    """``(values (P, K), world (P, 3) mm with NaN where unknown, left (P,) bool, geometry or
    None)`` of a 4D NIfTI (every voxel) or a CIFTI dscalar (every grayordinate)."""
    maps = Path(maps)
    if maps.name.endswith((".dscalar.nii", ".dtseries.nii")):
        from icanets.errors import StudyError
        from icanets.io.cifti import brain_models, with_surfaces

        try:
            geometry = with_surfaces(brain_models(maps), surfaces)
        except StudyError as exc:
            raise BIDSError(str(exc)) from None
        data = np.asarray(nib.load(str(maps)).dataobj, dtype=np.float32).T
        world = geometry.coordinates()
        side = np.char.find(geometry.structures.astype(str), "LEFT") >= 0
        right = np.char.find(geometry.structures.astype(str), "RIGHT") >= 0
        left = np.where(side | right, side, world[:, 0] < 0)
        return data, world, left, geometry
    img = nib.load(str(maps))
    if len(img.shape) != 4:
        raise BIDSError(f"{maps} must be a 4D NIfTI of component maps, got shape {img.shape}")
    shape = img.shape[:3]
    data = np.asarray(img.dataobj, dtype=np.float32).reshape(-1, img.shape[3])
    world = np.indices(shape).reshape(3, -1).T @ img.affine[:3, :3].T + img.affine[:3, 3]
    return data, world, world[:, 0] < 0, None


def node_anatomy(maps: Path | str, components: Sequence[int], atlases: Sequence[Atlas] = (), *,
                 z_threshold: float = ANATOMY_DEFAULTS["z_threshold"], top: int = 3,
                 surfaces: Sequence[Path] = ()) -> pd.DataFrame:
    """One row per component (1-based map numbers of the 4D NIfTI or CIFTI dscalar ``maps``):
    ``peak_x/y/z`` and ``com_x/y/z`` (mm; the centre of mass of the map where it is at least
    half its peak, which does not depend on how the map is scaled), ``hemisphere`` (L, R or
    bilateral: each side holding at least a quarter of the positive mass above
    ``z_threshold``), and per atlas ``<atlas>`` (the labels holding most of that mass, with
    their fractions) and ``<atlas> label`` (the first); ``label``: the first label of the
    first atlas that has one (empty without atlases). Maps that are not z-scored (peak below
    ``2 z_threshold``) use half their peak as the threshold.

    For CIFTI maps, vertex positions come from ``surfaces`` (GIFTI; without them a surface
    vertex has no position and counts for the hemisphere and for a dlabel atlas, not for
    the coordinates or a volume atlas); the hemisphere of a grayordinate is its structure's.
    """
    data, world, left_side, geometry = _map_points(Path(maps), surfaces)
    known = np.all(np.isfinite(world), axis=1)
    outside = [int(c) for c in components if not 1 <= int(c) <= data.shape[1]]
    if outside:
        raise BIDSError(f"{maps} has {data.shape[1]} maps; no component {outside[0]}")
    values = [(a, _atlas_labels(a, world, geometry)) for a in atlases]
    rows = []
    for c in components:
        z = data[:, c - 1]
        placed = np.where(known, z, -np.inf)
        peak = world[int(np.argmax(placed))] if known.any() else np.full(3, np.nan)
        top_value = float(z.max())
        core = np.where(known & (z >= 0.5 * top_value), z, 0.0) if top_value > 0 else np.zeros_like(z)
        com = ((core[:, None] * np.where(known[:, None], world, 0.0)).sum(axis=0) / core.sum() if core.sum() > 0
               else np.full(3, np.nan))
        cut = z_threshold if top_value >= 2 * z_threshold else 0.5 * top_value
        mass = np.where((z > cut) & (z > 0), z, 0.0)
        total = float(mass.sum())
        left = float(mass[left_side].sum()) / total if total > 0 else np.nan
        hemisphere = ("bilateral" if 0.25 <= left <= 0.75 else "L" if left > 0.75 else "R") if total > 0 else ""
        row = {"component": int(c), "name": f"IC{int(c)}", "peak_x": peak[0], "peak_y": peak[1], "peak_z": peak[2],
               "com_x": com[0], "com_y": com[1], "com_z": com[2], "hemisphere": hemisphere, "label": ""}
        for atlas, labels in values:
            inside = (labels > 0) & (mass > 0)
            weights = pd.Series(mass[inside]).groupby(labels[inside]).sum().sort_values(ascending=False)
            shares = (weights / total).head(top) if total > 0 else weights.head(0)
            text = "; ".join(f"{atlas.labels.get(int(v), str(v))} {share:.0%}" for v, share in shares.items())
            row[atlas.name] = text
            first = atlas.labels.get(int(shares.index[0]), "") if len(shares) else ""
            row[f"{atlas.name} label"] = first
            if not row["label"] and first:
                row["label"] = first
        rows.append(row)
    return pd.DataFrame(rows)


def display_name(name: str, anatomy: pd.DataFrame | None) -> str:
    """``IC14 - R Visual`` for a node with a label (hemisphere and first label), else ``IC14``
    with its hemisphere, else the short name; the short name is never changed."""
    if anatomy is None or anatomy.empty:
        return name
    rows = anatomy[anatomy["name"] == name]
    if rows.empty:
        return name
    row = rows.iloc[0]
    side = {"L": "L ", "R": "R ", "bilateral": "bilat. "}.get(str(row.get("hemisphere") or ""), "")
    label = str(row.get("label") or "")
    return f"{name} - {side}{label}".rstrip() if label else (f"{name} ({side.strip()})" if side else name)

"""Scanner profiles: one frozen record per site, loaded from ``assets/scanners/*.toml``.

A profile holds everything the simulator needs to image like one hospital's scanner:
circular cone-beam geometry, beam (kVp, filtration, effective energy), dose (photons per
detector pixel), reconstruction kernel and grid, HU calibration, detector blur and whether
the physics render models beam hardening.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, fields
from functools import cached_property
from pathlib import Path

from fedsim_app.errors import FedSimError

#: Reconstruction kernels and the ramp-filter window each one uses (diffct names).
KERNEL_WINDOWS = {"sharp": "ram-lak", "standard": "shepp-logan", "smooth": "hann"}


@dataclass(frozen=True)
class ScannerProfile:
    """One site's CT scanner and protocol.

    Distances are millimetres; ``detector_pitch_mm`` is (u, v) on the detector for the
    native reconstruction grid (``grid_size``³ voxels of ``spacing_mm``); operators built
    for other grids scale it with the voxel size.
    """

    name: str
    description: str
    sid_mm: float
    sdd_mm: float
    detector_pixels: tuple[int, int]
    detector_pitch_mm: tuple[float, float]
    n_views: int
    coarse_views: int
    kvp: float
    al_mm: float
    cu_mm: float
    effective_energy_keV: float
    reference_water_mm: float
    photons_per_pixel: float
    beam_hardening: bool
    detector_blur_mm: float
    kernel: str
    grid_size: int
    spacing_mm: float
    hu_slope: float
    hu_intercept: float
    iodine_mg_per_ml: float

    def __post_init__(self) -> None:
        if self.kernel not in KERNEL_WINDOWS:
            raise ValueError(f"kernel must be one of {sorted(KERNEL_WINDOWS)}, got {self.kernel!r}")
        if not 0 < self.sid_mm < self.sdd_mm:
            raise ValueError("need 0 < sid_mm < sdd_mm")
        for key in ("n_views", "coarse_views", "grid_size"):
            if int(getattr(self, key)) < 2:
                raise ValueError(f"{key} must be at least 2")
        for key in ("photons_per_pixel", "spacing_mm", "kvp", "reference_water_mm"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"{key} must be positive")
        object.__setattr__(self, "detector_pixels", tuple(int(v) for v in self.detector_pixels))
        object.__setattr__(self, "detector_pitch_mm",
                           tuple(float(v) for v in self.detector_pitch_mm))

    @property
    def window(self) -> str:
        """diffct ramp-filter window of this profile's kernel."""
        return KERNEL_WINDOWS[self.kernel]

    @property
    def magnification(self) -> float:
        return self.sdd_mm / self.sid_mm

    @property
    def fov_mm(self) -> float:
        return self.grid_size * self.spacing_mm

    @cached_property
    def spectrum(self):
        """The detected tube spectrum (see `fedsim_app.ctsim.spectra`)."""
        from fedsim_app.ctsim.spectra import kramers_spectrum

        return kramers_spectrum(float(self.kvp), al_mm=self.al_mm, cu_mm=self.cu_mm)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["detector_pixels"] = list(self.detector_pixels)
        d["detector_pitch_mm"] = list(self.detector_pitch_mm)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ScannerProfile:
        return cls(**{f.name: d[f.name] for f in fields(cls)})


# TOML table.key -> (field, type); keys marked optional may be absent.
_SCHEMA = {
    "name": ("name", str), "description": ("description", str),
    "geometry.sid_mm": ("sid_mm", float), "geometry.sdd_mm": ("sdd_mm", float),
    "geometry.detector_pixels": ("detector_pixels", list),
    "geometry.detector_pitch_mm": ("detector_pitch_mm", list),
    "geometry.n_views": ("n_views", int), "geometry.coarse_views": ("coarse_views", int),
    "beam.kvp": ("kvp", float), "beam.al_mm": ("al_mm", float), "beam.cu_mm": ("cu_mm", float),
    "beam.reference_water_mm": ("reference_water_mm", float),
    "beam.photons_per_pixel": ("photons_per_pixel", float),
    "beam.beam_hardening": ("beam_hardening", bool),
    "detector.blur_mm": ("detector_blur_mm", float),
    "recon.kernel": ("kernel", str), "recon.grid_size": ("grid_size", int),
    "recon.spacing_mm": ("spacing_mm", float),
    "calibration.hu_slope": ("hu_slope", float),
    "calibration.hu_intercept": ("hu_intercept", float),
    "protocol.iodine_mg_per_ml": ("iodine_mg_per_ml", float),
}
_OPTIONAL = {"beam.effective_energy_keV": ("effective_energy_keV", float)}


def _lookup(doc: dict, dotted: str):
    node = doc
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(dotted)
        node = node[part]
    return node


def _coerce(value, kind, path: Path, key: str):
    bad = FedSimError(f"{path}: key '{key}' must be {kind.__name__}, got {value!r}")
    if kind is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad
        return float(value)
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if kind is list:
        if not isinstance(value, list) or len(value) != 2:
            raise FedSimError(f"{path}: key '{key}' must be a list of two numbers, got {value!r}")
        return value
    if not isinstance(value, kind):
        raise bad
    return value


def profile_from_toml(path: str | Path) -> ScannerProfile:
    """Parse one profile file; errors name the file and the key."""
    from fedsim_app.ctsim.spectra import effective_energy_keV

    path = Path(path)
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FedSimError(f"cannot read scanner profile {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise FedSimError(f"{path}: not valid TOML ({exc})") from exc
    values = {}
    for key, (field, kind) in {**_SCHEMA, **_OPTIONAL}.items():
        try:
            raw = _lookup(doc, key)
        except KeyError:
            if key in _OPTIONAL:
                continue
            raise FedSimError(f"{path}: missing key '{key}'") from None
        values[field] = _coerce(raw, kind, path, key)
    if "effective_energy_keV" not in values:
        from fedsim_app.ctsim.spectra import kramers_spectrum

        spec = kramers_spectrum(values["kvp"], al_mm=values["al_mm"], cu_mm=values["cu_mm"])
        values["effective_energy_keV"] = round(
            effective_energy_keV(spec, values["reference_water_mm"]), 2)
    try:
        return ScannerProfile(**values)
    except (ValueError, TypeError) as exc:
        raise FedSimError(f"{path}: {exc}") from exc


def list_scanners() -> list[str]:
    """Names of the shipped scanner profiles (``assets/scanners/*.toml``)."""
    from fedsim_app.assets import asset_path

    folder = asset_path("scanners")
    return sorted(p.stem for p in folder.glob("*.toml"))


def load_scanner(name_or_path: str | Path) -> ScannerProfile:
    """Load a shipped profile by name (``"site_a"``) or any profile file by path."""
    from fedsim_app.assets import asset_path

    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        return profile_from_toml(candidate)
    path = asset_path("scanners", f"{name_or_path}.toml", must_exist=False)
    if not path.exists():
        raise FedSimError(
            f"unknown scanner {str(name_or_path)!r}; shipped: {', '.join(list_scanners())}"
        )
    return profile_from_toml(path)

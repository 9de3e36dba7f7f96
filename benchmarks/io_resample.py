"""Resampling a CT-sized volume (512x512x250 at 0.4x0.4x0.6 mm) to 1.5 mm isotropic.

Run: .venv/bin/python benchmarks/io_resample.py   (last line: key=value figures)
"""

import time

import numpy as np

from fedsim_app.io import Grid, Volume, resample


def best_of(fn, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    shape = (250, 512, 512)
    grid = Grid(shape, (0.6, 0.4, 0.4))
    image = Volume(rng.normal(0, 100, shape).astype(np.float32), grid)
    label = Volume(rng.integers(0, 8, shape, dtype=np.uint8), grid, kind="label")
    t_img = best_of(lambda: resample(image, spacing_mm=1.5))
    t_lab = best_of(lambda: resample(label, spacing_mm=1.5))
    print(f"image linear {t_img * 1e3:.0f} ms, label nearest {t_lab * 1e3:.0f} ms")
    print(f"image_linear_ms={t_img * 1e3:.0f} label_nearest_ms={t_lab * 1e3:.0f}")


if __name__ == "__main__":
    main()

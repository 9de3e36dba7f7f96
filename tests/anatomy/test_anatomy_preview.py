"""The preview picture is written (atomically) and is a real PNG of the right size."""

import numpy as np

from fedsim_app.anatomy import build_heart, render_preview_png, sample_heart_params


def test_render_preview_png(tmp_path):
    hearts = [build_heart(sample_heart_params("adult", 0))]
    out = render_preview_png(tmp_path / "sub" / "h.png", hearts, dpi=40)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert list(tmp_path.joinpath("sub").iterdir()) == [out]  # no temp file left
    import matplotlib.image as mpimg

    img = mpimg.imread(out)  # (H, W, 4) floats
    # the heart is drawn in colour: some pixels are strongly red or blue
    rgb = img[..., :3]
    assert np.any((rgb[..., 0] > 0.6) & (rgb[..., 2] < 0.4)) and np.any(rgb[..., 2] > 0.5)

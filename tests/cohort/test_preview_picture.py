"""The cohort preview PNG: its legend fits the picture, and its colours are FedSim's one
table (the Explorer's too)."""

from __future__ import annotations

import pytest
from matplotlib.colors import to_rgb

from fedsim_app.cohort import generate_cohort
from fedsim_app.cohort.preview import find_site_datasets, preview_figure
from fedsim_app.io.colours import STRUCTURE_COLOURS, hex_colour
from fedsim_app.io.labels_core import DISPLAY_NAME, STRUCTURES


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort")
    generate_cohort(root, sites="A,B,C", cases=1, size=32, label_codes="mmwhs-consecutive")
    return find_site_datasets(root)


@pytest.mark.parametrize("n_sites", [1, 2, 3])
def test_legend_lies_inside_the_picture(cohort, n_sites):
    import matplotlib.pyplot as plt

    fig = preview_figure(cohort[:n_sites])
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        frame = fig.bbox
        legend = fig.legends[0]
        texts = [t.get_text() for t in legend.get_texts()]
        assert texts == [DISPLAY_NAME[n] for n in STRUCTURES]
        for artist in [legend, *legend.get_texts()]:
            box = artist.get_window_extent(renderer)
            assert box.x0 >= frame.x0 and box.x1 <= frame.x1, (n_sites, artist)
            assert box.y0 >= frame.y0 and box.y1 <= frame.y1, (n_sites, artist)
        # the legend does not run into the panels' axis labels
        for ax in fig.axes:
            assert ax.get_tightbbox(renderer).y0 >= legend.get_window_extent(renderer).y1 - 1
    finally:
        plt.close(fig)


def test_preview_uses_the_one_colour_table(cohort):
    import matplotlib.pyplot as plt

    fig = preview_figure(cohort[:1])
    try:
        lines = fig.legends[0].get_lines()
        assert [to_rgb(line.get_color()) for line in lines] == [
            pytest.approx(STRUCTURE_COLOURS[n], abs=1 / 255) for n in STRUCTURES]
        table = {tuple(round(c, 2) for c in STRUCTURE_COLOURS[n]) for n in STRUCTURES}
        drawn = set()
        for coll in fig.axes[0].collections:
            for rgba in coll.get_edgecolor():
                drawn.add(tuple(round(float(c), 2) for c in rgba[:3]))
        assert drawn and drawn <= table
    finally:
        plt.close(fig)


def test_every_picture_reads_the_same_table():
    from fedsim_app.anatomy import preview as hearts_preview
    from fedsim_app.cohort import preview as cohort_preview

    assert tuple(STRUCTURE_COLOURS) == STRUCTURES
    assert {n: hex_colour(n) for n in STRUCTURES} == hearts_preview.COLOURS
    assert tuple(hex_colour(n) for n in STRUCTURES) == cohort_preview.COLOURS


def test_explorer_reads_the_same_table():
    pytest.importorskip("napari")
    from fedsim_napari import views as explorer_views

    assert explorer_views.STRUCTURE_COLORS == STRUCTURE_COLOURS
    html = explorer_views.legend_html()
    for n in STRUCTURES:
        r, g, b = (round(255 * c) for c in STRUCTURE_COLOURS[n])
        assert f"rgb({r},{g},{b})" in html

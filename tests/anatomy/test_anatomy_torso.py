"""The procedural chest: classes, placement around the heart, scaling, replay."""

import numpy as np
import pytest

from fedsim_app.anatomy import (
    Tissue,
    TorsoParams,
    build_heart,
    build_torso_labels,
    masks_on_grid,
    sample_heart_params,
    sample_torso_params,
)
from fedsim_app.io.grid import Grid


@pytest.fixture(scope="module")
def adult_chest():
    params = sample_torso_params(3, 45.0)
    grid = Grid.centered((48, 48, 48), 8.0)  # 384 mm: the whole chest
    return params, grid, build_torso_labels(params, grid)


def test_all_tissue_classes_present(adult_chest):
    _, grid, labels = adult_chest
    assert labels.shape == grid.shape and labels.dtype == np.uint8
    present = set(np.unique(labels).tolist())
    assert present == {t.value for t in Tissue}


def test_lungs_beside_the_heart_spine_behind_sternum_in_front(adult_chest):
    p, grid, labels = adult_chest
    z, y, x = grid.axis_centers()
    k = int(np.argmin(np.abs(z - p.heart_center_mm[2])))  # axial slice through the heart
    sl = labels[k]  # (ny, nx)
    j = int(np.argmin(np.abs(y - p.heart_center_mm[1])))
    row = sl[j]
    heart_x = x[row == Tissue.HEART]
    lung_x = x[row == Tissue.LUNG]
    assert heart_x.size and lung_x.size
    # lung on both sides of the heart on the row through its centre
    assert (lung_x < heart_x.min()).any() and (lung_x > heart_x.max()).any()
    ys, _ = np.nonzero(sl == Tissue.SPINE)
    yst, _ = np.nonzero(sl == Tissue.STERNUM)
    assert y[ys].mean() < p.heart_center_mm[1] - 40 < y[yst].mean() - 40
    # fat outside the muscle: the outermost body voxel of the row is fat
    body = np.nonzero(row != Tissue.AIR)[0]
    assert row[body[0]] == Tissue.FAT and row[body[-1]] == Tissue.FAT


def test_liver_under_the_right_dome(adult_chest):
    p, grid, labels = adult_chest
    z, _, x = grid.axis_centers()
    zz, _, xx = np.nonzero(labels == Tissue.LIVER)
    assert x[xx].mean() > p.body_center_xy_mm[0]  # right side
    assert z[zz].mean() < p.heart_center_mm[2] - 30  # below the heart
    lung_z = z[np.nonzero(labels == Tissue.LUNG)[0]]
    assert lung_z.mean() > z[zz].mean()


def test_heart_mask_and_pericardial_fat():
    heart = build_heart(sample_heart_params("adult", 4))
    grid = Grid.centered((40, 40, 40), 4.0)
    masks = masks_on_grid(heart, grid)
    inside = np.any(np.stack(list(masks.values())), axis=0)  # (nz, ny, nx)
    assert inside.shape == grid.shape and inside.sum() > 0
    # volumes on the grid agree with the mesh volumes (4 mm voxels: within 15 %)
    voxel_ml = 4.0**3 / 1000.0
    assert masks["la"].sum() * voxel_ml == pytest.approx(heart.volumes_ml()["la"], rel=0.15)
    p = sample_torso_params(0, 50.0)
    labels = build_torso_labels(p, grid, heart_mask=inside)
    assert np.array_equal(labels == Tissue.HEART, inside)
    assert (labels == Tissue.PERICARDIAL_FAT).sum() > 0
    assert not ((labels == Tissue.LUNG) & inside).any()
    with pytest.raises(ValueError):
        build_torso_labels(p, grid, heart_mask=np.zeros((3, 3, 3), bool))


def test_children_are_smaller_and_replay_is_exact():
    infant, adult = sample_torso_params(1, 0.2), sample_torso_params(1, 30.0)
    assert infant.half_width_mm < 0.6 * adult.half_width_mm
    assert infant.half_depth_mm / infant.half_width_mm > adult.half_depth_mm / adult.half_width_mm
    assert sample_torso_params(1, 30.0) == adult
    assert TorsoParams.from_dict(adult.to_dict()) == adult
    grid = Grid.centered((24, 24, 24), 5.0)
    np.testing.assert_array_equal(
        build_torso_labels(adult, grid), build_torso_labels(sample_torso_params(1, 30.0), grid)
    )

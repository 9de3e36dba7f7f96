"""fedsim export from a training checkpoint (smoke-preset networks, untrained)."""

from __future__ import annotations

import numpy as np
import pytest

from fedsim_app.cli import main
from fedsim_app.export.dataset import export_dataset, replay
from fedsim_app.export.sample import load_export_model
from fedsim_app.io import read_nifti
from fedsim_app.io.records import read_record
from fedsim_app.train.checkpoint import save_checkpoint
from fedsim_app.train.config import preset
from fedsim_app.train.glo import DONE, build_nets
from fedsim_app.train.latents import fit_normal

SIZE = 16
CASES = ("sitea_000", "sitea_001", "sitea_002")


def _checkpoint(path, *, with_prior: bool, site: str = "A", seed: int = 0,
                textured: bool = False, **config):
    """A checkpoint laid out as Trainer.state_dict writes it (networks untrained; with
    ``textured`` the enhancer's residual is not zero, so its noise reaches the image)."""
    cfg = preset("smoke", seed=seed, **config)
    nets = build_nets(cfg, n_labelled=len(CASES))
    if textured:
        import torch

        with torch.no_grad():
            nets.enhancer.tail[1].weight.normal_(std=0.05, generator=torch.Generator()
                                                 .manual_seed(seed))
    prior = None
    if with_prior:
        mean, cov = fit_normal(nets.z_lab.codes)
        prior = {"mean": mean, "cov": cov}
    state = {"config": cfg.to_dict(), "site": site, "case_ids": list(CASES),
             "n_labelled": len(CASES),
             "grid": {"shape": [16] * 3, "spacing_mm": [13.0] * 3, "origin_mm": [0.0] * 3},
             "phase": DONE if with_prior else 3, "step": 0,
             "models": {k: m.state_dict() for k, m in nets.modules().items()},
             "optimizers": {}, "prior": prior, "rng": {}, "seconds": {"1": 1.0},
             "scan_fov_mm": [100.0, 120.0, 140.0]}
    return save_checkpoint(path, state)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("run") / "checkpoint.pt", with_prior=True)


@pytest.mark.filterwarnings("ignore:label codes 'mmwhs' are not consecutive")
def test_checkpoint_export_records_and_replays(ckpt, tmp_path):
    model = load_export_model(ckpt.parent, "A", size=SIZE)  # a run folder works
    assert model.trained
    summary = export_dataset(model, n=2, out=tmp_path, seed=3, label_codes="mmwhs")
    rec = read_record(summary.root / "fedsim" / "case_0001.json")
    body = rec["record"]
    assert len(body["latent"]) == 32 and len(body["params"]) == 21
    assert body["model"]["checkpoint_sha256"] and body["model"]["preset"] == "smoke"
    assert body["model"]["training"]["case_ids"] == list(CASES)
    assert "SiteEnhancer" in body["enhancer_source"]
    assert "G_material" in body["material_source"] and "G_shape" in body["shape_source"]
    assert body["novelty"]["nearest_by_latent"] in CASES
    again = replay(rec)
    image = read_nifti(summary.root / "imagesTr" / "case_0001_0000.nii.gz").array
    np.testing.assert_array_equal(image, np.rint(again.ct_hu[0].numpy()))
    labels = read_nifti(summary.root / "labelsTr" / "case_0001.nii.gz", kind="label").array
    assert set(np.unique(labels)) <= {0, 205, 420, 500, 550, 600, 820, 850}


def test_training_latent_is_its_own_nearest(ckpt):
    model = load_export_model(ckpt, "A", size=SIZE)
    z = model.train_latents[1]
    draw = model.draw(0, 0, latent=z.numpy())
    result = model.render(draw)
    nov = model.novelty(draw, result.labels[0].numpy())
    assert nov["nearest_by_latent"] == CASES[1] and nov["latent_distance"] < 1e-6
    assert nov["heart_iou"] == 1.0


def test_latents_drawn_from_the_fitted_normal_without_phase3(tmp_path):
    path = _checkpoint(tmp_path / "c.pt", with_prior=False)
    model = load_export_model(path, "A", size=SIZE)
    assert "no phase 3" in model.source["latent_source"]
    draws = np.stack([model.draw(i, 0).latent for i in range(200)])
    mean = model.prior[0].numpy()
    # the draws follow the fitted normal: their mean sits near its mean
    assert np.abs(draws.mean(0) - mean).max() < 0.5


def test_replay_refuses_another_checkpoint(ckpt, tmp_path):
    import shutil

    from fedsim_app.errors import FedSimError

    copy = tmp_path / "checkpoint.pt"
    shutil.copy(ckpt, copy)
    model = load_export_model(copy, "A", size=SIZE)
    summary = export_dataset(model, n=1, out=tmp_path / "out", seed=0)
    rec = read_record(summary.root / "fedsim" / "case_0000.json")
    _checkpoint(copy, with_prior=True, seed=1)  # same path, other weights
    with pytest.raises(FedSimError, match="sha256"):
        replay(rec)


def test_checkpoint_of_another_site_refused(tmp_path, capsys):
    path = _checkpoint(tmp_path / "b.pt", with_prior=True, site="B")
    code = main(["export", "--checkpoint", str(path), "--site", "A", "--out",
                 str(tmp_path / "o"), "--n", "1", "--size", str(SIZE)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "site B" in err[0]


def test_bundle_of_sites_exports_and_replays(ckpt, tmp_path):
    """The default checkpoint is a bundle (fp16, several sites): the same export path."""
    from fedsim_app.train.model_io import write_bundle

    bundle = write_bundle([ckpt], tmp_path / "default.pt")
    model = load_export_model(bundle, "A", size=SIZE)
    summary = export_dataset(model, n=1, out=tmp_path / "out", seed=0)
    rec = read_record(summary.root / "fedsim" / "case_0000.json")
    assert rec["record"]["model"]["checkpoint"] == str(bundle)
    again = replay(rec)
    image = read_nifti(summary.root / "imagesTr" / "case_0000_0000.nii.gz").array
    np.testing.assert_array_equal(image, np.rint(again.ct_hu[0].numpy()))


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_cli_export_replays_bit_for_bit_with_the_enhancers_noise(tmp_path, precision):
    path = _checkpoint(tmp_path / "t.pt", with_prior=True, textured=True)
    out = tmp_path / "Dataset701_Tex"
    assert main(["export", "--checkpoint", str(path), "--n", "2", "--size", str(SIZE),
                 "--out", str(out), "--precision", precision, "--threads", "2"]) == 0
    images = []
    for case in ("case_0000", "case_0001"):
        rec = read_record(out / "fedsim" / f"{case}.json")
        assert rec["record"]["precision"] == precision
        assert (precision in rec["record"]["enhancer_source"]) == (precision != "float32")
        again = replay(rec)  # another model instance, this process's thread setting
        image = read_nifti(out / "imagesTr" / f"{case}_0000.nii.gz").array
        np.testing.assert_array_equal(image, np.rint(again.ct_hu[0].numpy()))
        images.append(image)
    # the enhancer ran (its residual is not zero): the coarse CT upsampled differs
    plain = load_export_model(path, "A", size=SIZE)
    plain.generator.enhancer = None
    draw = plain.draw(0, 0)
    assert not np.array_equal(np.rint(plain.render(draw).ct_hu[0].numpy()), images[0])


def test_default_is_the_shipped_checkpoint_once_it_lands(ckpt, tmp_path, monkeypatch):
    """``--checkpoint default``: assets/checkpoints/default.pt when it ships, else the
    atlas model, labelled as such."""
    from fedsim_app.assets import assets_dir
    from fedsim_app.train.model_io import write_bundle

    assets = tmp_path / "assets"
    assets.mkdir()
    for sub in assets_dir().iterdir():
        if sub.name != "checkpoints":
            (assets / sub.name).symlink_to(sub)
    monkeypatch.setenv("FEDSIM_ASSETS", str(assets))
    fallback = load_export_model("default", "A", size=SIZE)
    assert not fallback.trained and "no trained checkpoint" in fallback.source["model"]
    shipped = write_bundle([ckpt], assets / "checkpoints" / "default.pt")
    model = load_export_model("default", "A", size=SIZE)
    assert model.trained and model.source["checkpoint"] == str(shipped)


def test_a_run_folder_names_its_model(tmp_path):
    """A ``fedsim train`` folder gives its checkpoint.pt, a ``fedsim federate`` folder its
    model.pt (its server.pt is no model), a file itself."""
    from fedsim_app.export.sample import resolve_checkpoint

    train, fed = tmp_path / "train", tmp_path / "fed"
    train.mkdir()
    fed.mkdir()
    (train / "checkpoint.pt").write_bytes(b"")
    (fed / "server.pt").write_bytes(b"")
    assert resolve_checkpoint(train) == train / "checkpoint.pt"
    assert resolve_checkpoint(fed) == fed / "checkpoint.pt"  # unfinished: no model yet
    (fed / "model.pt").write_bytes(b"")
    assert resolve_checkpoint(fed) == fed / "model.pt"
    assert resolve_checkpoint(fed / "model.pt") == fed / "model.pt"


@pytest.mark.filterwarnings("ignore:label codes 'mmwhs' are not consecutive")
def test_case_frame_model_writes_its_scans_millimetres(tmp_path):
    """A model trained with frame = "case" learnt scans scaled onto its frame: its volumes
    and meshes are written back at the training scans' median field of view (120 mm)."""
    ck = _checkpoint(tmp_path / "run" / "checkpoint.pt", with_prior=True, frame="case")
    model = load_export_model(ck, "A", size=SIZE)
    frame = model.generator.grid
    assert model.written_grid.spacing_mm == pytest.approx((120.0 / SIZE,) * 3)
    centre = (np.array(frame.shape) - 1) / 2.0
    assert np.allclose(model.written_grid.index_to_world(centre), frame.index_to_world(centre))
    summary = export_dataset(model, n=1, out=tmp_path / "out", seed=0, label_codes="mmwhs",
                             meshes=True)
    image = read_nifti(next((summary.root / "imagesTr").glob("*.nii.gz")))
    assert image.grid.spacing_mm == pytest.approx((7.5,) * 3, abs=1e-3)
    assert read_record(summary.root / "fedsim" / "case_0000.json")["record"]["grid"][
        "spacing_mm"] == pytest.approx([7.5] * 3)
    # the meshes shrink with the volume: their extent is the frame's × 120 / 208
    result = model.render(model.draw(0, 0))
    v = result.vertices[0].cpu().numpy()
    scaled = np.concatenate([m[0] for m in model.written_meshes(v).values()])
    k = 120.0 / frame.extent_mm[0]
    assert np.ptp(scaled, 0) == pytest.approx(np.ptp(v, 0) * k, rel=1e-5)
    # a fixed-frame model writes on its frame
    fixed = load_export_model(_checkpoint(tmp_path / "f" / "checkpoint.pt", with_prior=True),
                              "A", size=SIZE)
    assert fixed.written_grid == fixed.generator.grid


def test_case_frame_checkpoint_without_fields_of_view_is_refused(tmp_path):
    ck = _checkpoint(tmp_path / "checkpoint.pt", with_prior=True, frame="case")
    import torch

    state = torch.load(ck, weights_only=True)
    state["scan_fov_mm"] = []
    save_checkpoint(ck, state)
    with pytest.raises(Exception, match="records no scan fields of view"):
        load_export_model(ck, "A", size=SIZE)

"""Training on an SSM built from the run's labelled volumes: built, used, saved, loaded."""

import numpy as np
import pytest
import torch

from fedsim_app.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fedsim_app.train.config import ConfigError, preset
from fedsim_app.train.model_io import load_site_models, write_bundle
from fedsim_app.train.session import make_trainer, site_chain


def test_unknown_shape_model_refused():
    with pytest.raises(ConfigError, match="shape_model must be one of atlas, labels"):
        preset("smoke", shape_model="mine")


def test_cpu_preset_builds_from_labels_and_atlas_paper_keeps_the_atlas():
    assert preset("cpu").shape_model == "labels+atlas"
    assert preset("paper").shape_model == "atlas"


@pytest.mark.slow
def test_labels_ssm_is_trained_saved_and_loaded(tiny_site, tiny_cfg, tmp_path):
    from fedsim_app.models.shape_stage import frame_grid
    from fedsim_app.shape import load_atlas_ssm

    cfg = tiny_cfg.replace(shape_model="labels+atlas")
    logged = []
    tr = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "run", log=logged.append)
    assert sum(line.startswith("registered ") for line in logged) == 2, logged
    own = tr.nets.g_shape.ssm
    atlas = load_atlas_ssm()
    assert own is not None and own.n_vertices == atlas.n_vertices
    # 2 hearts and the atlas's 20-shape population: 21 modes with variance
    assert int((own.eigenvalues > 1e-6 * own.eigenvalues[0]).sum()) == 21
    assert not np.allclose(own.mean, atlas.mean)
    # the chain decodes in it (the scale range of the preset) and keeps the model's frame
    assert np.array_equal(tr.chain.ssm.modes, own.modes)
    assert tr.chain.ssm.ranges.log_scale == pytest.approx(cfg.shape_log_scale or 0.25)
    assert tr.chain.grid == frame_grid(cfg.label_size, tr.chain.config.fov_mm)
    tr.run()

    ck = tmp_path / "run" / "checkpoint.pt"
    for models in (load_site_models(ck), load_site_models(write_bundle([ck], tmp_path / "b.pt"))):
        loaded = models["A"]
        assert np.array_equal(loaded.nets.g_shape.ssm.mean, own.mean)
        chain = loaded.chain()
        assert np.array_equal(chain.ssm.modes, tr.chain.ssm.modes)
        params = loaded.nets.g_shape(loaded.nets.z_lab.codes[:1].detach()).detach()
        assert torch.equal(chain.labels(params)[0], tr.chain.labels(params)[0])
        # any chain built with that G_shape (export, the Explorer) decodes in it too
        from fedsim_app.models.generator import ChainConfig, Generator

        bare = Generator("A", config=ChainConfig(label_size=cfg.label_size),
                         g_shape=loaded.nets.g_shape, device="cpu")
        assert np.array_equal(bare.ssm.modes, own.modes) and bare.grid == chain.grid

    # resume reads the SSM from the checkpoint: no registration
    logged.clear()
    again = make_trainer(tiny_site, "A", 2, cfg, tmp_path / "run", resume=True,
                         log=logged.append)
    assert not logged and np.array_equal(again.nets.g_shape.ssm.mean, own.mean)

    # a checkpoint that says it was trained on one but lost it is refused
    state = load_checkpoint(ck)
    state["shape_model"] = None
    save_checkpoint(tmp_path / "lost.pt", state)
    with pytest.raises(CheckpointError, match="lost.pt: trained with shape_model = 'labels"):
        load_site_models(tmp_path / "lost.pt")


def test_atlas_run_keeps_the_atlas_and_writes_no_ssm(tiny_site, tiny_cfg, tmp_path):
    from fedsim_app.shape import load_atlas_ssm

    tr = make_trainer(tiny_site, "A", 2, tiny_cfg, tmp_path / "run")
    assert tiny_cfg.shape_model == "atlas" and tr.nets.g_shape.ssm is None
    assert tr.state_dict()["shape_model"] is None
    assert np.array_equal(tr.chain.ssm.mean, load_atlas_ssm().mean)
    assert np.array_equal(site_chain("A", tiny_cfg).ssm.mean, load_atlas_ssm().mean)


def test_shape_model_is_built_on_one_blas_thread(tiny_site, tiny_cfg, monkeypatch):
    """Registration and the PCA run with numpy's BLAS on one thread whatever the caller
    set: with two, the modes came out 2e-10 apart and training made another generator."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from fedsim_app.shape import from_labels
    from fedsim_app.train.session import training_shape_model

    def blas_threads():
        return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]

    seen = []

    def spy(fn):
        def wrapped(*args, **kwargs):
            seen.append(blas_threads())
            return fn(*args, **kwargs)
        return wrapped

    for name in ("register_each", "ssm_of_registered"):
        monkeypatch.setattr(from_labels, name, spy(getattr(from_labels, name)))
    cfg = tiny_cfg.replace(shape_model="labels+atlas")
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()
        model = training_shape_model(tiny_site, 2, cfg, log=lambda line: None)
        assert blas_threads() == before  # the caller's setting is back
    assert len(seen) == 2 and all(threads and set(threads) == {1} for threads in seen), seen
    again = training_shape_model(tiny_site, 2, cfg, log=lambda line: None)
    assert np.array_equal(model.modes, again.modes) and np.array_equal(model.mean, again.mean)

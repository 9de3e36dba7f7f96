"""What a finished federated run leaves: its model (the server's generators with each
site's local parts, one bundle the export engine and the Explorer's latent engine load;
bad inputs are one line) and its views (one latent through each site every N rounds)."""

import json
import shutil

import pytest
import torch

from fedsim_app.cli import main
from fedsim_app.errors import FedSimError

SIZE = 16


@pytest.fixture(scope="module")
def fed_run(tiny_data, tmp_path_factory):
    """Two sites (site A's data under A and B, each its own scanner), one round a phase."""
    from fedsim_app.models.coarse_ct import CoarseScanner

    out = tmp_path_factory.mktemp("fedbundle") / "run"
    build, CoarseScanner.build = CoarseScanner.build, lambda self: None
    try:
        assert main(["federate", "--sites", "A,B", "--data", f"A={tiny_data}", "--data",
                     f"B={tiny_data}", "--labels", "A=2", "--labels", "B=2", "--preset",
                     "smoke", "--no-matrix", "--rounds", "3", "--view-every", "2",
                     "--out", str(out)]) == 0
    finally:
        CoarseScanner.build = build
    return out


def test_finished_run_writes_a_model_every_engine_loads(fed_run):
    from fedsim_app.export.sample import load_export_model
    from fedsim_app.federated.server import load_server_checkpoint
    from fedsim_app.pipeline.latent import LatentModel
    from fedsim_app.train.checkpoint import load_checkpoint
    from fedsim_app.train.model_io import load_site_models

    path = fed_run / "model.pt"
    models = load_site_models(path)
    assert set(models) == {"A", "B"}
    server = load_server_checkpoint(fed_run / "server.pt")
    for key, m in models.items():
        local = load_checkpoint(fed_run / "sites" / key / "local.pt")
        # shared weights from the server, BatchNorm statistics and the rest the site's own
        for name, t in server["models"]["g_shape"].items():
            torch.testing.assert_close(m.nets.g_shape.state_dict()[name], t)
        material = m.nets.g_material.state_dict()
        for name, t in server["models"]["g_material"].items():
            want = local["norm_stats"].get(name, t)
            torch.testing.assert_close(material[name], want)
        for name, t in local["models"]["enhancer"].items():
            torch.testing.assert_close(m.nets.enhancer.state_dict()[name], t)
        assert m.prior is not None and m.case_ids == tuple(local["case_ids"])
        # each scan's field of view travels from the site's data to the bundle
        assert len(m.scan_fov_mm) == len(m.case_ids) and min(m.scan_fov_mm) > 0
        assert list(m.scan_fov_mm) == local["scan_fov_mm"]
    # the sites' statistics differ (other scanners): the bundle keeps each its own
    a, b = (models[k].nets.g_material.state_dict() for k in ("A", "B"))
    assert any(not torch.equal(a[k], b[k]) for k in a if "running_mean" in k)
    assert LatentModel(path).sites == ("A", "B")
    sizes = json.loads((fed_run / "federation.json").read_text())["sizes"]
    assert {k: v[0] for k, v in sizes.items()} == {"A": 2, "B": 2}  # the panel's counts
    for key in ("A", "B"):
        model = load_export_model(path, key, size=SIZE)
        assert model.trained
        volume = model.render(model.draw(0, 0))
        assert torch.isfinite(volume.ct_hu).all() and volume.ct_hu.shape[-1] == SIZE


def test_one_site_bundles_its_own_state_from_elsewhere(fed_run, tmp_path, capsys):
    """A hospital's own bundle: the server's shared weights and its local.pt only."""
    from fedsim_app.train.model_io import load_site_models

    own = tmp_path / "hospital_b"
    shutil.copytree(fed_run / "sites" / "B", own)
    out = tmp_path / "b.pt"
    assert main(["federate", "--out", str(fed_run), "--bundle", str(out), "--sites", "B",
                 "--site-state", f"B={own}"]) == 0
    assert str(out) in capsys.readouterr().out
    assert set(load_site_models(out)) == {"B"}
    half = tmp_path / "b16.pt"  # as make assets writes the shipped default
    assert main(["federate", "--out", str(fed_run), "--bundle", str(half), "--sites", "B",
                 "--site-state", f"B={own}", "--half"]) == 0
    stored = torch.load(half, weights_only=False)
    tensors = [t for e in stored["sites"].values() for m in e["models"].values() for t in m.values()
               if t.is_floating_point()]
    assert tensors and all(t.dtype == torch.float16 for t in tensors)
    assert set(load_site_models(half)) == {"B"}
    assert main(["federate", "--out", str(fed_run), "--half"]) == 2  # without --bundle


def test_bad_inputs_are_one_line(fed_run, tmp_path, capsys):
    from fedsim_app.federated.bundle import bundle_run, federated_site_state
    from fedsim_app.federated.server import load_server_checkpoint
    from fedsim_app.train.checkpoint import load_checkpoint

    cases = [
        (["--out", str(tmp_path / "nowhere")], "no federated run there"),
        (["--out", str(fed_run), "--sites", "C"], "not in this run"),
        (["--out", str(fed_run), "--sites", "A", "--site-state",
          f"A={tmp_path / 'missing.pt'}"], "no local state of site A"),
        (["--out", str(fed_run), "--sites", "A", "--site-state",
          f"A={fed_run / 'sites' / 'B'}"], "not of site A"),
    ]
    for argv, words in cases:
        out = tmp_path / "never.pt"
        assert main(["federate", *argv, "--bundle", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0] and "Traceback" not in err[0], err
        assert not out.exists()
    server = load_server_checkpoint(fed_run / "server.pt")
    local = load_checkpoint(fed_run / "sites" / "A" / "local.pt")
    other = dict(local, config={**local["config"], "seed": 99})  # another run's site
    with pytest.raises(FedSimError, match="another run"):
        federated_site_state(server, other)
    with pytest.raises(FedSimError, match="trained 9 rounds"):
        federated_site_state(server, dict(local, round_done=8))
    with pytest.raises(FedSimError, match="not finished phase 1"):
        federated_site_state(server, dict(local, norm_stats=None))
    with pytest.raises(FedSimError, match="model.pt"):  # a file, not a run folder
        bundle_run(fed_run / "model.pt")


def test_views_show_one_latent_through_each_site_every_n_rounds(fed_run):
    import numpy as np

    from fedsim_app.federated.views import list_views, view_latent

    views = list_views(fed_run)
    assert [r for r, _ in views] == [0, 2, 3]  # the untrained model, every 2nd, the last
    latent = json.loads((fed_run / "views" / "latent.json").read_text())["latent"]
    records = [np.load(png.with_suffix(".npz")) for _, png in views]
    for rec in records:
        assert list(rec["sites"]) == ["A", "B"] and rec["slices"].shape[:2] == (2, 3)
        np.testing.assert_array_equal(rec["latent"], np.float32(latent))
        assert np.isfinite(rec["slices"]).all()
    assert [int(r["phase"]) for r in records] == [1, 2, 3]
    # the shared generators learnt: the same latent's coarse CT changed at both sites
    for site in (0, 1):
        assert not np.array_equal(records[0]["slices"][site, 1],
                                  records[-1]["slices"][site, 1])
    # the sites' own sensors: the same latent renders differently at A and B
    assert not np.array_equal(records[-1]["slices"][0, 1], records[-1]["slices"][1, 1])
    # read back, not drawn again (a resumed run shows the same latent)
    torch.testing.assert_close(view_latent(fed_run, 32, seed=123)[0],
                               torch.tensor(latent))


def test_view_every_refused_on_flower_and_below_zero(tiny_data, tmp_path, capsys):
    base = ["federate", "--sites", "A", "--data", f"A={tiny_data}", "--out",
            str(tmp_path / "run")]
    for extra, words in ((["--runtime", "flower", "--view-every", "2"], "in-process only"),
                         (["--view-every", "-1"], "≥ 0")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0]
    assert not (tmp_path / "run").exists()

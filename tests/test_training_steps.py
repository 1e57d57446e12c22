"""The named steps of `training.train`: each one's contract, on its own (issue 18)."""

import dataclasses
import json
import os
import shutil
import types

import numpy as np
import pytest

from kerasgan import recipes, training
from kerasgan.errors import ConfigError
from tests.test_training import tiny_options, tiny_run

STEPS = 5000 // 256  # steps per epoch of tests.test_training.tiny_run


def tiny_settings(tmp_path, **overrides):
    """The settings `tiny_run` trains with."""
    return training.resolve_settings("dcgan", **tiny_options(tmp_path, **overrides))


def built(settings):
    """The model `train` builds for `settings`, with its data, inside the run's lock."""
    with training.prepare_run(settings) as source:
        data = training.load_run_data(settings, source)
        return training.build_model(settings, data), data


def run_before_cpu_model_options(tmp_path, monkeypatch):
    """One epoch of `tiny_run` as a kerasgan before DCGAN's CPU latent trained it (or a GPU):
    the preset's own options, recorded as none."""
    recipe = training.get_recipe("dcgan")
    monkeypatch.setitem(recipes.RECIPES, "dcgan", dataclasses.replace(recipe, model_options_cpu={}))
    tiny_run(tmp_path, epochs=1, export=False)
    monkeypatch.setitem(recipes.RECIPES, "dcgan", recipe)


def test_resolve_settings_fills_in_the_recipes_defaults_and_touches_no_disk(tmp_path):
    recipe = training.get_recipe("dcgan")
    settings = tiny_settings(tmp_path, epochs=None, batch_size=None)
    assert (settings.epochs, settings.batch_size) == (recipe.epochs, recipe.batch_size)
    assert settings.run_dir == str(tmp_path / "run") and settings.export_name == "dcgan"
    assert settings.policy == "float32" and settings.export is True
    assert os.listdir(tmp_path) == []
    with pytest.raises(ConfigError, match="unknown preset"):
        tiny_settings(tmp_path, preset="huge")
    assert os.listdir(tmp_path) == []


def test_prepare_run_refuses_a_locked_folder_and_leaves_nothing_behind(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    owner = os.getppid()  # alive: the process that started the tests
    (run / "train.lock").write_text(f"{owner}\n")
    with pytest.raises(training.RunLocked, match=f"in use by another train \\(process {owner}"):
        with training.prepare_run(tiny_settings(tmp_path)):
            pytest.fail("the body must not run on a locked folder")
    assert os.listdir(run) == ["train.lock"] and (run / "train.lock").read_text() == f"{owner}\n"
    assert not (tmp_path / "models").exists()  # not even the export folder


def test_prepare_run_holds_the_lock_while_its_body_runs_and_releases_it_on_error(tmp_path):
    settings = tiny_settings(tmp_path)
    lock = tmp_path / "run" / "train.lock"
    with pytest.raises(RuntimeError, match="stop"):
        with training.prepare_run(settings) as source:
            assert source == "embedded"
            assert lock.read_text() == f"{os.getpid()}\n"
            assert (tmp_path / "models").is_dir()
            raise RuntimeError("stop")
    assert not lock.exists()
    assert os.listdir(tmp_path / "run") == []  # no options, checkpoints or samples


def test_prepare_run_refuses_a_folder_of_another_run_and_releases_the_lock(tmp_path):
    tiny_run(tmp_path, epochs=1, export=False)
    with pytest.raises(ConfigError, match="holds a run with other options.*seed 0 -> 1"):
        with training.prepare_run(tiny_settings(tmp_path, seed=1)):
            pytest.fail("the body must not run for another run's folder")
    assert not (tmp_path / "run" / "train.lock").exists()


def test_resume_restores_the_epoch_and_both_optimizers(tmp_path, capsys):
    tiny_run(tmp_path, epochs=1, export=False)
    capsys.readouterr()
    gan, _ = built(tiny_settings(tmp_path))
    checkpoint, epoch = training.resume(gan, tiny_settings(tmp_path))
    assert epoch == 1 and int(checkpoint.epoch.numpy()) == 1
    assert int(gan.g_optimizer.iterations) == STEPS and int(gan.d_optimizer.iterations) == STEPS
    assert "resuming" in capsys.readouterr().err


def test_resume_of_a_new_folder_starts_at_epoch_zero_and_says_nothing(tmp_path, capsys):
    settings = tiny_settings(tmp_path)
    gan, _ = built(settings)
    checkpoint, epoch = training.resume(gan, settings)
    assert epoch == 0 and checkpoint.manager.latest_checkpoint is None
    assert int(gan.g_optimizer.iterations) == 0
    assert "resuming" not in capsys.readouterr().err


def test_grid_inputs_are_drawn_once_and_kept_in_the_run_folder(tmp_path):
    settings = tiny_settings(tmp_path)
    gan, _ = built(settings)
    os.makedirs(settings.run_dir, exist_ok=True)
    latents, condition = training.sample_grid_inputs(gan, settings)
    assert latents.shape == (settings.recipe.sample_count, gan.latent_dim) and condition is None
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "sample_latents.npy"), latents)
    again, _ = training.sample_grid_inputs(gan, settings)
    np.testing.assert_array_equal(again, latents)


@pytest.mark.parametrize("latent_dim", [None, 0])
def test_a_model_without_latents_gets_none_for_its_grid_and_no_latent_file(tmp_path, latent_dim):
    # CycleGAN's grid comes from `preview(latent, condition)`, which ignores both: a model with
    # no `latent_dim` (or a zero one) and no `sample_condition` is passed None for each.
    model = types.SimpleNamespace() if latent_dim is None else types.SimpleNamespace(latent_dim=0)
    settings = tiny_settings(tmp_path)
    os.makedirs(settings.run_dir)
    assert training.sample_grid_inputs(model, settings) == (None, None)
    assert os.listdir(settings.run_dir) == []


def test_fit_run_and_finish_run_train_the_remaining_epochs_then_export(tmp_path):
    settings = tiny_settings(tmp_path, epochs=1)
    with training.prepare_run(settings) as source:
        data = training.load_run_data(settings, source)
        gan = training.build_model(settings, data)
        checkpoint, epoch = training.resume(gan, settings)
        outcome = training.fit_run(gan, checkpoint, settings, data.dataset, epoch)
        assert outcome.epochs_done == 1 and outcome.steps == STEPS and outcome.divergence is None
        summary = training.finish_run(gan, settings, outcome)
    assert summary.epochs_done == 1 and summary.steps == STEPS
    assert summary.export_path == str(tmp_path / "models" / "dcgan" / "1")
    assert os.path.isfile(tmp_path / "run" / "summary.json")


def test_the_embedded_data_loads_without_a_seed():
    # benchmarks/speed.py loads a model's embedded data this way.
    dataset = training._load_data(training.get_recipe("dcgan"), "embedded", None, None, {})
    assert training.image_shape(training.get_recipe("dcgan"), dataset) == (28, 1)


def test_build_model_seeds_the_weights(tmp_path):
    first, data = built(tiny_settings(tmp_path))
    second, _ = built(tiny_settings(tmp_path))
    other = training.build_model(tiny_settings(tmp_path, seed=1), data)
    weights = [np.concatenate([w.ravel() for w in gan.generator.get_weights()]) for gan in (first, second, other)]
    np.testing.assert_array_equal(weights[0], weights[1])
    assert not np.array_equal(weights[0], weights[2])


def test_a_recipes_cpu_learning_rate_reaches_both_optimizers_and_only_on_a_cpu(tmp_path, monkeypatch):
    settings = training.resolve_settings("wgan-gp", **tiny_options(tmp_path, batch_size=64))
    assert settings.learning_rate == training.get_recipe("wgan-gp").learning_rate_cpu == 1.6e-3
    gan, data = built(settings)
    rates = [float(optimizer.learning_rate) for optimizer in (gan.g_optimizer, gan.d_optimizer)]
    assert rates == pytest.approx([1.6e-3, 1.6e-3])
    # The model's other Adam arguments stay its own (WGAN-GP's betas 0 and 0.9).
    assert float(gan.d_optimizer.beta_1) == 0.0 and float(gan.d_optimizer.beta_2) == 0.9
    assert ", Adam at 0.0016 and n_critic 2 (the CPU settings);" in training._start_line(
        settings, data.dataset, 0
    )
    assert settings.options("embedded")["learning_rate"] == 1.6e-3
    # cGAN has no CPU rate; on a GPU, WGAN-GP keeps its paper's settings.
    assert training.resolve_settings("cgan", **tiny_options(tmp_path)).learning_rate is None
    monkeypatch.setattr(training.tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert training.resolve_learning_rate(training.get_recipe("wgan-gp")) is None


def test_a_cpu_learning_rate_pair_sets_the_generators_and_the_discriminators_each():
    from kerasgan.models.biggan import BigGAN

    rates = training.resolve_learning_rate(training.get_recipe("biggan"))
    assert rates == (3e-4, 4e-4)
    gan = BigGAN.from_preset("tiny", seed=0)
    g_optimizer, d_optimizer = gan.default_optimizers(rates)
    assert float(g_optimizer.learning_rate) == pytest.approx(3e-4)
    assert float(d_optimizer.learning_rate) == pytest.approx(4e-4)
    assert float(g_optimizer.beta_1) == 0.0 and float(d_optimizer.beta_2) == pytest.approx(0.999)
    paper = [float(optimizer.learning_rate) for optimizer in gan.default_optimizers()]
    assert paper == pytest.approx([2e-4, 4e-4])  # compile()'s, and a GPU run's
    assert training._cpu_settings_note(rates, {}) == (
        ", Adam at 0.0003 for G and 0.0004 for D (the CPU setting)"
    )
    assert training._cpu_settings_note(None, {}) == ""


def test_wgan_gp_takes_two_critic_steps_of_32_on_a_cpu_and_the_papers_five_on_a_gpu(tmp_path, monkeypatch):
    options = tiny_options(tmp_path, preset="default", batch_size=None)
    settings = training.resolve_settings("wgan-gp", **options)
    assert settings.model_options == {"n_critic": 2} and settings.batch_size == 64
    gan, data = built(settings)
    assert gan.n_critic == 2  # the default preset's 5, overridden
    with training.prepare_run(settings):
        training.record_run(settings, data)
    for record in ("options.json", "model.json"):
        assert json.load(open(tmp_path / "run" / record))["model_options"] == {"n_critic": 2}
    # An explicit batch is the user's: 2 critic updates of 40 images each.
    assert training.resolve_settings("wgan-gp", **{**options, "batch_size": 80}).batch_size == 80
    # Models without CPU options build their preset as it is.
    assert training.resolve_settings("cgan", **options).model_options == {}
    monkeypatch.setattr(training.tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    on_gpu = training.resolve_settings("wgan-gp", **options)
    assert on_gpu.model_options == {} and on_gpu.batch_size == 160
    assert training.resolve_model_options(training.get_recipe("wgan-gp")) == {}


def test_a_run_folder_recorded_before_model_options_still_resumes_and_exports(tmp_path, monkeypatch):
    run_before_cpu_model_options(tmp_path, monkeypatch)
    run = tmp_path / "run"
    for record in ("options.json", "model.json"):
        payload = json.load(open(run / record))
        del payload["model_options"]
        (run / record).write_text(json.dumps(payload))
    with training.prepare_run(tiny_settings(tmp_path)):
        pass  # no "other options": a missing key means none
    path = training.export_run(str(run), str(tmp_path / "models"))
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    # Recorded model options are part of the run's identity: settings that differ are refused.
    payload = json.load(open(run / "options.json"))
    (run / "options.json").write_text(json.dumps({**payload, "model_options": {"ema_decay": 0.999}}))
    settings = dataclasses.replace(tiny_settings(tmp_path), model_options={})
    with pytest.raises(ConfigError, match="model_options \\{'ema_decay': 0.999\\} -> \\{\\}"):
        with training.prepare_run(settings):
            pytest.fail("the body must not run for another run's folder")


# What a DCGAN run on a machine without a GPU changes: a smaller latent, a lazy R1 penalty and
# samples from G's moving average.
DCGAN_CPU_OPTIONS = {"latent_dim": 16, "r1_gamma": 0.1, "r1_interval": 4, "ema_decay": 0.99}


def test_dcgan_on_a_cpu_draws_from_16_numbers_with_lazy_r1_and_ema_and_on_a_gpu_plays_the_papers_game(
    tmp_path, monkeypatch
):
    from kerasgan import export, serving
    from kerasgan.models.dcgan import DCGAN

    assert training.get_recipe("dcgan").model_options_cpu == DCGAN_CPU_OPTIONS
    summary = tiny_run(tmp_path, epochs=1)
    assert summary.gan.latent_dim == 16 and summary.gan.generator.input_shape == (None, 16)
    assert (summary.gan.r1_gamma, summary.gan.r1_interval) == (0.1, 4)
    assert summary.gan.sampling_generator is summary.gan.generator_ema is not None
    assert DCGAN.from_preset("tiny").latent_dim == 8  # the preset's own, outside `train`
    paper = DCGAN.from_preset("default")
    assert paper.latent_dim == 100 and paper.r1_gamma == 0.0  # the paper's
    assert paper.sampling_generator is paper.generator
    for record in ("options.json", "model.json"):
        assert json.load(open(tmp_path / "run" / record))["model_options"] == DCGAN_CPU_OPTIONS
    assert serving.signature_inputs(summary.export_path) == {"latent": ("float32", (None, 16))}
    # The export is the trained generator: the same images for the same latents.
    z = np.random.default_rng(0).normal(size=(3, 16)).astype("float32")
    predict, _ = export.load_serving_signature(summary.export_path, "predict_float")
    np.testing.assert_allclose(
        predict(latent=z)["images"].numpy(), summary.gan.generate_from_latent(z), atol=1e-5
    )
    settings = tiny_settings(tmp_path / "new")
    assert (
        ", Adam at 0.0016, latent_dim 16, r1_gamma 0.1, r1_interval 4 and ema_decay 0.99"
        " (the CPU settings);"
    ) in training._start_line(
        settings, training.run_real_images(str(tmp_path / "run")), 0
    )
    monkeypatch.setattr(training.tf.config, "list_physical_devices", lambda kind=None: ["GPU:0"])
    assert tiny_settings(tmp_path / "gpu").model_options == {}


def test_build_recorded_model_is_the_runs_model_before_its_first_step(tmp_path):
    settings = tiny_settings(tmp_path, epochs=1, export=False)
    before, data = built(settings)  # the weights `train` starts from
    with training.prepare_run(settings):
        training.record_run(settings, data)
    rebuilt = training.build_recorded_model(settings.run_dir)
    assert rebuilt.latent_dim == before.latent_dim == 16  # the recorded CPU latent
    for network in ("generator", "discriminator"):
        for mine, theirs in zip(getattr(rebuilt, network).get_weights(), getattr(before, network).get_weights()):
            np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ConfigError, match="is not a kerasgan run folder \\(no model.json\\)"):
        training.build_recorded_model(str(tmp_path))


def test_a_resumed_run_keeps_the_model_options_it_was_built_with(tmp_path, monkeypatch, capsys):
    # A DCGAN run begun before the CPU latent (or on a GPU): the preset's latent of 8.
    run_before_cpu_model_options(tmp_path, monkeypatch)
    run = tmp_path / "run"
    assert json.load(open(run / "options.json"))["model_options"] == {}
    capsys.readouterr()
    summary = tiny_run(tmp_path, epochs=2, verbose=1)  # resumed, not refused
    assert summary.epochs_done == 2 and summary.steps == STEPS
    assert summary.gan.latent_dim == 8
    # The start line names the CPU rate, and no latent: the run's model has its preset's.
    err = capsys.readouterr().err
    assert "epochs 2-2" in err and "Adam at 0.0016 (the CPU setting);" in err
    for record in ("options.json", "model.json"):
        assert json.load(open(run / record))["model_options"] == {}
    # Another model or preset in the folder is another run: it is refused for that, not built
    # with this run's options; without checkpoints, a folder starts a new run with today's.
    assert tiny_settings(tmp_path, preset="default").model_options == DCGAN_CPU_OPTIONS
    shutil.rmtree(run / "checkpoints")
    assert tiny_settings(tmp_path).model_options == DCGAN_CPU_OPTIONS


def test_record_run_writes_the_runs_identity_and_how_to_rebuild_it(tmp_path):
    settings = tiny_settings(tmp_path, data="auto")
    with training.prepare_run(settings) as source:
        data = training.load_run_data(settings, source)
        training.record_run(settings, data)
    options = json.load(open(tmp_path / "run" / "options.json"))
    assert options["data"] == "auto" and options["data_source"] == data.source == "embedded"
    assert options["seed"] == 0 and options["precision"] == "float32" and options["epochs"] == 2
    assert options["learning_rate"] == training.get_recipe("dcgan").learning_rate_cpu  # on a CPU
    model = json.load(open(tmp_path / "run" / "model.json"))
    assert (model["model"], model["preset"], model["image_size"], model["channels"]) == ("dcgan", "tiny", 28, 1)
    assert sorted(os.listdir(tmp_path / "run")) == ["model.json", "options.json"]  # no temp files


def test_run_real_images_are_the_data_the_run_resolved_at_its_start(tmp_path):
    settings = tiny_settings(tmp_path, data="auto")
    with pytest.raises(ConfigError, match="is not a kerasgan run folder \\(no options.json\\)"):
        training.run_real_images(str(tmp_path))
    with training.prepare_run(settings) as source:
        data = training.load_run_data(settings, source)
        training.record_run(settings, data)
    real = training.run_real_images(settings.run_dir)
    assert int(real.cardinality()) == int(data.dataset.cardinality()) == 5000
    assert tuple(real.element_spec.shape) == (28, 28, 1)
    first, expected = next(iter(real)), next(iter(data.dataset))
    np.testing.assert_array_equal(first.numpy(), expected.numpy())


def test_completed_run_only_for_a_checkpoint_trained_and_exported(tmp_path, capsys):
    summary = tiny_run(tmp_path, epochs=1)
    gan, _ = built(tiny_settings(tmp_path, epochs=1))
    assert training.completed_run(gan, tiny_settings(tmp_path, epochs=2), 1) is None  # epochs left
    assert training.completed_run(gan, tiny_settings(tmp_path, epochs=1), 0) is None  # not this checkpoint
    done = training.completed_run(gan, tiny_settings(tmp_path, epochs=1), 1)
    assert done.export_path == summary.export_path and done.steps == 0 and done.gan is gan
    assert "already complete (1 of 1 epochs)" in capsys.readouterr().err
    shutil.rmtree(summary.export_path)  # a deleted export is made again
    assert training.completed_run(gan, tiny_settings(tmp_path, epochs=1), 1) is None

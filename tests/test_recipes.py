"""Recipes: one table of every model's CLI defaults, read without importing any model."""

import ast
import inspect
import os
import subprocess
import sys

import pytest

from kerasgan import datasets, export, recipes
from kerasgan.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS_DIR = os.path.join(ROOT, "kerasgan", "models")
PLUMBING = ("kerasgan.export", "kerasgan.datasets", "kerasgan.recipes")


def imported_modules(path):
    """Every module a file imports (`from kerasgan import datasets` counts as kerasgan.datasets)."""
    with open(path) as handle:
        tree = ast.parse(handle.read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("filename", sorted(f for f in os.listdir(MODELS_DIR) if f.endswith(".py")))
def test_model_files_import_no_plumbing(filename):
    imported = imported_modules(os.path.join(MODELS_DIR, filename))
    assert not {name for name in imported if name.startswith(PLUMBING)}


def test_model_files_define_no_recipe_loader_or_export_wiring():
    for filename in os.listdir(MODELS_DIR):
        if filename.endswith(".py"):
            with open(os.path.join(MODELS_DIR, filename)) as handle:
                tree = ast.parse(handle.read())
            names = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
            names |= {t.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
                      for t in node.targets if isinstance(t, ast.Name)}
            leftovers = names & {"RECIPE", "load_data", "image_shape", "serving_functions",
                                 "CycleGANDirection", "export_directions", "mixing_tiles",
                                 "center_crop_resize"}
            assert not leftovers, f"{filename} still defines {sorted(leftovers)}"


def test_listing_the_recipes_imports_no_model():
    script = (
        "import sys\n"
        "from kerasgan import recipes\n"
        "for name in recipes.MODEL_MODULES:\n"
        "    recipe = recipes.get_recipe(name)\n"
        "    print(name, recipe.description, recipe.epochs, recipe.batch_size)\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('kerasgan.models'))\n"
        "assert not loaded, loaded\n"
    )
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) == len(recipes.MODEL_MODULES) == 6


def test_every_recipe_resolves_its_model_loader_and_export():
    from kerasgan.models import DCGAN, WGANGP, BigGAN, ConditionalGAN, CycleGAN, StyleGAN

    classes = {"dcgan": DCGAN, "cgan": ConditionalGAN, "wgan-gp": WGANGP, "stylegan": StyleGAN,
               "biggan": BigGAN, "cyclegan": CycleGAN}
    assert set(recipes.MODEL_MODULES) == set(classes)
    for name, cls in classes.items():
        recipe = recipes.get_recipe(name)
        assert recipe.name == name and recipes.MODEL_MODULES[name] == cls.__module__
        assert recipe.model_class is cls
        assert recipe.presets == tuple(sys.modules[cls.__module__].CONFIGS)
        assert "tiny" in recipe.presets
    assert recipes.get_recipe("biggan").load_data.resolve() is datasets.load_biggan_labelled_images
    assert recipes.get_recipe("stylegan").load_data.resolve() is datasets.load_stylegan_images
    cyclegan = recipes.get_recipe("cyclegan")
    assert cyclegan.load_data.resolve() is datasets.load_cyclegan_pairs
    assert cyclegan.image_shape.resolve() is datasets.cyclegan_pair_shape
    assert cyclegan.export.resolve() is export.export_directions
    # training.py looks for a `seed` parameter to pass the run's seed to the loader
    assert "seed" in inspect.signature(cyclegan.load_data).parameters
    for name in ("dcgan", "cgan", "wgan-gp"):
        assert recipes.get_recipe(name).load_data is None


def test_a_recipe_builds_its_tiny_model():
    model = recipes.get_recipe("dcgan").build("tiny", 28, 1, 0)
    assert type(model).__name__ == "DCGAN" and model.generator.output_shape[1:] == (28, 28, 1)


def test_an_unknown_model_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown model 'gan'; choose one of: biggan, cgan"):
        recipes.get_recipe("gan")

"""Make the README's pictures from real, full-mode training runs.

    python scripts/make_readme_images.py            # all models that have a recipe
    python scripts/make_readme_images.py dcgan      # one model

For each model: trains its default configuration on the embedded data exactly as
`python -m kerasgan train MODEL --data embedded` does (into runs/readme-MODEL, so a rerun resumes
or reuses the finished run), then writes `docs/images/MODEL_samples.png` (a grid drawn by the
exported SavedModel, the way TF Serving would draw it) and `docs/images/MODEL_progress.gif` (the
fixed-latent grids of every epoch).
"""

import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kerasgan import export, plotting, recipes, training  # noqa: E402
from kerasgan.cli import sample_inputs  # noqa: E402

IMAGES = os.path.join(ROOT, "docs", "images")


class _SampleArgs:
    """The options `sample_inputs` reads, as the `sample` command would get them."""

    n, seed, labels, truncation, cols = 64, 0, None, None, None


def make(model):
    summary = training.train(
        model, data="embedded", output=os.path.join(ROOT, "runs", f"readme-{model}"),
        export_dir=os.path.join(ROOT, "saved_models"), export_name=f"readme-{model}", verbose=0,
    )
    print(summary.line())
    os.makedirs(IMAGES, exist_ok=True)
    serve, specs = export.load_serving_signature(summary.export_path)
    if "latent" in specs:
        args = _SampleArgs()
        inputs = sample_inputs(specs, args, export.read_metadata(summary.export_path).get("num_classes"))
        images = serve(**inputs)["images"].numpy()
        path = os.path.join(IMAGES, f"{model}_samples.png")
        plotting.save_image(plotting.image_grid(images, cols=args.cols), path, scale=2)
        print("wrote", path)
    gif = os.path.join(summary.run_dir, "progress.gif")
    if os.path.exists(gif):
        shutil.copyfile(gif, os.path.join(IMAGES, f"{model}_progress.gif"))
        print("wrote", os.path.join(IMAGES, f"{model}_progress.gif"))


def main():
    models = sys.argv[1:] or list(recipes.MODEL_MODULES)
    for model in models:
        make(model)


if __name__ == "__main__":
    main()

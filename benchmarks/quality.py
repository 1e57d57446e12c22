"""Quality per CPU minute: every course model, trained for the same wall-clock budget, judged alike.

    python benchmarks/quality.py                        # every model, 180 s each (~4 min per model)
    python benchmarks/quality.py --models dcgan --budget 60
    python benchmarks/quality.py --images docs/images   # also keep each run's pictures

For each model registered in `kerasgan.recipes.MODEL_MODULES` (a model whose module fails to
import is skipped with a note), train the default preset exactly as `python -m kerasgan train
MODEL --data embedded --time-budget BUDGET` would (precision policy `auto`), in a temporary run
folder, then score `--n` samples against as many real images of the model's own embedded
dataset with the offline judge (a small MNIST classifier shipped in `data/judges/`):

* FD-judge: the Fréchet distance between judge features of samples and real images (FID's
  formula in the judge's 128-d feature space; lower is better; not comparable with Inception
  FIDs, and biased upward at small n, so compare rows at the same n);
* KID: the unbiased kernel distance in the same space, mean ± std over 100 subsets;
* read confidently (unconditional digit models): the share of samples whose most likely class
  the judge gives more than 0.9, a count of "recognisable digits" for grids too large to read
  cell by cell (real MNIST digits: about 98%);
* class as asked (class-conditional digit models): the share the judge reads as the class asked.

Coloured digits (StyleGAN) are judged by their ink: each pixel's colour distance from the image's
background (`evaluation.ink_images`), for real and generated images alike, so the judge reads the
shapes they draw. Models whose samples are not digits, or that draw no samples from a latent
(CycleGAN translates images), get "n/a" with the reason. Speed is images per second from the median step time, so
the VM's occasional stalls do not count; CPU contention from other processes does, so quote the
machine's load with the figures.
"""

import argparse
import glob
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from kerasgan import datasets, evaluation, recipes, training  # noqa: E402

DIGIT_DATASETS = ("mnist", "digits")
# Coloured digits are judged by their ink (`evaluation.ink_images`: each pixel's colour distance
# from the background), real and generated alike. Read by their luma, the random backgrounds put
# both far outside what the judge learned, and StyleGAN's blob-like samples scored "better" than
# any digit model.
INK_DATASETS = ("colored_mnist",)
# Enough epochs that the time budget, not the epoch count, ends every run.
EPOCHS = 100_000


def real_images(recipe, image_size=None):
    """The model's own training images, from the embedded copy (no network), at `image_size`
    (default: the model's)."""
    if recipe.load_data is not None:
        return recipe.load_data("embedded", image_size, None)
    return datasets.load(recipe.dataset, source="embedded", image_size=image_size)


def class_accuracy(gan, judge, n, seed):
    """The share of `n` class-conditional samples (labels 0-9 in turn) the judge reads as the
    class they were asked for."""
    labels = np.arange(n) % gan.num_classes
    images = gan.generate(n, seed=seed, labels=labels)
    return float(np.mean(np.asarray(judge.classify(images)).argmax(axis=1) == labels))


# The judge's top-class probability above which a sample counts as a recognisable digit.
CONFIDENT = 0.9


def confident_share(probabilities):
    """The share of images whose most likely class has a probability above `CONFIDENT`
    (`probabilities`: the judge's `[N, classes]`)."""
    return float(np.mean(np.asarray(probabilities).max(axis=1) > CONFIDENT))


def read_confidently(gan, judge, n, seed):
    """The share of `n` samples the judge reads confidently (`confident_share`)."""
    return confident_share(judge.classify(gan.generate(n, seed=seed)))


def not_applicable(recipe, gan):
    """Why the offline judge cannot score this model (None when it can)."""
    if getattr(gan, "latent_dim", None) is None or hasattr(gan, "translate"):
        return "n/a: draws no samples from a latent (translates images)"
    if recipe.dataset not in DIGIT_DATASETS + INK_DATASETS:
        return f"n/a: samples are {recipe.dataset}, not digits"
    return None


def keep_pictures(run_dir, name, images_dir):
    """Copy a run's last sample grid and its progress GIF to `images_dir`."""
    os.makedirs(images_dir, exist_ok=True)
    grids = sorted(glob.glob(os.path.join(run_dir, "samples", "epoch_*.png")))
    pictures = {f"{name}_samples.png": grids[-1] if grids else None,
                f"{name}_progress.gif": os.path.join(run_dir, "progress.gif")}
    for target, source in pictures.items():
        if source and os.path.exists(source):
            shutil.copyfile(source, os.path.join(images_dir, target))
            print(f"wrote {os.path.join(images_dir, target)}", file=sys.stderr)


def benchmark(
    name, budget, n, seed, judge, images_dir=None, preset="default", picture_name=None,
    precision="auto", batch_size=None, image_size=None, epochs=None,
):
    """One table row for model `name` (a dict), or a row with a note.

    `preset` is the model's configuration, `precision` its policy (as `--precision`),
    `batch_size` its images per step and `image_size` its images' height and width (default:
    the recipe's);
    `picture_name` names the kept pictures (default: the model's name); `epochs`, when given,
    trains that many epochs instead of `budget` seconds (the same updates on any machine)."""
    try:
        recipe = recipes.get_recipe(name)
    except Exception as error:  # a model still being written, or a missing dependency
        return {"model": name, "note": f"skipped: cannot import ({type(error).__name__}: {error})"}
    with tempfile.TemporaryDirectory(prefix=f"quality-{name}-") as run_dir:
        summary = training.train(
            name, data="embedded", epochs=epochs or EPOCHS,
            time_budget=None if epochs else budget, output=run_dir,
            export=False, seed=seed, verbose=0, preset=preset, precision_policy=precision,
            batch_size=batch_size, image_size=image_size,
        )
        if images_dir:
            keep_pictures(run_dir, picture_name or name, images_dir)
    row = {
        "model": name,
        "budget": budget,
        "steps": summary.steps,
        "images_per_second": summary.images_per_second,
        "precision": summary.precision,
    }
    reason = not_applicable(recipe, summary.gan)
    if reason:
        return {**row, "note": reason}
    real, fake = evaluation.judged_sources(
        real_images(recipe, image_size), summary.gan.generate,
        ink=recipe.dataset in INK_DATASETS, seed=seed,
    )
    results = evaluation.evaluate(real, fake, judge, n=n, metrics=("fid", "kid"), seed=seed)
    row = {**row, "fd_judge": results["fid"], "kid": results["kid"], "kid_std": results["kid_std"]}
    if recipe.with_labels and recipe.dataset in DIGIT_DATASETS:
        row["class_accuracy"] = class_accuracy(summary.gan, judge, n, seed)
    elif recipe.dataset in DIGIT_DATASETS:
        row["read_confidently"] = read_confidently(summary.gan, judge, n, seed)
    return row


# A row's judged shares (keys of `benchmark`'s rows) and how tables name them.
JUDGED_SHARES = {"class_accuracy": "class as asked", "read_confidently": "read confidently"}


def judged_shares(row):
    """The row's judged shares as text: "  class as asked 99.2%", "  read confidently 61.0%"."""
    return "".join(f"  {label} {row[key]:.1%}" for key, label in JUDGED_SHARES.items() if key in row)


def format_table(rows, n):
    header = f"{'model':<10} {'budget':>7} {'steps':>7} {'images/s':>9} {'FD-judge':>9}  KID (n={n})"
    lines = [header, "-" * len(header)]
    for row in rows:
        if "steps" not in row:
            lines.append(f"{row['model']:<10} {row['note']}")
            continue
        start = (
            f"{row['model']:<10} {row['budget']:>6.0f}s {row['steps']:>7,} "
            f"{row['images_per_second']:>9,.0f}"
        )
        if "fd_judge" in row:
            lines.append(
                f"{start} {row['fd_judge']:>9.2f}  {row['kid']:.4f} ± {row['kid_std']:.4f}"
                f"{judged_shares(row)}"
            )
        else:
            lines.append(f"{start} {'n/a':>9}  {row['note']}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=180, help="training seconds per model (default: 180)")
    parser.add_argument("--n", type=int, default=2000, help="samples (and real images) per model (default: 2000)")
    parser.add_argument("--models", help="comma-separated subset (default: every registered model)")
    parser.add_argument("--seed", type=int, default=0, help="seed of training and sampling (default: 0)")
    parser.add_argument("--images", metavar="DIR", help="keep each run's last sample grid and GIF in DIR")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else list(recipes.MODEL_MODULES)
    judge = evaluation.offline_judge()
    rows = []
    for name in names:
        print(f"training {name} for {args.budget:.0f} s ...", file=sys.stderr, flush=True)
        rows.append(benchmark(name.strip(), args.budget, args.n, args.seed, judge, args.images))
        print(format_table(rows[-1:], args.n).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"== quality after {args.budget:.0f} s of CPU training per model (embedded data, default "
          f"presets, offline judge, n={args.n}) ==")
    print(format_table(rows, args.n))
    precisions = sorted({row["precision"] for row in rows if "precision" in row})
    if precisions:
        print(f"precision policy: {', '.join(precisions)}; {os.cpu_count()} CPU cores")


if __name__ == "__main__":
    main()

"""Weight initialisation of DCGAN and CycleGAN: the papers' N(0, 0.02) against Keras's Glorot uniform.

    python benchmarks/init.py                              # both models, 120 s per run, seeds 0 and 1
    python benchmarks/init.py --models dcgan --budget 60 --seeds 0

Radford et al. (DCGAN) and the CycleGAN reference code initialise every kernel from a zero-centred
normal with standard deviation 0.02; Keras layers default to Glorot uniform. Each run trains the
model's default preset exactly as `python -m kerasgan train MODEL --data embedded --time-budget
BUDGET` would (precision `auto`), with one initialiser for every kernel, and is judged by the
offline judge:

* DCGAN as `benchmarks/quality.py` does: FD-judge and KID of 2,000 samples against real digits;
* CycleGAN on its translation 8x8 digits -> MNIST: the share of G(a) that the judge reads as the
  digit of `a` (all 1,797 embedded 8x8 digits; higher is better), and the FD-judge of those
  translations against MNIST digits.

The packages' defaults are whichever scores better; the figures go to `benchmarks/README.md`.
"""

import argparse
import dataclasses
import importlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import quality  # noqa: E402  (benchmarks/quality.py, beside this file)

from kerasgan import datasets, evaluation, recipes, training  # noqa: E402

MODELS = {
    "dcgan": "kerasgan.models.dcgan:DCGAN",
    "cyclegan": "kerasgan.models.cyclegan:CycleGAN",
}


def register(model, label, initializer):
    """A recipe `<model>-<label>`: the default preset with every kernel drawn by `initializer`."""
    base = recipes.RECIPES[model]
    model_class = recipes.LazyFunction(MODELS[model]).resolve()

    def build(preset, image_size, channels, seed):
        return model_class.from_preset(
            preset, image_size=image_size, channels=channels, seed=seed,
            kernel_initializer=initializer,
        )

    name = f"{model}-{label}"
    recipes.RECIPES[name] = dataclasses.replace(base, name=name, build=build)
    return name


def initializers(model):
    """`{label: initializer}`: Keras's default and the model module's `PAPER_KERNEL_INITIALIZER`."""
    module = importlib.import_module(MODELS[model].split(":")[0])
    return {"glorot": "glorot_uniform", "normal-0.02": module.PAPER_KERNEL_INITIALIZER}


def cyclegan_row(name, budget, seed, judge):
    """Train CycleGAN `name` for `budget` seconds; judge its translations of the 8x8 digits."""
    with tempfile.TemporaryDirectory(prefix=f"init-{name}-") as run_dir:
        summary = training.train(
            name, data="embedded", epochs=quality.EPOCHS, time_budget=budget, output=run_dir,
            export=False, seed=seed, verbose=0,
        )
    digits, labels = datasets.load_arrays("digits")
    a = np.stack(list(datasets.from_arrays(digits, image_size=32, channels=1).as_numpy_iterator()))
    translated = summary.gan.translate(a, "a2b")
    accuracy = float(np.mean(judge.classify(translated).argmax(axis=1) == labels))
    real = datasets.in_fixed_random_order(datasets.load("mnist", source="embedded"), seed)
    fd = evaluation.evaluate(real, translated, judge, n=len(translated), metrics=("fid",), seed=seed)
    return {"steps": summary.steps, "images_per_second": summary.images_per_second,
            "accuracy": accuracy, "fd_judge": fd["fid"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="dcgan,cyclegan", help="dcgan, cyclegan or both")
    parser.add_argument("--budget", type=float, default=120, help="training seconds per run (default: 120)")
    parser.add_argument("--n", type=int, default=2000, help="DCGAN samples per run (default: 2000)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default: 0,1)")
    args = parser.parse_args()
    judge = evaluation.offline_judge()
    lines = []
    for model in args.models.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            for label, initializer in initializers(model).items():
                name = register(model, label, initializer)
                print(f"training {name} (seed {seed}) for {args.budget:.0f} s ...", file=sys.stderr,
                      flush=True)
                if model == "dcgan":
                    row = quality.benchmark(name, args.budget, args.n, seed, judge)
                    line = (f"{name:<22} seed {seed}  {row['steps']:>6,} steps  "
                            f"{row['images_per_second']:>6,.0f} images/s  FD-judge {row['fd_judge']:7.2f}  "
                            f"KID {row['kid']:.4f} ± {row['kid_std']:.4f}")
                else:
                    row = cyclegan_row(name, args.budget, seed, judge)
                    line = (f"{name:<22} seed {seed}  {row['steps']:>6,} steps  "
                            f"{row['images_per_second']:>6,.0f} pairs/s  G(a) read as a's digit "
                            f"{row['accuracy']:.1%}  FD-judge {row['fd_judge']:7.2f}")
                print(line, file=sys.stderr, flush=True)
                lines.append(line)
    print(f"== initialisers after {args.budget:.0f} s per run (embedded data, offline judge) ==")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

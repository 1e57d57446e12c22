"""DCGAN's weight initialisation: the paper's N(0, 0.02) against Keras's Glorot uniform, at equal time.

    python benchmarks/init.py                     # both, 120 s each, seeds 0 and 1
    python benchmarks/init.py --budget 60 --seeds 0

Radford et al. initialise every weight from a zero-centred normal with standard deviation 0.02;
Keras layers default to Glorot uniform. Each run trains the default DCGAN preset exactly as
`benchmarks/quality.py` does (`training.train`, embedded digits, precision `auto`, a time budget)
with one initialiser for every kernel, and is judged the same way (FD-judge and KID against the
real digits with the offline judge). The package's default is whichever scores better; the
figures go to `benchmarks/README.md`.
"""

import argparse
import dataclasses
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import quality  # noqa: E402  (benchmarks/quality.py, beside this file)

from kerasgan import evaluation, recipes  # noqa: E402
from kerasgan.models.dcgan import PAPER_KERNEL_INITIALIZER  # noqa: E402

INITIALIZERS = {"glorot": "glorot_uniform", "normal-0.02": PAPER_KERNEL_INITIALIZER}


def register(label, initializer):
    """A recipe `dcgan-<label>`: the default DCGAN with every kernel drawn by `initializer`."""
    from kerasgan.models.dcgan import DCGAN

    def build(preset, image_size, channels, seed):
        return DCGAN.from_preset(
            preset, image_size=image_size, channels=channels, seed=seed,
            kernel_initializer=initializer,
        )

    name = f"dcgan-{label}"
    recipes.RECIPES[name] = dataclasses.replace(recipes.RECIPES["dcgan"], name=name, build=build)
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=120, help="training seconds per run (default: 120)")
    parser.add_argument("--n", type=int, default=2000, help="samples per run (default: 2000)")
    parser.add_argument("--seeds", default="0,1", help="comma-separated seeds (default: 0,1)")
    args = parser.parse_args()
    judge = evaluation.offline_judge()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for label, initializer in INITIALIZERS.items():
            name = register(label, initializer)
            print(f"training {name} (seed {seed}) for {args.budget:.0f} s ...", file=sys.stderr, flush=True)
            row = quality.benchmark(name, args.budget, args.n, seed, judge)
            rows.append({**row, "model": f"{label} s{seed}"})
            print(quality.format_table(rows[-1:], args.n).splitlines()[-1], file=sys.stderr, flush=True)
    print(f"== DCGAN initialisers after {args.budget:.0f} s each (embedded digits, offline judge) ==")
    print(quality.format_table(rows, args.n))


if __name__ == "__main__":
    main()

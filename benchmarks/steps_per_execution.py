"""Training throughput against `steps_per_execution`: how many steps one call of the train function runs.

    python benchmarks/steps_per_execution.py                         # dcgan, wgan-gp, stylegan, biggan
    python benchmarks/steps_per_execution.py --models dcgan --values 1 4 16 --budget 30

A course model's step on a CPU is small: much of its time is Python, `fit`'s per-batch
callbacks and TensorFlow's op dispatch around the kernels. `Model.compile(steps_per_execution=N)`
runs N steps inside one call of the compiled function, so that overhead is paid once per N
steps. This trains each model exactly as `python -m kerasgan train MODEL --data embedded
--time-budget BUDGET --steps-per-execution N` would (precision `auto`, the default preset and
batch, every callback of a real run), for each N in turn, `--rounds` times in alternating order
so that a change of load on the machine slows every setting alike, and prints the steps done and
the images per second (median step time, as `training.train` reports it).

The recipes' `steps_per_execution_cpu` (what `--steps-per-execution auto` uses on a CPU) come
from this table; the figures, with their machine, are in benchmarks/README.md.
"""

import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from kerasgan import course, training  # noqa: E402

MODELS = ("dcgan", "wgan-gp", "stylegan", "biggan")


def run(model, steps_per_execution, budget, seed):
    """One budgeted run: (steps done, images per second)."""
    with tempfile.TemporaryDirectory(prefix=f"spe-{model}-") as run_dir:
        summary = training.train(
            model, data="embedded", epochs=100_000, time_budget=budget, output=run_dir,
            export=False, seed=seed, verbose=0, steps_per_execution=steps_per_execution,
        )
    return summary.steps, summary.images_per_second, summary.precision


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=list(MODELS), metavar="MODEL")
    parser.add_argument("--values", nargs="+", type=int, default=[1, 8, 16], metavar="N",
                        help="steps per execution to compare (default: 1 8 16)")
    parser.add_argument("--budget", type=float, default=30.0, help="seconds per run (default: 30)")
    parser.add_argument("--rounds", type=int, default=2, help="runs per setting (default: 2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    print(f"machine: {course.hardware().describe()}; budget {args.budget:g} s per run, "
          f"{args.rounds} round(s), alternating order\n")
    print("| model | precision | steps per execution | steps in budget | images/s (median step) |")
    print("|---|---|---|---|---|")
    for model in args.models:
        measured = {value: [] for value in args.values}
        for round_number in range(args.rounds):
            order = args.values if round_number % 2 == 0 else list(reversed(args.values))
            for value in order:
                steps, speed, policy = run(model, value, args.budget, args.seed)
                measured[value].append((steps, speed))
                print(f"  {model} x{value}: {steps} steps, {speed:,.0f} images/s", file=sys.stderr)
        for value in args.values:
            steps = statistics.median(s for s, _ in measured[value])
            speed = statistics.median(v for _, v in measured[value])
            print(f"| {model} | {policy} | {value} | {steps:,.0f} | {speed:,.0f} |")


if __name__ == "__main__":
    main()

"""Quality levers against the same wall-clock budget: which preset options buy quality per second.

    python benchmarks/levers.py --model dcgan --levers baseline ema augment ema+augment
    python benchmarks/levers.py --model wgan-gp --levers baseline ema n_critic=5 --budget 120
    python benchmarks/levers.py --model dcgan --levers baseline ema --images /tmp/grids
    python benchmarks/levers.py --model dcgan --levers baseline r1_gamma=0 --epochs 20

Each lever is a set of preset options (`LEVERS`, joined with `+`; `key=value` sets any option
of the model's preset, e.g. `n_critic=5`; `precision=float32`, `batch_size=64` and
`image_size=16` set the run's precision policy, batch size and image size (the judge's real
images follow it), `g_learning_rate=1e-4` or `d_beta_1=0` an argument of G's or D's Adam). For
every lever and seed, the model is trained exactly as `benchmarks/quality.py` trains it
(`python -m kerasgan train MODEL --data embedded --time-budget BUDGET`, precision `auto`) with
the lever's options on top of the default preset, and its samples are judged by the offline
judge (FD-judge, lower is better; for unconditional digit models also the share of samples the
judge reads confidently, `quality.read_confidently`). Seeds alternate
order per round, so a change of load on the machine slows every lever alike. The table gives the
median and range of FD-judge over seeds; a lever "wins" when its worst seed beats the baseline's
median. The figures, with their machine and date, are in benchmarks/README.md.
"""

import argparse
import ast
import contextlib
import dataclasses
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import importlib  # noqa: E402

import quality  # noqa: E402

from kerasgan import course, evaluation, recipes  # noqa: E402

# Named levers: preset options on top of the model's default preset.
LEVERS = {
    "baseline": {},
    # The generator's moving average (sampled and exported), warmed up over the first steps.
    "ema": {"ema_decay": 0.999},
    "ema0.99": {"ema_decay": 0.99},
    # DiffAugment (Zhao et al., 2020) on every image D sees.
    "augment": {"augmentation": "translation,cutout"},
    "augment-color": {"augmentation": "color,translation,cutout"},
    # The precision policy (`auto` is mixed_bfloat16 on a CPU with AMX).
    "float32": {"precision": "float32"},
    "bfloat16": {"precision": "mixed_bfloat16"},
    # Learning rates (in place of the recipe's CPU rate, if it has one): both networks at 2x or
    # 4x the default of DCGAN and WGAN-GP (2e-4), D's alone at 2x (two time-scales, Heusel et
    # al., 2017), or both at the default.
    "lr2x": {"g_learning_rate": 4e-4, "d_learning_rate": 4e-4},
    "lr4x": {"g_learning_rate": 8e-4, "d_learning_rate": 8e-4},
    "ttur": {"d_learning_rate": 4e-4},
    "lr-default": {"g_learning_rate": 2e-4, "d_learning_rate": 2e-4},
}


# Lever options that are not preset options: the run's precision policy, batch size and image
# size, and the optimizers' Adam arguments (`g_learning_rate`, `d_beta_1`, ...: G's or D's).
RUN_OPTIONS = ("precision", "batch_size", "image_size")
ADAM_PREFIXES = ("g_", "d_")


def lever_options(spec):
    """`"ema+n_critic=2"` -> `{"ema_decay": 0.999, "n_critic": 2}` (run and Adam options included).

    Raises:
        SystemExit: an unknown lever name (the message lists them).
    """
    options = {}
    for part in spec.split("+"):
        if "=" in part:
            key, _, value = part.partition("=")
            try:
                options[key] = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                options[key] = value
        elif part in LEVERS:
            options.update(LEVERS[part])
        else:
            raise SystemExit(f"unknown lever {part!r}; choose from {', '.join(LEVERS)} or key=value")
    return options


def split_options(options):
    """`(preset options, run options, (G's Adam arguments, D's))` of one lever's options."""
    preset, run, adam = {}, {}, ({}, {})
    for key, value in options.items():
        if key in RUN_OPTIONS:
            run[key] = value
        elif key.startswith(ADAM_PREFIXES) and key[2:] in ("learning_rate", "beta_1", "beta_2"):
            adam[ADAM_PREFIXES.index(key[:2])][key[2:]] = value
        else:
            preset[key] = value
    return preset, run, adam


def register_preset(model, spec, preset_options):
    """Add the lever as a preset of the model's module (this process only); its name."""
    configs = importlib.import_module(recipes.get_recipe(model).model_module).CONFIGS
    name = f"lever:{spec}"
    configs[name] = {**configs["default"], **preset_options}
    return name


@contextlib.contextmanager
def recipe_replaced(model, **changes):
    """Train `model` with its recipe's fields replaced by `changes` (this process only)."""
    recipe = recipes.get_recipe(model)
    recipes.RECIPES[model] = dataclasses.replace(recipe, **changes)
    try:
        yield
    finally:
        recipes.RECIPES[model] = recipe


@contextlib.contextmanager
def cpu_model_options_aside(model, preset_options):
    """Train `model` without the recipe's CPU model options that the lever sets itself, and
    without its CPU batch size (`Recipe.batch_size_cpu` goes with those options: WGAN-GP's is
    2 critic updates of 32), so that `n_critic=5` trains the paper's 5 x 32."""
    cpu_options = recipes.get_recipe(model).model_options_cpu
    if not set(preset_options) & set(cpu_options):
        yield
        return
    kept = {key: value for key, value in cpu_options.items() if key not in preset_options}
    with recipe_replaced(model, model_options_cpu=kept, batch_size_cpu=None):
        yield


@contextlib.contextmanager
def adam_settings(model, settings):
    """Train `model` with its class's default Adam arguments updated by `settings` (G's, D's).

    When a lever sets any, the recipe's CPU learning rate (`Recipe.learning_rate_cpu`) steps
    aside for the run, so that the lever's arguments are the ones trained with."""
    if not any(settings):
        yield
        return
    model_class = recipes.get_recipe(model).model_class
    before = model_class.__dict__.get("default_adam_settings")
    model_class.default_adam_settings = tuple(
        {**default, **changed}
        for default, changed in zip(model_class.default_adam_settings, settings)
    )
    try:
        with recipe_replaced(model, learning_rate_cpu=None):
            yield
    finally:
        if before is None:
            del model_class.default_adam_settings
        else:
            model_class.default_adam_settings = before


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dcgan")
    parser.add_argument("--levers", nargs="+", default=["baseline", "ema", "augment"])
    parser.add_argument("--budget", type=float, default=120.0, help="seconds per run (default: 120)")
    parser.add_argument(
        "--epochs", type=int,
        help="train this many epochs instead of --budget seconds: every lever takes the same "
        "updates however busy the machine is (its cost in time is then not measured)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=2000, help="samples judged per run (default: 2000)")
    parser.add_argument("--images", metavar="DIR", help="keep each run's last sample grid in DIR")
    args = parser.parse_args()

    levers = {spec: lever_options(spec) for spec in args.levers}
    plans = {}
    for spec, options in levers.items():
        preset_options, run, adam = split_options(options)
        plans[spec] = (register_preset(args.model, spec, preset_options), run, adam, preset_options)
    judge = evaluation.offline_judge()
    length = f"{args.epochs} epochs" if args.epochs else f"{args.budget:g} s"
    print(f"machine: {course.hardware().describe()}; {args.model}, {length} per run, "
          f"seeds {args.seeds}, n={args.n}\n")
    results = {spec: [] for spec in args.levers}
    for index, seed in enumerate(args.seeds):
        order = args.levers if index % 2 == 0 else list(reversed(args.levers))
        for spec in order:
            picture = f"{args.model}_{spec.replace('=', '')}_seed{seed}"
            preset, run, adam, preset_options = plans[spec]
            with adam_settings(args.model, adam), cpu_model_options_aside(args.model, preset_options):
                row = quality.benchmark(
                    args.model, args.budget, args.n, seed, judge, args.images,
                    preset=preset, picture_name=picture,
                    precision=run.get("precision", "auto"), batch_size=run.get("batch_size"),
                    image_size=run.get("image_size"), epochs=args.epochs,
                )
            if "fd_judge" not in row:
                raise SystemExit(f"{args.model} {spec}: {row.get('note')}")
            results[spec].append(row)
            print(f"  {spec} seed {seed}: {row['steps']} steps, FD-judge {row['fd_judge']:.1f}"
                  f"{quality.judged_shares(row)}", file=sys.stderr, flush=True)
    # The judged share every row has: the class asked for (conditional models) or the samples
    # read confidently (unconditional digit models).
    shares = [key for key in quality.JUDGED_SHARES
              if all(key in row for rows in results.values() for row in rows)]
    print("| lever | options | steps (median) | FD-judge median | FD-judge range |"
          + "".join(f" {quality.JUDGED_SHARES[key]} (median) |" for key in shares))
    print("|---|---|---|---|---|" + "---|" * len(shares))
    for spec, rows in results.items():
        scores = [row["fd_judge"] for row in rows]
        steps = statistics.median(row["steps"] for row in rows)
        judged = "".join(f" {statistics.median(row[key] for row in rows):.1%} |" for key in shares)
        print(f"| {spec} | {levers[spec] or 'default preset'} | {steps:,.0f} | "
              f"{statistics.median(scores):.1f} | {min(scores):.1f}-{max(scores):.1f} |{judged}")


if __name__ == "__main__":
    main()

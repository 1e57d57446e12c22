"""The command line: `python -m kerasgan train|sample|export ...`.

User mistakes (unknown model, missing data, bad numbers, unwritable folders) end with one line
on stderr and exit code 2, never a traceback. Each command is a pair of functions: `add_*`
declares its arguments, `run_*` does the work by calling the package.
"""

import argparse
import os
import sys

from kerasgan.utils import notice

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and a pointer to --help), exit code 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"kerasgan: error: {message} (see '{self.prog} --help')\n")


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


# === train ===


def add_train(subparsers):
    from kerasgan.precision import POLICIES
    from kerasgan.recipes import MODEL_MODULES, get_recipe

    models = "\n".join(
        f"  {name:<10} {get_recipe(name).description}" for name in MODEL_MODULES
    )
    parser = subparsers.add_parser(
        "train",
        help="train a model (resumes an interrupted run), then export its generator",
        description=(
            "Train a model in a run folder and export it for TF Serving. Running the same "
            "command again resumes from the last checkpoint.\n\nmodels:\n" + models
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="which model to train: " + ", ".join(MODEL_MODULES))
    parser.add_argument(
        "--data",
        default="auto",
        help="auto (tensorflow-datasets, or the embedded copy in data/ when offline), tfds, "
        "embedded, or an image folder (default: auto)",
    )
    parser.add_argument("--epochs", type=positive_int, help="epochs in total (default: the model's)")
    parser.add_argument("--batch-size", type=positive_int, help="images per step (default: the model's)")
    parser.add_argument(
        "--time-budget",
        type=positive_float,
        metavar="SECONDS",
        help="stop training after this many seconds; samples, checkpoint and export still happen",
    )
    parser.add_argument("--output", help="run folder (default: runs/MODEL)")
    parser.add_argument("--export-dir", default="saved_models", help="TF Serving model base folder (default: saved_models)")
    parser.add_argument("--no-export", action="store_true", help="do not export at the end")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--preset", default="default", help="model configuration: default or tiny (default: default)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=POLICIES,
        help="numeric policy; auto picks mixed_float16 on tensor-core GPUs, mixed_bfloat16 on "
        "CPUs with AMX/AVX512-BF16, else float32 (default: auto)",
    )
    parser.add_argument(
        "--image-size", "--resolution", type=positive_int, dest="image_size",
        help="image height and width (default: the dataset's)",
    )
    parser.add_argument("--channels", type=int, choices=(1, 3), help="image channels (default: the dataset's)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    parser.set_defaults(handler=run_train)


def run_train(args):
    from kerasgan import recipes, training

    recipes.get_recipe(args.model)  # an unknown model fails before anything is loaded
    options = {
        "data": args.data,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "output": args.output,
        "export_dir": args.export_dir,
        "time_budget": args.time_budget,
        "seed": args.seed,
        "preset": args.preset,
        "precision_policy": args.precision,
        "image_size": args.image_size,
        "channels": args.channels,
        "export": not args.no_export,
    }
    if args.dry_run:
        import json

        print(json.dumps({"model": args.model, **options}, indent=2))
        return 0
    summary = training.train(args.model, **options)
    print(summary.line())
    return 0


# === sample ===


def add_sample(subparsers):
    parser = subparsers.add_parser(
        "sample",
        help="draw an image grid from an exported model",
        description="Draw a grid of images from a SavedModel export (the newest version when "
        "given a model folder), exactly as TF Serving would run it.",
    )
    parser.add_argument("model_dir", help="an export folder, e.g. saved_models/dcgan or saved_models/dcgan/3")
    parser.add_argument("--n", type=positive_int, default=64, help="number of images (default: 64)")
    parser.add_argument("--out", default="samples.png", help="PNG file to write (default: samples.png)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (default: 0)")
    parser.add_argument("--cols", type=positive_int, help="images per row (default: square)")
    parser.add_argument("--scale", type=positive_int, default=2, help="pixel enlargement of the PNG (default: 2)")
    parser.add_argument(
        "--labels",
        help="class-conditional models: comma-separated class ids, e.g. 0,1,2 (one row of "
        "samples per class; default: every class)",
    )
    parser.add_argument(
        "--truncation", type=float,
        help="truncation of models that take one (StyleGAN psi, BigGAN threshold; default 1.0)",
    )
    parser.set_defaults(handler=run_sample)


def parse_labels(text):
    """`"0,1,2"` -> [0, 1, 2], with a clear error for anything else."""
    from kerasgan.errors import ConfigError

    try:
        labels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--labels must be comma-separated whole numbers, got {text!r}") from None
    if not labels:
        raise ConfigError("--labels is empty")
    return labels


def sample_inputs(specs, args, num_classes=None):
    """The request for a sampling signature: latent (seeded), labels and truncation as needed.

    Class-conditional models draw `--n` images per label, a row each (`--n` defaults to 64:
    8 per class over the first classes when no labels are given).
    """
    import numpy as np

    from kerasgan.errors import ConfigError

    latent_dim = specs["latent"].shape[-1]
    inputs = {}
    n = args.n
    if "labels" in specs:
        if args.labels:
            labels = parse_labels(args.labels)
        else:
            labels = list(range(num_classes or 10))
        if num_classes is not None and not all(0 <= label < num_classes for label in labels):
            raise ConfigError(f"--labels must be between 0 and {num_classes - 1}, got {args.labels}")
        per_label = max(1, n // len(labels))
        inputs["labels"] = np.repeat(np.asarray(labels, "int32"), per_label)
        n = len(inputs["labels"])
        args.cols = args.cols or per_label
    elif args.labels:
        raise ConfigError("this model is not class-conditional; drop --labels")
    for name in ("truncation_psi", "truncation"):
        if name in specs:
            inputs[name] = np.float32(1.0 if args.truncation is None else args.truncation)
    if args.truncation is not None and not any(k in specs for k in ("truncation_psi", "truncation")):
        raise ConfigError("this model takes no truncation; drop --truncation")
    rng = np.random.default_rng(args.seed)
    inputs["latent"] = rng.standard_normal((n, latent_dim)).astype("float32")
    return inputs


def run_sample(args):
    from kerasgan import export, plotting
    from kerasgan.errors import ConfigError

    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out must be a .png file, got {args.out}")
    out_parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_parent):
        raise ConfigError(f"the folder of --out does not exist: {out_parent}")
    function, specs = export.load_serving_signature(args.model_dir)
    if "latent" not in specs:
        raise ConfigError(
            f"{args.model_dir} does not draw samples from a latent (its inputs: "
            f"{', '.join(specs)}); see 'python -m kerasgan --help' for its command"
        )
    metadata = export.read_metadata(args.model_dir)
    inputs = sample_inputs(specs, args, metadata.get("num_classes"))
    try:
        images = function(**inputs)["images"].numpy()
    except Exception as error:  # the graph's own validation (e.g. label range) speaks here
        message = getattr(error, "message", str(error)).strip().splitlines()[0]
        raise ConfigError(f"the model rejected the request: {message}") from None
    plotting.save_image(plotting.image_grid(images, cols=args.cols), args.out, scale=args.scale)
    print(f"wrote {len(images)} samples from {export.resolve_saved_model(args.model_dir)} to {args.out}")
    return 0


# === course ===


def add_course(subparsers):
    parser = subparsers.add_parser(
        "course", help="tools for teachers: learner versions of the notebooks",
        description="Tools for teachers who run the course (see docs/instructor.md).",
    )
    actions = parser.add_subparsers(
        title="actions", dest="course_action", metavar="ACTION", parser_class=_Parser,
        required=True,
    )
    student = actions.add_parser(
        "student-notebooks",
        help="write learner versions of all notebooks, solutions cleared (nbgrader)",
        description=(
            "Write every notebook with its exercise solutions replaced by "
            "`raise NotImplementedError()` (nbgrader's ClearSolutions) and outputs removed."
        ),
    )
    student.add_argument("out_dir", metavar="OUT_DIR", help="folder to write (must be new, "
                         "or written by an earlier run of this command)")
    student.add_argument("--notebooks", default=None, metavar="DIR",
                         help="the teacher's notebooks (default: ./notebooks)")
    parser.set_defaults(handler=run_course)


def run_course(args):
    from kerasgan.student import write_student_notebooks

    written = write_student_notebooks(args.out_dir, args.notebooks or "notebooks")
    print(f"wrote {len(written)} student notebooks to {args.out_dir}")
    return 0


# === mix ===


def add_mix(subparsers):
    parser = subparsers.add_parser(
        "mix",
        help="draw a style-mixing grid from an exported StyleGAN",
        description="Draw a style-mixing grid from a StyleGAN export's 'mix' signature: the top "
        "row shows the column sources, the left column the row sources, and cell (i, j) takes "
        "the first CROSSOVER styles (coarse: layout, shape) from row i and the rest (fine: "
        "colour, texture) from column j.",
    )
    parser.add_argument("model_dir", help="a StyleGAN export, e.g. saved_models/stylegan")
    parser.add_argument("--rows", type=positive_int, default=4, help="row sources (default: 4)")
    parser.add_argument("--cols", type=positive_int, default=4, help="column sources (default: 4)")
    parser.add_argument(
        "--crossover", type=int, default=4,
        help="styles taken from the row source, 0 to the model's style count; 4 gives the rows "
        "the 4x4 and 8x8 blocks (default: 4)",
    )
    parser.add_argument(
        "--truncation", type=float, default=1.0,
        help="truncation psi of every source (1: none, 0.7 typical; default: 1.0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the latent vectors (default: 0)")
    parser.add_argument("--out", default="mix.png", help="PNG file to write (default: mix.png)")
    parser.add_argument("--scale", type=positive_int, default=2, help="pixel enlargement of the PNG (default: 2)")
    parser.set_defaults(handler=run_mix)


def run_mix(args):
    import numpy as np
    import tensorflow as tf

    from kerasgan import export, plotting
    from kerasgan.errors import ConfigError

    if not args.out.lower().endswith(".png"):
        raise ConfigError(f"--out must be a .png file, got {args.out}")
    out_parent = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_parent):
        raise ConfigError(f"the folder of --out does not exist: {out_parent}")
    loaded = export.resolve_saved_model(args.model_dir)
    function, specs = export.load_serving_signature(loaded, "mix")
    latent_dim = specs["latent_rows"].shape[-1]
    rng = np.random.default_rng(args.seed)
    rows = rng.standard_normal((args.rows, latent_dim)).astype("float32")
    cols = rng.standard_normal((args.cols, latent_dim)).astype("float32")
    try:
        outputs = function(
            latent_rows=tf.constant(rows), latent_cols=tf.constant(cols),
            crossover=tf.constant(args.crossover, tf.int32),
            truncation_psi=tf.constant(args.truncation, tf.float32),
        )
    except Exception as error:  # the graph's own checks (crossover, psi range) speak here
        message = getattr(error, "message", str(error)).strip().splitlines()[0]
        raise ConfigError(f"the model rejected the request: {message}") from None
    grid = outputs["images"].numpy()  # [rows, cols, H, W, C]
    blank = np.full_like(grid[0, :1], 255)
    tiles = [blank, outputs["col_images"].numpy()]
    for row in range(args.rows):
        tiles += [outputs["row_images"].numpy()[row : row + 1], grid[row]]
    image = plotting.image_grid(np.concatenate(tiles), cols=args.cols + 1)
    plotting.save_image(image, args.out, scale=args.scale)
    print(
        f"wrote a {args.rows}x{args.cols} style-mixing grid from {loaded} to {args.out} "
        f"(the first {args.crossover} styles from the rows, the rest from the columns)"
    )
    return 0


# === export and serving ===


def add_export(subparsers):
    parser = subparsers.add_parser(
        "export",
        help="export a run folder's latest checkpoint as a TF Serving SavedModel",
        description="Export the latest checkpoint of a run folder to EXPORT_DIR/NAME/<next version>/.",
    )
    parser.add_argument("run_dir", help="a run folder, e.g. runs/dcgan")
    parser.add_argument("--name", help="the model's folder name (default: the model, e.g. dcgan)")
    parser.add_argument("--export-dir", default="saved_models", help="TF Serving model base folder (default: saved_models)")
    parser.set_defaults(handler=run_export)


def run_export(args):
    from kerasgan import training

    path = training.export_run(args.run_dir, args.export_dir, args.name)
    print(f"exported {args.run_dir} to {path}")
    return 0


def add_models_config(subparsers):
    parser = subparsers.add_parser(
        "models-config",
        help="write a TF Serving models.config serving every model in an export folder",
        description="Write a --model_config_file for TF Serving listing every exported model.",
    )
    parser.add_argument("export_dir", nargs="?", default="saved_models", help="the export folder (default: saved_models)")
    parser.add_argument("--base", default="/models", help="where the export folder is mounted in the server (default: /models)")
    parser.add_argument("--out", help="file to write (default: EXPORT_DIR/models.config)")
    parser.set_defaults(handler=run_models_config)


def run_models_config(args):
    from kerasgan import serving

    path = serving.write_models_config(args.export_dir, args.out, args.base)
    print(f"wrote {path}")
    return 0


# === main ===

COMMANDS = (add_train, add_sample, add_export, add_models_config, add_course, add_mix)


def build_parser():
    parser = _Parser(
        prog="python -m kerasgan",
        description="kerasgan: learn GANs and neural style transfer by building them in Keras 3.",
    )
    from kerasgan import __version__

    parser.add_argument("--version", action="version", version=f"kerasgan {__version__}")
    subparsers = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", parser_class=_Parser
    )
    for add in COMMANDS:
        add(subparsers)
    return parser


def main(argv=None):
    from kerasgan.utils import import_tensorflow_quietly

    import_tensorflow_quietly()  # first, so its C++ start-up lines stay out of the terminal
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE
    from kerasgan.errors import KerasganError

    try:
        return args.handler(args)
    except KerasganError as error:
        print(f"kerasgan: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        notice("interrupted; run the same command again to resume from the last checkpoint")
        return 130


if __name__ == "__main__":
    sys.exit(main())

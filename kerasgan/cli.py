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


SEED_LIMIT = 2**32  # NumPy's and Keras's seeds are unsigned 32-bit integers


def seed(text):
    """An argparse type: a whole number in `[0, 2**32)`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"must be between 0 and {SEED_LIMIT - 1}, got {text}")
    return value


def export_name(text):
    """An argparse type: a plain folder name for an export (see `export.check_export_name`)."""
    from kerasgan.errors import ExportError
    from kerasgan.export import check_export_name

    try:
        return check_export_name(text)
    except ExportError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_force(parser, what):
    parser.add_argument(
        "--force", action="store_true",
        help=f"replace {what} if it exists (an input file is never replaced)",
    )


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def steps_per_execution_option(text):
    """`--steps-per-execution`: `auto` or a whole number of at least 1."""
    return "auto" if text == "auto" else positive_int(text)


# === output paths: checked before any work, written without replacing unless --force ===


def _check_parent(resolved, option):
    """The folder `resolved` goes into exists, is a folder and is writable."""
    from kerasgan.errors import ConfigError

    parent = os.path.dirname(resolved)
    if not os.path.exists(parent):
        raise ConfigError(f"the folder of {option} does not exist: {parent}")
    if not os.path.isdir(parent):
        raise ConfigError(f"the folder of {option} is not a folder: {parent}")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"the folder of {option} is not writable: {parent}")


def _is_same_file(path, other):
    if os.path.realpath(path) == os.path.realpath(other):
        return True
    try:
        return os.path.samefile(path, other)  # hard links
    except OSError:
        return False


def check_output_file(path, kinds, force=False, inputs=(), option="--out"):
    """Check a file the command will write, before any model is loaded or work is done.

    Args:
        path: the path as given.
        kinds: accepted suffixes, e.g. `(".png",)`.
        force: an existing file may be replaced.
        inputs: files the command reads; never replaced, even with `force`.
        option: how messages name the path.

    Returns:
        The resolved path to write (see `utils.resolve_output`).

    Raises:
        KerasganError: one line for a wrong suffix, a protected path, a missing, non-folder or
            unwritable parent, a folder in the way, an input, or an existing file without
            `force`.
    """
    from kerasgan.errors import ConfigError
    from kerasgan.utils import resolve_output

    if not path.lower().endswith(kinds):
        names = " or ".join(kind for kind in kinds if kind != ".jpeg")
        raise ConfigError(f"{option} must be a {names} file, got {path}")
    resolved = resolve_output(path, option)
    _check_parent(resolved, option)
    if os.path.isdir(resolved):
        raise ConfigError(f"{option} is a folder, not a file: {path}")
    for source in inputs:
        if _is_same_file(resolved, source):
            raise ConfigError(
                f"{option} {path} would overwrite the input {source}; inputs are never "
                "overwritten, even with --force"
            )
    if os.path.lexists(resolved) and not force:
        raise ConfigError(f"{option} {path} already exists; pass --force to replace it")
    return resolved


def write_output(path, force, write):
    """Call `write(tmp)` and publish `tmp` as `path`: replaced only with `force`, else refused
    even if another process created `path` meanwhile; nothing half-written on failure."""
    from kerasgan.errors import ConfigError, KerasganError
    from kerasgan.utils import atomic_path

    try:
        with atomic_path(path, replace=force) as tmp:
            write(tmp)
    except KerasganError:
        raise
    except OSError as error:
        raise ConfigError(f"cannot write {path}: {error.strerror or error}") from None
    return path


# === train ===


def add_train(subparsers):
    from kerasgan.distribution import JIT_CHOICES, STRATEGIES
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
    parser.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32-1 (default: 0)")
    parser.add_argument(
        "--deterministic", action="store_true",
        help="make a run repeatable bit for bit (TensorFlow's op determinism): slower, as GPUs "
        "must use deterministic kernels, and some ops then raise an error on GPU",
    )
    parser.add_argument("--preset", default="default", help="model configuration: default or tiny (default: default)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=POLICIES,
        help="numeric policy; auto picks mixed_float16 on tensor-core GPUs, mixed_bfloat16 on "
        "CPUs with AMX/AVX512-BF16, else float32 (default: auto)",
    )
    parser.add_argument(
        "--strategy",
        default="default",
        choices=STRATEGIES,
        help="tf.distribute strategy: mirrored uses every local GPU, multiworker the cluster in "
        "TF_CONFIG (run the same command on every worker); --batch-size is the global batch "
        "(default: default, one device)",
    )
    parser.add_argument(
        "--jit",
        default="auto",
        choices=JIT_CHOICES,
        help="compile the training step with XLA; auto: the model's measured choice on CPUs, "
        "Keras's on GPUs (default: auto)",
    )
    parser.add_argument(
        "--steps-per-execution",
        default="auto",
        type=steps_per_execution_option,
        metavar="N",
        help="training steps per call of the compiled train function; auto: the model's "
        "measured choice on CPUs, 1 on GPUs (default: auto)",
    )
    parser.add_argument(
        "--image-size", "--resolution", type=positive_int, dest="image_size",
        help="image height and width (default: the dataset's)",
    )
    parser.add_argument("--channels", type=int, choices=(1, 3), help="image channels (default: the dataset's)")
    parser.add_argument(
        "--pair",
        help="cyclegan: the unpaired pair, digits (embedded, the default) or a tensorflow-datasets "
        "cycle_gan pair such as horse2zebra",
    )
    parser.add_argument("--data-a", metavar="FOLDER", help="cyclegan: images of domain A (with --data-b)")
    parser.add_argument("--data-b", metavar="FOLDER", help="cyclegan: images of domain B (with --data-a)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved options and exit")
    parser.set_defaults(handler=run_train)


def train_options(args):
    """`training.train`'s keyword arguments from the parsed `train` command line."""
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
        "strategy": args.strategy,
        "jit_compile": args.jit,
        "steps_per_execution": args.steps_per_execution,
        "image_size": args.image_size,
        "channels": args.channels,
        "export": not args.no_export,
    }
    # Model-specific data choices, passed only when given (models without them reject them).
    data_options = {
        key: value
        for key, value in (("pair", args.pair), ("data_a", args.data_a), ("data_b", args.data_b))
        if value is not None
    }
    if data_options:
        options["data_options"] = data_options
    options["deterministic"] = args.deterministic
    return options


def run_train(args):
    import json

    from kerasgan import recipes, training

    recipes.get_recipe(args.model)  # an unknown model fails before anything is loaded
    options = train_options(args)
    if args.dry_run:
        print(json.dumps({"model": args.model, **options}, indent=2))
        return 0
    print(training.train(args.model, **options).line())
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
    add_force(parser, "--out")
    parser.add_argument("--seed", type=seed, default=0, help="seed of the latent vectors (default: 0)")
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
        if args.labels is not None:  # `--labels ""` is a mistake, not "every class"
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

    out = check_output_file(args.out, (".png",), args.force)
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
        raise ConfigError(f"the model rejected the request: {graph_error_message(error)}") from None
    grid = plotting.image_grid(images, cols=args.cols)
    write_output(out, args.force, lambda tmp: plotting.save_image(grid, tmp, scale=args.scale))
    print(f"wrote {len(images)} samples from {export.resolve_saved_model(args.model_dir)} to {args.out}")
    return 0


# === course ===


def add_course(subparsers):
    parser = subparsers.add_parser(
        "course", help="tools for teachers: learner versions of the notebooks, a leaderboard",
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
    student.add_argument("out_dir", metavar="OUT_DIR", help="a new folder to write")
    student.add_argument("--notebooks", default=None, metavar="DIR",
                         help="the teacher's notebooks (default: ./notebooks)")
    student.add_argument(
        "--force", action="store_true",
        help="replace OUT_DIR if an earlier run of this command wrote it (any other folder is "
        "refused); the old folder is removed only once the new one is complete",
    )
    board = actions.add_parser(
        "leaderboard",
        help="score a class's exports the same way and print them side by side",
        description=(
            "Score every export with the same real images, the same N, the same seed and the "
            "same feature extractor (as 'python -m kerasgan evaluate' does one), and print them "
            "side by side, best Fréchet distance first. Exports of different datasets or image "
            "shapes are refused: their figures cannot be compared. Nothing is written."
        ),
    )
    board.add_argument("export_dirs", nargs="+", metavar="EXPORT_DIR",
                       help="export folders, e.g. one per learner: alice/dcgan bob/wgan-gp")
    board.add_argument("--data", default="auto",
                       help="the real images: auto, tfds, embedded, or an image folder "
                       "(default: auto)")
    board.add_argument("--dataset", help="the dataset every model learned (default: the exports' "
                       "training recipes', else mnist)")
    board.add_argument("--n", type=int, default=2000, help="images per side (default: 2000)")
    board.add_argument("--extractor", default="mnist_judge",
                       help="feature space: mnist_judge or inception (default: mnist_judge)")
    board.add_argument("--seed", type=seed, default=0,
                       help="seed of the latents and the real subset (default: 0)")
    board.add_argument("--batch-size", type=positive_int, default=250,
                       help="images per request to a model (default: 250)")
    parser.set_defaults(handler=run_course)


def run_course(args):
    from kerasgan.student import write_student_notebooks

    if args.course_action == "leaderboard":
        return run_leaderboard(args)
    written = write_student_notebooks(args.out_dir, args.notebooks or "notebooks", args.force)
    print(f"wrote {len(written)} student notebooks to {args.out_dir}")
    return 0


def _leaderboard_export(model_dir, dataset):
    """Load one export for the leaderboard: its signature, name, kind, dataset and image shape."""
    from kerasgan import export
    from kerasgan.errors import ConfigError

    if not os.path.isdir(model_dir):
        raise ConfigError(
            f"{model_dir} is not a folder; give export folders such as saved_models/dcgan"
        )
    function, specs = export.load_serving_signature(model_dir)
    if "latent" not in specs:
        raise ConfigError(
            f"{model_dir} does not draw samples from a latent (its inputs: {', '.join(specs)}); "
            "the leaderboard ranks generators of random images"
        )
    metadata = export.read_metadata(model_dir)
    return {
        "dir": model_dir,
        "name": os.path.normpath(model_dir),
        "path": os.path.realpath(export.resolve_saved_model(model_dir)),
        "function": function,
        "specs": specs,
        "kind": metadata.get("model_class", "?"),
        "num_classes": metadata.get("num_classes"),
        # Unknown: the default `evaluate` assumes, so a stray export cannot slip in unchecked.
        "dataset": dataset or _export_dataset(model_dir) or "mnist",
        "shape": tuple(function.structured_outputs["images"].shape[1:]),
    }


def _check_comparable(exports):
    """One dataset and one image shape for every export, and no export twice."""
    from kerasgan.errors import ConfigError

    seen = {}
    for item in exports:
        if item["path"] in seen:
            raise ConfigError(
                f"{seen[item['path']]} and {item['dir']} are the same export; list it once"
            )
        seen[item["path"]] = item["dir"]
    hints = {"dataset": " (or pass --dataset if they learned the same one)", "shape": ""}
    for key, what in (("dataset", "datasets"), ("shape", "image shapes")):
        if len({item[key] for item in exports}) > 1:
            shown = ", ".join(f"{item['dir']}: {item[key]}" for item in exports)
            raise ConfigError(
                f"the exports have different {what} ({shown}); their figures cannot be compared, "
                f"so rank each group on its own{hints[key]}"
            )


def extractor_option(text):
    """`--extractor`: a key of `evaluation.EXTRACTORS`, spelt loosely (`Mnist-Judge`)."""
    from kerasgan import evaluation
    from kerasgan.errors import ConfigError

    key = text.strip().lower().replace("-", "_")
    if key not in evaluation.EXTRACTORS:
        raise ConfigError(
            f"unknown --extractor {text!r}; choose one of: {', '.join(evaluation.EXTRACTORS)}"
        )
    return key


def run_leaderboard(args):
    """`course leaderboard`: every export scored by one `evaluation.leaderboard`."""
    from kerasgan import evaluation
    from kerasgan.errors import ConfigError

    n = evaluation.check_sample_count(args.n)
    key = extractor_option(args.extractor)
    exports = [_leaderboard_export(model_dir, args.dataset) for model_dir in args.export_dirs]
    _check_comparable(exports)
    extractor = evaluation.get_extractor(key)  # offline Inception fails here, before any work
    dataset = exports[0]["dataset"]
    height, _, channels = exports[0]["shape"]
    real, count = _real_images(args, dataset, channels, height)
    if count > 0 and n > count:
        raise ConfigError(
            f"--n {n} is more than the {count} real images of {dataset} ({args.data})"
        )
    entries = []
    for index, item in enumerate(exports, start=1):
        notice(f"sampling {index}/{len(exports)}: {n} images from {item['name']}")
        fake = generated_images(
            item["function"], item["specs"], n, args.seed, item["num_classes"], args.batch_size
        )
        entries.append((item["name"], item["kind"], fake))
    rows = evaluation.leaderboard(entries, real, extractor, n=n, seed=args.seed, verbose=1)
    print(f"against {n} real images of {dataset} ({args.data}), seed {args.seed}")
    print(evaluation.format_leaderboard(rows))
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
    parser.add_argument("--seed", type=seed, default=0, help="seed of the latent vectors (default: 0)")
    parser.add_argument("--out", default="mix.png", help="PNG file to write (default: mix.png)")
    add_force(parser, "--out")
    parser.add_argument("--scale", type=positive_int, default=2, help="pixel enlargement of the PNG (default: 2)")
    parser.set_defaults(handler=run_mix)


def graph_error_message(error):
    """The message of a failed `tf.debugging.assert_*` inside a SavedModel (e.g. "crossover must
    be <= 8"), else the first line of the error."""
    import re

    message = getattr(error, "message", str(error))
    # The message may hold brackets itself ("class ids in [0, 9]"): it ends where TF's next
    # bracketed item (or the line) begins.
    found = re.search(r"assertion failed: \[(.+?)\](?: \[|$)", message, re.MULTILINE)
    return found.group(1).strip() if found else message.strip().splitlines()[0]


def run_mix(args):
    import numpy as np
    import tensorflow as tf

    from kerasgan import export, plotting
    from kerasgan.errors import ConfigError
    from kerasgan.plotting import mixing_tiles

    out = check_output_file(args.out, (".png",), args.force)
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
        raise ConfigError(f"the model rejected the request: {graph_error_message(error)}") from None
    tiles = mixing_tiles(*(outputs[key].numpy() for key in ("images", "row_images", "col_images")))
    image = plotting.image_grid(tiles, cols=args.cols + 1)
    write_output(out, args.force, lambda tmp: plotting.save_image(image, tmp, scale=args.scale))
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
    parser.add_argument(
        "--name", type=export_name,
        help="the model's folder name, a plain name: letters, digits, '_', '.', '-' (default: "
        "the model, e.g. dcgan)",
    )
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


# === evaluate ===


def add_evaluate(subparsers):
    parser = subparsers.add_parser(
        "evaluate",
        help="score an exported generator: FID, KID, IS, precision and recall",
        description="Generate N images from a SavedModel export (exactly as TF Serving would) and "
        "compare them with N real images in a feature extractor's space. Class-conditional "
        "models get labels spread evenly over their classes. Figures depend on N and on the "
        "extractor: report both with them.",
    )
    parser.add_argument("model_dir", help="an export folder, e.g. saved_models/dcgan or saved_models/dcgan/3")
    parser.add_argument(
        "--data", default="auto",
        help="the real images: auto (tensorflow-datasets, or the embedded copy offline), tfds, "
        "embedded, or an image folder (default: auto)",
    )
    parser.add_argument(
        "--dataset",
        help="the dataset the model learned (default: the export's training recipe's, else mnist)",
    )
    parser.add_argument("--n", type=int, default=2000, help="images per side (default: 2000)")
    parser.add_argument(
        "--extractor", default="mnist_judge",
        help="feature space: mnist_judge (offline digit classifier, fast) or inception "
        "(InceptionV3, ImageNet weights; downloaded once) (default: mnist_judge)",
    )
    parser.add_argument("--seed", type=seed, default=0, help="seed of the latents and the real subset (default: 0)")
    parser.add_argument("--batch-size", type=positive_int, default=250, help="images per request to the model (default: 250)")
    parser.set_defaults(handler=run_evaluate)


def _export_dataset(model_dir):
    """The dataset an export's model was trained on, from its run folder (None if unknown)."""
    import json

    from kerasgan import export, recipes

    run_dir = export.read_metadata(model_dir).get("run_dir")
    description = os.path.join(run_dir, "model.json") if run_dir else None
    if not description or not os.path.isfile(description):
        return None
    with open(description) as handle:
        model = json.load(handle).get("model")
    try:
        return recipes.get_recipe(model).dataset
    except Exception:  # a model this installation does not know, or that fails to import
        return None


def generated_images(function, specs, n, seed, num_classes=None, batch_size=250):
    """`n` uint8 images from a sampling signature, requested `batch_size` at a time.

    The request is built by `sample_inputs` (seeded latents; for class-conditional models
    every class equally often, up to one image, in a seeded random order).

    Args:
        function: the signature, e.g. from `export.load_serving_signature`.
        specs: its input specs (`latent`, and `labels`/`truncation` when it takes them).
        n: number of images.
        seed: seed of the latents and of the order.
        num_classes: the classes of a class-conditional model (default 10).
        batch_size: images per request.

    Returns:
        uint8 NumPy array `[n, H, W, C]`.
    """
    import numpy as np

    from kerasgan.errors import ConfigError

    classes = (num_classes or 10) if "labels" in specs else 1
    request = argparse.Namespace(n=-(-n // classes) * classes, labels=None, truncation=None,
                                 seed=seed, cols=None)
    inputs = sample_inputs(specs, request, num_classes)
    # sample_inputs lists the classes in blocks; taking them round-robin keeps the first n even
    # (counts differ by at most one), then a seeded shuffle mixes the classes across requests.
    round_robin = np.arange(request.n).reshape(classes, -1).T.reshape(-1)[:n]
    order = np.random.default_rng(seed).permutation(round_robin)
    per_image = {key: value[order] for key, value in inputs.items() if np.ndim(value) > 0}
    shared = {key: value for key, value in inputs.items() if np.ndim(value) == 0}
    images = []
    for start in range(0, n, batch_size):
        batch = {key: value[start : start + batch_size] for key, value in per_image.items()}
        try:
            images.append(function(**batch, **shared)["images"].numpy())
        except Exception as error:  # the graph's own validation speaks here
            message = getattr(error, "message", str(error)).strip().splitlines()[0]
            raise ConfigError(f"the model rejected the request: {message}") from None
    return np.concatenate(images)


def _real_images(args, dataset_name, channels, image_size):
    """The real images as an unbatched dataset, shuffled under the seed, and their count."""
    from kerasgan import datasets
    from kerasgan.training import DATA_SOURCES

    if args.data in DATA_SOURCES:
        real = datasets.load(dataset_name, source=args.data, image_size=image_size, channels=channels)
    else:
        real = datasets.load(args.data, image_size=image_size, channels=channels)
    return datasets.in_fixed_random_order(real, seed=args.seed), int(real.cardinality())


def format_results(results):
    """The small table `evaluate` prints."""
    def plus_minus(key):
        return f"{results[key]:.4f} ± {results[key + '_std']:.4f}" if key in results else "n/a"

    rows = [
        ("FID", f"{results['fid']:.3f}" if "fid" in results else "n/a"),
        ("KID", plus_minus("kid")),
        ("IS", plus_minus("is")),
        ("precision", f"{results['precision']:.3f}" if "precision" in results else "n/a"),
        ("recall", f"{results['recall']:.3f}" if "recall" in results else "n/a"),
        ("n", str(results["n"])),
        ("extractor", str(results["extractor"])),
    ]
    return "\n".join(f"{name:<10} {value}" for name, value in rows)


def run_evaluate(args):
    from kerasgan import evaluation, export
    from kerasgan.errors import ConfigError

    n = evaluation.check_sample_count(args.n)
    key = extractor_option(args.extractor)
    function, specs = export.load_serving_signature(args.model_dir)
    if "latent" not in specs:
        raise ConfigError(
            f"{args.model_dir} does not draw samples from a latent (its inputs: "
            f"{', '.join(specs)}); evaluate scores generators of random images"
        )
    extractor = evaluation.get_extractor(key)  # offline Inception fails here, before any work
    images_shape = function.structured_outputs["images"].shape
    height, channels = images_shape[1], images_shape[-1]
    dataset = args.dataset or _export_dataset(args.model_dir) or "mnist"
    real, count = _real_images(args, dataset, channels, height)
    if count > 0 and n > count:
        raise ConfigError(f"--n {n} is more than the {count} real images of {dataset} ({args.data})")
    metadata = export.read_metadata(args.model_dir)
    fake = generated_images(function, specs, n, args.seed, metadata.get("num_classes"), args.batch_size)
    results = evaluation.evaluate(real, fake, extractor, n=n, seed=args.seed)
    print(f"{export.resolve_saved_model(args.model_dir)} against {n} real images of {dataset} ({args.data})")
    print(format_results(results))
    return 0


# === stylize ===


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_stylize(subparsers):
    parser = subparsers.add_parser(
        "stylize",
        help="paint a photo in the style of another image (neural style transfer)",
        description="Paint CONTENT in the style of STYLE and write the result and a "
        "content | style | result figure (OUT_compare.png) next to it. --method gatys "
        "(default) optimises the pixels against VGG19 features (Gatys et al.; slow, any style); "
        "--method adain runs a trained AdaINStylizer (.keras) in one pass. Grayscale and RGBA "
        "images are converted to RGB.",
    )
    parser.add_argument("content", help="the photo whose layout is kept (JPEG, PNG, ...)")
    parser.add_argument("style", help="the image whose style is copied")
    parser.add_argument("--out", default="stylized.png", help="result, .png or .jpg (default: stylized.png)")
    add_force(parser, "--out and OUT_compare.png")
    parser.add_argument(
        "--size", type=int, default=512,
        help="longer side of the result in pixels; gatys cost grows with its square (default: 512)",
    )
    parser.add_argument("--method", choices=("gatys", "adain"), default="gatys", help="(default: gatys)")
    parser.add_argument("--steps", type=positive_int, default=500, help="gatys: optimizer steps (default: 500)")
    parser.add_argument("--optimizer", choices=("adam", "lbfgs"), default="adam", help="gatys: (default: adam)")
    parser.add_argument(
        "--weights", default=None, metavar="imagenet|random|PATH",
        help="gatys: VGG19 weights: imagenet (downloaded once, then cached), random (an "
        "offline demo with a fixed random-weight VGG19: weaker results), or the path of "
        "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5 (default: imagenet)",
    )
    parser.add_argument(
        "--precision", choices=("auto", "float32", "mixed_bfloat16"), default=None,
        help="gatys: what VGG19 computes in; auto is mixed_bfloat16 on a CPU with AMX, "
        "float32 elsewhere (default: auto)",
    )
    for name, what in (("content", "content"), ("style", "style"), ("tv", "total-variation")):
        parser.add_argument(
            f"--{name}-weight", type=non_negative_float, metavar="W",
            help=f"gatys: weight of the {what} loss (default: tuned for the VGG19 weights)",
        )
    parser.add_argument("--model", metavar="STYLIZER.keras", help="adain: a trained AdaINStylizer")
    parser.add_argument(
        "--alpha", type=float, default=1.0,
        help="adain: style strength, 0 (the photo) to 1 (full style) (default: 1.0)",
    )
    parser.add_argument("--seed", type=seed, default=0, help="random seed (default: 0)")
    parser.set_defaults(handler=run_stylize)


def _check_stylize_out(args):
    """The result's and the comparison figure's resolved paths, both checked before any work."""
    inputs = (args.content, args.style)
    out = check_output_file(args.out, (".png", ".jpg", ".jpeg"), args.force, inputs)
    compare = check_output_file(
        os.path.splitext(args.out)[0] + "_compare.png", (".png",), args.force, inputs,
        option="--out's comparison figure",
    )
    return out, compare


def _check_stylize_options(args):
    """Options that belong to the other method are mistakes, said before any work starts."""
    from kerasgan.errors import ConfigError

    if args.method == "adain":
        if not args.model:
            raise ConfigError(
                "--method adain needs --model STYLIZER.keras (a trained AdaINStylizer); "
                "without one use --method gatys"
            )
        if not 0.0 <= args.alpha <= 1.0:
            raise ConfigError(f"--alpha must be between 0 and 1, got {args.alpha}")
        if args.weights is not None:
            raise ConfigError("--weights is for --method gatys; an AdaIN model carries its encoder")
        if args.precision is not None:
            raise ConfigError("--precision is for --method gatys; an AdaIN model runs in one pass")
    elif args.model:
        raise ConfigError("--model is for --method adain")


def _load_stylizer(path):
    import keras

    from kerasgan.errors import DataError
    from kerasgan.style_transfer import AdaINStylizer

    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    if not path.endswith(".keras"):
        raise DataError(f"{path}: expected a .keras file saved from an AdaINStylizer")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # zip, JSON and deserialisation failures all land here
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(f"{path}: cannot load as a Keras model ({message})") from None
    if not isinstance(model, AdaINStylizer):
        raise DataError(f"{path}: holds a {type(model).__name__}, not an AdaINStylizer")
    return model


def save_comparison(content, style, result, path, title):
    """Write a content | style | result figure as PNG, atomically (matplotlib's Agg canvas);
    `path` is replaced if it exists (the CLI publishes it with `write_output`)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from kerasgan.utils import atomic_path

    figure = Figure(figsize=(12, 4.4), dpi=100)
    FigureCanvasAgg(figure)
    for index, (image, label) in enumerate(((content, "content"), (style, "style"), (result, title))):
        axis = figure.add_subplot(1, 3, index + 1)
        axis.imshow(image)
        axis.set_title(label)
        axis.axis("off")
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def _save_result(image, path):
    from PIL import Image

    from kerasgan import plotting
    from kerasgan.utils import atomic_path

    if path.lower().endswith(".png"):
        return plotting.save_image(image, path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=95)
    return path


def run_stylize(args):
    import keras

    from kerasgan import style_transfer as st

    out, compare = _check_stylize_out(args)
    compare_path = os.path.splitext(args.out)[0] + "_compare.png"
    size = st.check_image_size(args.size, "--size")
    _check_stylize_options(args)
    content = st.load_image(args.content)
    style = st.load_image(args.style)
    keras.utils.set_random_seed(args.seed)
    if args.method == "adain":
        stylizer = _load_stylizer(args.model)
        small = st.load_image(args.content, max_size=size)
        result = stylizer.stylize_uint8(small[None], style[None], args.alpha)[0]
        result = keras.ops.convert_to_numpy(result)
        title = f"AdaIN, alpha {args.alpha:g}"
    else:
        weights = args.weights or "imagenet"
        if weights == "random":
            notice(
                "using VGG19 with fixed random weights (an offline demo): expect textures, "
                "and weaker results than with --weights imagenet"
            )
        result, _ = st.stylize(
            content, style, image_size=size, steps=args.steps, optimizer=args.optimizer,
            content_weight=args.content_weight, style_weight=args.style_weight,
            tv_weight=args.tv_weight, weights=weights, seed=args.seed, progress=True,
            precision=args.precision or "auto",
        )
        label = "random-weight VGG19" if weights == "random" else "VGG19"
        title = f"Gatys, {args.steps} {args.optimizer} steps, {label}"
    write_output(out, args.force, lambda tmp: _save_result(result, tmp))
    write_output(compare, args.force, lambda tmp: save_comparison(content, style, result, tmp, title))
    height, width = result.shape[:2]
    print(f"wrote {args.out} ({width}x{height}) and {compare_path}")
    return 0


# === translate (CycleGAN) ===


def add_translate(subparsers):
    parser = subparsers.add_parser(
        "translate",
        help="translate image files with an exported CycleGAN direction",
        description="Translate image files with a CycleGAN export (e.g. saved_models/cyclegan_a2b; "
        "the newest version when given a model folder), exactly as TF Serving would run it. Each "
        "image is converted to the model's channels and resized to its size inside the model; "
        "the results, at the model's size, go to OUT/<name>.png. Files that cannot be read are "
        "reported and skipped.",
    )
    parser.add_argument("model_dir", help="a direction's export, e.g. saved_models/cyclegan_a2b")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to translate")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for the translated PNGs (created if missing)")
    add_force(parser, "translations already in DIR")
    parser.add_argument("--scale", type=positive_int, default=1, help="pixel enlargement of the PNGs (default: 1)")
    parser.set_defaults(handler=run_translate)


def _translation_targets(args):
    """`(out_dir, [(image, target)])`: every file translate will write, checked before the model
    is loaded. Targets are `OUT/<stem>.png` (`<stem>_2.png`, ... for repeated stems)."""
    from kerasgan.errors import ConfigError
    from kerasgan.utils import resolve_output

    if args.out == "":
        raise ConfigError("--out is an empty path (an unset variable?); give the folder to write")
    out_dir = os.path.realpath(os.path.expanduser(args.out))
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ConfigError(f"--out is not a folder: {args.out} is a file")
        writable = out_dir
    else:
        writable = os.path.dirname(out_dir)
        while not os.path.exists(writable):  # the nearest existing folder makedirs starts from
            writable = os.path.dirname(writable)
        if not os.path.isdir(writable):
            raise ConfigError(f"--out {args.out} cannot be created: {writable} is not a folder")
    if not os.access(writable, os.W_OK):
        raise ConfigError(f"the folder of --out is not writable: {writable}")
    targets, used_names = [], set()
    for path in args.images:
        stem = os.path.splitext(os.path.basename(path))[0]
        name, copy = f"{stem}.png", 2
        while name in used_names:  # photo.jpg and photo.png (or two folders' photo.png)
            name, copy = f"{stem}_{copy}.png", copy + 1
        used_names.add(name)
        target = resolve_output(os.path.join(out_dir, name), "--out")
        for source in args.images:
            if _is_same_file(target, source):
                raise ConfigError(
                    f"translating {path} would overwrite the input {source}; inputs are never "
                    "overwritten, even with --force: choose another --out"
                )
        if os.path.isdir(target):
            raise ConfigError(f"{os.path.join(args.out, name)} is a folder, in the way of {path}'s translation")
        if os.path.lexists(target) and not args.force:
            raise ConfigError(
                f"{os.path.join(args.out, name)} already exists; pass --force to replace it"
            )
        targets.append((path, target))
    return out_dir, targets


def _save_png(image, path, scale=1):
    from kerasgan import plotting

    plotting.save_image(image, path, scale=scale)


def run_translate(args):
    import functools

    import tensorflow as tf

    from kerasgan import datasets, export
    from kerasgan.errors import ConfigError, DataError

    out_dir, targets = _translation_targets(args)
    function, specs = export.load_serving_signature(args.model_dir)
    if set(specs) != {"images"} or specs["images"].dtype != tf.uint8:
        raise ConfigError(
            f"{args.model_dir} does not translate images (its inputs: {', '.join(specs)}); "
            "give a CycleGAN export such as saved_models/cyclegan_a2b"
        )
    channels = specs["images"].shape[-1]
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot create the folder {args.out}: {error.strerror or error}") from None
    written = []
    for path, target in targets:
        try:
            image = datasets.read_image_file(path, channels)
        except DataError as error:  # truncated, corrupt, a decompression bomb: this file only
            notice(f"skipping {error}")
            continue
        translated = function(images=tf.constant(image[None]))["images"].numpy()[0]
        write_output(target, args.force, functools.partial(_save_png, translated, scale=args.scale))
        written.append(target)
    if not written:
        raise ConfigError(f"none of the {len(args.images)} images could be read; nothing written")
    print(
        f"translated {len(written)} of {len(args.images)} images with "
        f"{export.resolve_saved_model(args.model_dir)} into {args.out}"
    )
    return 0


# === main ===

COMMANDS = (add_train, add_sample, add_export, add_models_config, add_course, add_mix, add_evaluate, add_stylize)
COMMANDS += (add_translate,)


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

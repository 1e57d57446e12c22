"""Training speed of every model: precision policies, XLA, memory, and the input pipelines.

    python benchmarks/speed.py                                   # everything (~35 min on 2 quiet cores)
    python benchmarks/speed.py --models dcgan --steps 30         # one model, quickly
    python benchmarks/speed.py --preset tiny --steps 10          # a check that it all runs
    python benchmarks/speed.py --part pipeline                   # the input pipelines alone
    python benchmarks/speed.py --part kernels                    # raw conv/matmul per dtype

**Models.** For each model's configuration (`--preset`, default: what `python -m kerasgan
train MODEL` trains, at its default batch size), one training step (everything `fit` runs per
batch: all the model's D and G updates) is timed under each precision policy with and without
XLA (`jit_compile`). The batches come from the model's embedded dataset through
`kerasgan.datasets.training_pipeline`, a few of them cached in memory so that the step is
measured, not the input. Speed is `batch / median step time` over `--steps` steps after
`--warmup` steps (tracing, XLA compilation): this VM stalls for seconds now and then, which a
median ignores and a total over a few steps does not. A model's configurations are built in one
process and take turns (`--rounds`), so a change of load on a shared machine slows them alike
and their ratios stay fair. The peak memory of a configuration is the maximum resident set size
of a separate process that trains only it for the warm-up steps (TensorFlow itself included,
about 0.8 GB here).

**Input pipelines.** Images per second that `training_pipeline` delivers on its own, for each
model's embedded dataset: the first epoch (preparing and caching every image) and the cached
epochs after it (median time per batch), next to the fastest training step measured for the
models that read it. A pipeline that is many times faster than the step is never the
bottleneck.

**Kernels.** GFLOP/s of a 3x3 convolution and a square matmul in float32 and bfloat16, the
two operations that dominate every model: whether this CPU computes bfloat16 faster at all
(with AMX tiles it does, several times; with AVX512-BF16 alone it did not here).

Each part prints a markdown table (the README's tables come from here).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

MODELS = ("dcgan", "cgan", "wgan-gp", "cyclegan", "stylegan", "biggan")
PRECISIONS = ("float32", "mixed_bfloat16")
CACHED_BATCHES = 4


def peak_rss_mb():
    """The process's peak resident memory so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# === Measuring one configuration (in its own process) ===


def load_model_data(model):
    """A model's embedded dataset (unbatched) and its image height and channels, as `train`
    loads them."""
    from kerasgan import training

    recipe = training.get_recipe(model)
    dataset = training._load_data(recipe, "embedded", None, None, {})
    if recipe.image_shape is not None:
        height, channels = recipe.image_shape(dataset)
    else:
        element = dataset.element_spec[0] if recipe.with_labels else dataset.element_spec
        height, _, channels = element.shape
    return recipe, dataset, int(height), int(channels)


def build_compiled(recipe, preset, height, channels, precision, jit):
    import keras

    keras.mixed_precision.set_dtype_policy(precision)
    keras.utils.set_random_seed(0)
    gan = recipe.build(preset, height, channels, 0)
    gan.compile(jit_compile=jit)
    return gan


def measure_speed(model, preset, configs, steps, warmup, rounds, batch_size=None):
    """Median step time of each `(precision, jit)` configuration of one model.

    The configurations are built side by side and take turns, `rounds` times, each running
    about `steps / rounds` steps per turn: a machine whose load changes during the run slows
    every configuration alike, so their ratios stay fair. The first step of each turn is not
    timed.

    Returns:
        A list of dicts (one per configuration) for the table.
    """
    import keras

    from kerasgan import callbacks, datasets

    recipe, dataset, height, channels = load_model_data(model)
    batch_size = batch_size or recipe.batch_size
    batches = datasets.training_pipeline(dataset, batch_size, seed=0)
    batches = batches.take(CACHED_BATCHES).cache().repeat()
    results, runs = [], []
    for precision, jit in configs:
        result = {"model": model, "preset": preset, "precision": precision, "jit": jit,
                  "batch": batch_size}
        results.append(result)
        try:
            gan = build_compiled(recipe, preset, height, channels, precision, jit)
            gan.fit(batches, steps_per_epoch=warmup, epochs=1, verbose=0)  # tracing, compiling
        except Exception as error:
            result["error"] = f"{type(error).__name__}: {error_summary(error)}"
            continue
        runs.append((result, gan, []))
    per_turn = -(-steps // rounds) + 1
    for _ in range(rounds):
        for result, gan, times in runs:
            keras.mixed_precision.set_dtype_policy(result["precision"])
            meter = callbacks.Throughput(batch_size, skip=1)
            gan.fit(batches, steps_per_epoch=per_turn, epochs=1, callbacks=[meter], verbose=0)
            times += meter.step_times
    for result, _, times in runs:
        median = sorted(times)[len(times) // 2]
        result.update(ms_per_step=1000 * median, images_per_second=batch_size / median,
                      timed_steps=len(times))
    return results


def measure_memory(model, preset, precision, jit, steps, batch_size=None):
    """Peak resident memory of a process that trains one configuration for `steps` steps."""
    from kerasgan import datasets

    recipe, dataset, height, channels = load_model_data(model)
    batch_size = batch_size or recipe.batch_size
    batches = datasets.training_pipeline(dataset, batch_size, seed=0)
    batches = batches.take(CACHED_BATCHES).cache().repeat()
    before = peak_rss_mb()
    gan = build_compiled(recipe, preset, height, channels, precision, jit)
    gan.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    return {"peak_mb": peak_rss_mb(), "before_model_mb": before}


def measure_pipelines(models, batches):
    """Images/s of `training_pipeline` alone per distinct embedded dataset."""
    from kerasgan import datasets

    results, seen = [], {}
    for model in models:
        recipe, dataset, _, _ = load_model_data(model)
        key = datasets.describe(dataset)
        if key in seen:
            seen[key]["models"].append(model)
            continue
        batch_size = recipe.batch_size
        pipeline = datasets.training_pipeline(dataset, batch_size, seed=0)
        started = time.perf_counter()
        first = sum(1 for _ in pipeline)  # prepares every image and fills the cache
        first_seconds = time.perf_counter() - started
        times = []
        while len(times) < batches:
            iterator = iter(pipeline)
            while len(times) < batches:
                started = time.perf_counter()
                try:
                    next(iterator)
                except StopIteration:
                    break
                times.append(time.perf_counter() - started)
        median = sorted(times)[len(times) // 2]
        seen[key] = {
            "dataset": key, "models": [model], "batch": batch_size,
            "first_epoch_images_per_second": first * batch_size / first_seconds,
            "cached_images_per_second": batch_size / median,
        }
        results.append(seen[key])
    return results


def measure_kernels(repeats=30):
    """GFLOP/s of a convolution (batch 32, 32x32, 128 -> 128 channels, 3x3) and of a
    1024x1024 matmul, per dtype: the median of `repeats` traced calls."""
    import tensorflow as tf

    def gflops(function, args, flops):
        function(*args).numpy()  # tracing
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            function(*args).numpy()  # .numpy(): wait for the result
            times.append(time.perf_counter() - started)
        return flops / sorted(times)[len(times) // 2] / 1e9

    conv = tf.function(lambda images, kernel: tf.nn.conv2d(images, kernel, 1, "SAME"))
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    results = []
    for dtype in ("float32", "bfloat16"):
        images = tf.cast(tf.random.normal([32, 32, 32, 128]), dtype)
        kernel = tf.cast(tf.random.normal([3, 3, 128, 128]), dtype)
        matrix = tf.cast(tf.random.normal([1024, 1024]), dtype)
        results.append({
            "dtype": dtype,
            "conv_gflops": gflops(conv, (images, kernel), 2 * 32 * 32 * 32 * 128 * 128 * 9),
            "matmul_gflops": gflops(matmul, (matrix, matrix), 2 * 1024**3),
        })
    return results


# === Running the configurations and printing the tables ===


def run_worker(args):
    """`speed.py --worker '{...}'` -> one JSON line (or an error line)."""
    spec = json.loads(args.worker)
    measure = {"pipeline": measure_pipelines, "speed": measure_speed, "memory": measure_memory,
               "kernels": measure_kernels}
    try:
        result = {"result": measure[spec.pop("part")](**spec)}
    except Exception as error:  # reported in the table, not fatal for the other rows
        result = {"error": f"{type(error).__name__}: {error_summary(error)}"}
    print("RESULT " + json.dumps(result), flush=True)


def error_summary(error):
    """The informative line of an error: TensorFlow's graph errors end with the cause, after
    lines of call sites and node names."""
    lines = [
        line.strip() for line in str(error).splitlines()
        if line.strip() and not line.strip().startswith(("[[", "Detected at node"))
    ]
    last = lines[-1] if lines else repr(error)
    return last.split(", metadata=")[0][:300]  # XLA appends the op's metadata: long, not useful


def in_fresh_process(spec, script=__file__):
    """Run `script --worker SPEC` (this benchmark's by default) in a new Python process; the
    `{"result": ...}` or `{"error": ...}` it printed."""
    command = [sys.executable, os.path.abspath(script), "--worker", json.dumps(spec)]
    done = subprocess.run(command, capture_output=True, text=True)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": f"exit code {done.returncode}: {tail[:200]}"}


SHORT = {"float32": "fp32", "mixed_bfloat16": "bf16", "mixed_float16": "fp16"}


def label(precision, jit):
    return SHORT[precision] + (" + XLA" if jit else "")


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def model_table(results, precisions, jits):
    configs = [(p, j) for j in jits for p in precisions]
    header = ["model", "batch", *(f"{label(p, j)} (img/s)" for p, j in configs)]
    if "float32" in precisions and len(precisions) > 1:
        header += [f"{label(p, j)} / {label('float32', j)}" for j in jits for p in precisions
                   if p != "float32"]
    if len(jits) == 2:
        header += [f"XLA / graph ({SHORT[p]})" for p in precisions]
    header += [f"peak MB ({' / '.join(label(p, j) for p, j in configs)})"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    errors = []
    for model, by_config in results.items():
        speed = {key: r.get("images_per_second") for key, r in by_config.items()}
        batch = next((r["batch"] for r in by_config.values() if "batch" in r), "-")
        row = [model, str(batch)]
        row += [f"{speed[c]:,.0f}" if speed[c] else "failed" for c in configs]
        if "float32" in precisions and len(precisions) > 1:
            row += [ratio(speed[(p, j)], speed[("float32", j)]) for j in jits for p in precisions
                    if p != "float32"]
        if len(jits) == 2:
            row += [ratio(speed[(p, True)], speed[(p, False)]) for p in precisions]
        row += [" / ".join(f"{by_config[c]['peak_mb']:,.0f}" if "peak_mb" in by_config[c] else "-"
                           for c in configs)]
        lines.append("| " + " | ".join(row) + " |")
        errors += [f"{model}, {label(*c)}: {r['error']}" for c, r in by_config.items() if "error" in r]
    return "\n".join(lines), errors


def pipeline_table(pipelines, results):
    lines = [
        "| dataset | models | batch | first epoch (img/s) | cached (img/s) | fastest step (img/s) "
        "| cached / fastest step |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in pipelines:
        fastest = max(
            (r.get("images_per_second") or 0 for model in entry["models"]
             for r in results.get(model, {}).values()),
            default=0,
        )
        lines.append(
            f"| {entry['dataset']} | {', '.join(entry['models'])} | {entry['batch']} | "
            f"{entry['first_epoch_images_per_second']:,.0f} | {entry['cached_images_per_second']:,.0f} | "
            f"{f'{fastest:,.0f}' if fastest else '-'} | {ratio(entry['cached_images_per_second'], fastest)} |"
        )
    return "\n".join(lines)


def kernel_table(kernels):
    lines = ["| dtype | conv 3x3 (GFLOP/s) | matmul (GFLOP/s) |", "|---|---|---|"]
    lines += [f"| {k['dtype']} | {k['conv_gflops']:,.0f} | {k['matmul_gflops']:,.0f} |" for k in kernels]
    float32 = kernels[0]
    for k in kernels[1:]:
        lines.append(f"| {k['dtype']} / float32 | {ratio(k['conv_gflops'], float32['conv_gflops'])} "
                     f"| {ratio(k['matmul_gflops'], float32['matmul_gflops'])} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), metavar="MODEL",
                        help=f"models to measure (default: all of {', '.join(MODELS)})")
    parser.add_argument("--preset", default="default", help="model configuration (default: default)")
    parser.add_argument("--steps", type=int, default=100, help="timed steps per configuration (default: 100)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps (default: 5)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: each model's)")
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS),
                        choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--jit", choices=("both", "on", "off"), default="both",
                        help="with XLA, without, or both (default: both)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="turns the configurations of a model take (default: 5)")
    parser.add_argument("--no-memory", dest="memory", action="store_false",
                        help="skip the peak-memory runs (one short process per configuration)")
    parser.add_argument("--part", choices=("all", "models", "pipeline", "kernels"), default="all")
    parser.add_argument("--pipeline-batches", type=int, default=200,
                        help="cached batches timed per dataset (default: 200)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(args)

    jits = {"both": (False, True), "on": (True,), "off": (False,)}[args.jit]
    configs = [(precision, jit) for jit in jits for precision in args.precisions]
    started = time.monotonic()
    results = {}
    if args.part in ("all", "models"):
        for model in args.models:
            spec = {"part": "speed", "model": model, "preset": args.preset, "configs": configs,
                    "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
                    "batch_size": args.batch_size}
            measured = in_fresh_process(spec)
            if "error" in measured:
                measured = [{"error": measured["error"]} for _ in configs]
            else:
                measured = measured["result"]
            results[model] = dict(zip(configs, measured))
            for (precision, jit), result in results[model].items():
                if args.memory and "error" not in result:
                    spec = {"part": "memory", "model": model, "preset": args.preset,
                            "precision": precision, "jit": jit, "steps": args.warmup,
                            "batch_size": args.batch_size}
                    memory = in_fresh_process(spec)
                    result.update(memory.get("result", {}))
                shown = (f"{result['images_per_second']:,.0f} images/s, "
                         f"{result['ms_per_step']:.1f} ms/step" if "error" not in result
                         else result["error"])
                if "peak_mb" in result:
                    shown += f", peak {result['peak_mb']:,.0f} MB"
                print(f"  {model} {label(precision, jit)}: {shown}", file=sys.stderr, flush=True)
        table, errors = model_table(results, args.precisions, jits)
        print(f"\nTraining step, preset {args.preset}: images/s from the median of {args.steps} "
              f"steps per configuration (after {args.warmup} warm-up steps, in {args.rounds} "
              "interleaved turns); peak MB: the maximum RSS of a process training that "
              "configuration alone (TensorFlow included).\n")
        print(table)
        for error in errors:
            print(f"\n* {error}")
    if args.part in ("all", "pipeline"):
        spec = {"part": "pipeline", "models": args.models, "batches": args.pipeline_batches}
        result = in_fresh_process(spec)
        result = result.get("result", result)
        print(f"\nInput pipeline alone (`training_pipeline` on the embedded data, median of "
              f"{args.pipeline_batches} cached batches):\n")
        if "error" in result:
            print(f"* failed: {result['error']}")
        else:
            print(pipeline_table(result, results))
    if args.part in ("all", "kernels"):
        result = in_fresh_process({"part": "kernels"})
        print("\nKernels alone (GFLOP/s, median of 30 calls; conv: batch 32, 32x32, 128 -> 128 "
              "channels, 3x3; matmul: 1024x1024):\n")
        if "error" in result:
            print(f"* failed: {result['error']}")
        else:
            print(kernel_table(result["result"]))
    print(f"\n({time.monotonic() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()

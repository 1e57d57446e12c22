"""Where a training step's time goes, per precision policy: a profile of the ops one step runs.

    python benchmarks/profile_step.py                            # StyleGAN and BigGAN, fp32 vs bf16
    python benchmarks/profile_step.py --models dcgan --steps 20
    python benchmarks/profile_step.py --preset tiny --steps 3    # a check that it all runs

On a CPU with AMX the bfloat16 kernels are several times faster than float32's
(`speed.py --part kernels`), yet whole training steps are not. This benchmark shows why. For
each model and precision it trains the model as `speed.py` does (the default preset and batch, a
few cached batches, after warm-up steps), records `--steps` steps with TensorFlow's profiler, and
sums the ops' own time ("self time": an op's time less that of the ops it calls) by kind:

* **convolutions** (forward and both backward passes) and **matmuls**: the arithmetic the
  AMX tiles speed up;
* **casts**: the conversions a mixed policy adds between float32 variables and bfloat16
  compute, and back;
* **small ops**: everything else (elementwise arithmetic, reductions, normalisation, the
  optimizers' updates, random numbers, reshapes), each too small to keep a core busy for long.

With the op executions per step, and the wall time per step next to the ops' summed time, a
table says whether a step is bound by its kernels (bfloat16 then pays) or by the number of small
ops around them (it then does not). The figures, machine and date are in benchmarks/README.md.
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import speed  # noqa: E402  (builds and feeds a model as the speed benchmark does)

PRECISIONS = ("float32", "mixed_bfloat16")
KINDS = ("convolutions", "matmuls", "casts", "small ops", "op dispatch", "runtime")


def kind_of(op_type):
    """The kind (one of `KINDS`) of a TensorFlow op type such as `Conv2DBackpropFilter`."""
    if op_type.startswith(("Conv", "DepthwiseConv", "_FusedConv", "_MklFusedConv",
                           "_MklConv", "_MklNativeConv", "_MklNativeFusedConv")):
        return "convolutions"
    if "MatMul" in op_type or op_type.startswith(("Einsum", "_MklEinsum")):
        return "matmuls"
    if op_type == "Cast":
        return "casts"
    return "small ops"


def self_times(line, names):
    """`[(event name, self time in picoseconds)]` of one thread of a profile (`names`: the
    plane's event names by metadata id): each event's
    duration less that of the events nested in it (a graph executor's `Process` holds the ops
    it runs)."""
    events = sorted(line.events, key=lambda event: (event.offset_ps, -event.duration_ps))
    own = [event.duration_ps for event in events]
    open_events = []  # indices of the events that enclose the current one, innermost last
    for index, event in enumerate(events):
        while open_events and (events[open_events[-1]].offset_ps
                               + events[open_events[-1]].duration_ps) <= event.offset_ps:
            open_events.pop()
        if open_events:
            own[open_events[-1]] -= event.duration_ps
        open_events.append(index)
    return [(names[event.metadata_id], max(0, time)) for event, time in zip(events, own)]


def op_type(event_name):
    """`"Conv2D"` for an op event `"generator/up0/conv:Conv2D"`; None for the runtime's own
    events (`"ExecutorState::Process"`, ...)."""
    if "::" in event_name or ":" not in event_name:
        return None
    return event_name.rsplit(":", 1)[1]


def time_by_kind(xspace_path):
    """`(milliseconds by kind, milliseconds by small op type, op executions)` of a profile (`.xplane.pb`) over the threads that
    run TensorFlow's graphs: the ops' self time by `kind_of`, the executor's own time (`Process`
    less its ops: dispatching them) and the runtime's other events (thread-pool bookkeeping)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(xspace_path, "rb") as file:
        space.ParseFromString(file.read())
    (host,) = [plane for plane in space.planes if plane.name == "/host:CPU"]
    names = {key: metadata.name for key, metadata in host.event_metadata.items()}
    by_kind, small_ops, executions = collections.Counter(), collections.Counter(), 0
    for line in host.lines:
        if not line.name.startswith("tf_Compute"):
            continue
        for name, picoseconds in self_times(line, names):
            kind = op_type(name)
            if kind is not None:
                executions += 1
                if kind_of(kind) == "small ops":
                    small_ops[kind] += picoseconds / 1e9
                kind = kind_of(kind)
            elif name.startswith("ExecutorState::Process"):
                kind = "op dispatch"
            else:
                kind = "runtime"
            by_kind[kind] += picoseconds / 1e9
    return by_kind, small_ops, executions


def profile(model, preset, precision, steps, warmup, batch_size=None):
    """Profile `steps` training steps of `model` under `precision` (in this process).

    Returns:
        A dict: wall milliseconds per step, op executions per step, and the ops' self time per
        step by kind (milliseconds).
    """
    import tensorflow as tf

    from kerasgan import callbacks, datasets

    recipe, dataset, height, channels = speed.load_model_data(model)
    batch_size = batch_size or recipe.batch_size
    batches = datasets.training_pipeline(dataset, batch_size, seed=0)
    batches = batches.take(speed.CACHED_BATCHES).cache().repeat()
    gan = speed.build_compiled(recipe, preset, height, channels, precision, jit=False)
    gan.fit(batches, steps_per_epoch=warmup, epochs=1, verbose=0)  # tracing
    with tempfile.TemporaryDirectory(prefix="profile-step-") as logdir:
        meter = callbacks.Throughput(batch_size, skip=0)
        tf.profiler.experimental.start(logdir)
        gan.fit(batches, steps_per_epoch=steps, epochs=1, callbacks=[meter], verbose=0)
        tf.profiler.experimental.stop()
        (xspace,) = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
        by_kind, small_ops, executions = time_by_kind(xspace)
    median = sorted(meter.step_times)[len(meter.step_times) // 2]
    return {
        "model": model, "precision": precision, "batch": batch_size, "steps": steps,
        "median_ms": 1000 * median, "ops_per_step": executions / steps,
        "ms_by_kind": {kind: by_kind[kind] / steps for kind in KINDS},
        "largest_small_ops": [(name, ms / steps) for name, ms in small_ops.most_common(8)],
    }


def table(results):
    lines = [
        "| model | precision | median step (ms) | op executions / step | "
        + " | ".join(f"{kind} (ms)" for kind in KINDS) + " | busy cores |",
        "|---|---|---|---|" + "---|" * len(KINDS) + "---|",
    ]
    for row in results:
        if "error" in row:
            lines.append(f"| {row['model']} | {row['precision']} | {row['error']} |")
            continue
        kinds = row["ms_by_kind"]
        total = sum(kinds.values())
        shares = " | ".join(f"{kinds[kind]:.1f} ({kinds[kind] / total:.0%})" for kind in KINDS)
        lines.append(
            f"| {row['model']} | {speed.SHORT[row['precision']]} | {row['median_ms']:.1f} | "
            f"{row['ops_per_step']:,.0f} | {shares} | {total / row['median_ms']:.2f} |"
        )
    lines += ["", "The largest small ops (milliseconds of core time per step):", ""]
    for row in results:
        if "largest_small_ops" in row:
            largest = ", ".join(f"{name} {ms:.1f}" for name, ms in row["largest_small_ops"])
            lines.append(f"- {row['model']}, {speed.SHORT[row['precision']]}: {largest}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", nargs="+", default=["stylegan", "biggan"])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--steps", type=int, default=10, help="profiled steps (default: 10)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print("RESULT " + json.dumps({"result": profile(**spec)}), flush=True)
        return

    from kerasgan import course

    print(f"machine: {course.hardware().describe()}; preset {args.preset}, "
          f"{args.steps} profiled steps after {args.warmup}\n")
    results = []
    for model in args.models:
        for precision in PRECISIONS:
            # Each in its own process: a policy and a profiler session per process.
            spec = {"model": model, "preset": args.preset, "precision": precision,
                    "steps": args.steps, "warmup": args.warmup}
            outcome = speed.in_fresh_process(spec, script=os.path.abspath(__file__))
            row = outcome.get("result") or {"model": model, "precision": precision,
                                            "error": outcome.get("error")}
            results.append(row)
            print(f"  {model} {precision}: {row}", file=sys.stderr, flush=True)
    print(table(results))


if __name__ == "__main__":
    main()

"""DCGAN on this CPU: training speed, and how long until the digits are recognisable.

    python benchmarks/dcgan_cpu.py                 # both parts, ~6 minutes on 2 cores
    python benchmarks/dcgan_cpu.py --part speed    # images/s only, ~1 minute
    python benchmarks/dcgan_cpu.py --part quality --keep runs/dcgan-judged   # keep its grids

Part 1 (speed): images per second of the training step (one D and one G update), from the
median step time over many steps (this VM stalls for seconds now and then, so a total over a few
steps lies), for each precision policy and batch size.

Part 2 (quality over time): trains the default configuration exactly as `python -m kerasgan
train dcgan` does, and after every epoch asks the offline judge (a small MNIST classifier shipped
in data/judges/) about 2,000 samples: the share it classifies with confidence > 0.9 ("looks like
a definite digit"; real digits score ~0.98), the number of digit classes that hold at least 2% of
the samples, and the Fréchet distance between judge features of the samples and of the 5,000
real digits (FD-judge, lower is better; not comparable with Inception FIDs). The digits count as
recognisable once at least half the samples are confidently classified *and* all ten classes
are present: calibrated by eye on the default run, whose grid reads as digits to a person from
about that point on (GAN strokes are thicker and wobblier than MNIST's, so the judge stays more
sceptical than a person: the share plateaus near 60% where real digits score 98%). Confident blobs
of a single class fool the confidence criterion alone, hence the class count.
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import kerasgan  # noqa: E402, F401, I001  first: imports TensorFlow quietly
import keras  # noqa: E402
import numpy as np  # noqa: E402
from quality import CONFIDENT, confident_share  # noqa: E402  (benchmarks/quality.py)

from kerasgan import callbacks, datasets, evaluation, training  # noqa: E402
from kerasgan.models import DCGAN  # noqa: E402


def speed(policies=("float32", "mixed_bfloat16"), batch_sizes=(32, 64), steps=60):
    print(f"== training step speed (default DCGAN, 28x28x1, median of {steps} steps) ==")
    print(f"{'policy':<16}{'batch':>6}{'ms/step':>10}{'images/s':>10}")
    results = {}
    for policy in policies:
        for batch_size in batch_sizes:
            keras.mixed_precision.set_dtype_policy(policy)
            keras.utils.set_random_seed(0)
            gan = DCGAN.from_preset("default", seed=0)
            gan.compile()
            data = datasets.training_pipeline(datasets.load("mnist", source="embedded"), batch_size, seed=0)
            meter = callbacks.Throughput(batch_size, skip=5)
            gan.fit(data.repeat(), steps_per_epoch=steps + 5, epochs=1, callbacks=[meter], verbose=0,
                    shuffle=False)
            ips = meter.images_per_second
            results[(policy, batch_size)] = ips
            print(f"{policy:<16}{batch_size:>6}{1000 * batch_size / ips:>10.1f}{ips:>10,.0f}")
    keras.mixed_precision.set_dtype_policy("float32")
    for batch_size in batch_sizes:
        ratio = results[("mixed_bfloat16", batch_size)] / results[("float32", batch_size)]
        print(f"mixed_bfloat16 / float32 at batch {batch_size}: {ratio:.2f}x")
    return results


class JudgeEachEpoch(keras.callbacks.Callback):
    """After each epoch: confident share, classes present and FD-judge of the samples."""

    def __init__(self, judge, real_stats, started):
        super().__init__()
        self.judge, self.real_stats = judge, real_stats
        self.started = started
        self.reached = None

    def on_epoch_end(self, epoch, logs=None):
        samples = self.model.generate(2000, seed=123)
        features, probabilities = self.judge.extract(samples)
        confident = confident_share(probabilities)
        shares = np.bincount(probabilities.argmax(axis=1), minlength=10) / len(probabilities)
        classes = int((shares >= 0.02).sum())
        mu, sigma = evaluation.feature_statistics(features)
        fd = evaluation.frechet_distance(mu, sigma, *self.real_stats)
        seconds = time.monotonic() - self.started
        mark = ""
        if self.reached is None and confident >= 0.5 and classes == 10:
            self.reached = (epoch + 1, seconds)
            mark = "  <- recognisable"
        print(f"{epoch + 1:>5}{seconds:>9.0f}{confident:>11.0%}{classes:>9}{fd:>11.2f}{mark}", flush=True)


def quality(budget_seconds=None, keep=None):
    print("\n== quality over time (default command: python -m kerasgan train dcgan) ==")
    judge = evaluation.offline_judge()
    real, _ = datasets.load_arrays("mnist")
    real_features, real_probabilities = judge.extract(real)
    real_confident = confident_share(real_probabilities)
    real_stats = evaluation.feature_statistics(real_features)
    print(f"real digits: {real_confident:.0%} classified with confidence > {CONFIDENT:g}")
    print(f"{'epoch':>5}{'seconds':>9}{'confident':>11}{'classes':>9}{'FD-judge':>11}")
    monitor = JudgeEachEpoch(judge, real_stats, time.monotonic())
    with tempfile.TemporaryDirectory() as folder:
        folder = keep or folder
        summary = training.train(
            "dcgan", data="embedded", output=os.path.join(folder, "run"),
            export_dir=os.path.join(folder, "models"), time_budget=budget_seconds,
            callbacks=[monitor], verbose=0,
        )
    print(summary.line())
    if monitor.reached:
        print(f"recognisable digits after epoch {monitor.reached[0]}, {monitor.reached[1]:.0f} s "
              "(judge time included)")
    else:
        print("the samples never had half of them confidently classified with all ten classes present")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("speed", "quality", "both"), default="both")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per configuration")
    parser.add_argument("--budget", type=float, help="time budget of the quality run in seconds")
    parser.add_argument("--keep", metavar="DIR",
                        help="keep the quality run's folder (sample grids, export) in DIR")
    args = parser.parse_args()
    if args.part in ("speed", "both"):
        speed(steps=args.steps)
    if args.part in ("quality", "both"):
        quality(args.budget, args.keep)


if __name__ == "__main__":
    main()

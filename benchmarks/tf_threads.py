"""Keras training beside a busy process: TensorFlow's thread pools at their default vs sized.

    python benchmarks/tf_threads.py [repeats=3]

Trains a three-block BatchNorm CNN (the shape of small_cnn) on scikit-learn's digits
upscaled to 32x32 (1,797 images, 2 epochs of batch 64, after one warm-up epoch that
traces the graph), each run in a fresh process, alone and then beside one CPU-bound
process (a Python busy loop), with TensorFlow's intra- and inter-op pools at their default
(every core) and at 1 and 2 threads. Prints the median seconds and busy / alone. The
question it answers: does TensorFlow need what OpenMP needs (benchmarks/threads.py: a team
sized to the free cores), or is its default already slowed only by the share of the
machine the busy process takes?
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import time

FIT = r"""
import sys, time
pool = sys.argv[1]
import tensorflow as tf
if pool != "default":
    tf.config.threading.set_intra_op_parallelism_threads(int(pool))
    tf.config.threading.set_inter_op_parallelism_threads(int(pool))
import keras, numpy as np
from sklearn.datasets import load_digits
x, y = load_digits(return_X_y=True)
x = np.repeat(np.repeat(x.reshape(-1, 8, 8, 1) / 16.0, 4, 1), 4, 2).astype("float32")
keras.utils.set_random_seed(0)
L = keras.layers
blocks = [layer for f in (32, 64, 128) for layer in (L.Conv2D(f, 3, padding="same"), L.BatchNormalization(), L.ReLU(),
                                                     L.MaxPooling2D())]
model = keras.Sequential([keras.Input((32, 32, 1)), *blocks[:-1], L.GlobalAveragePooling2D(),
                          L.Dense(10, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)
began = time.perf_counter()
model.fit(x, y, batch_size=64, epochs=2, verbose=0)
print(time.perf_counter() - began)
"""
POOLS = ("default", "1", "2")


def _fit(pool: str) -> float:
    out = subprocess.run([sys.executable, "-c", FIT, pool], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def main(argv: list[str]) -> int:
    repeats = int(next((a for a in argv if a.startswith("repeats=")), "repeats=3").split("=")[1])
    times: dict[tuple[str, bool], float] = {}
    for busy in (False, True):
        loop = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
        try:
            time.sleep(0.5 if busy else 0.0)
            runs: dict[str, list[float]] = {pool: [] for pool in POOLS}
            for _ in range(repeats):  # interleaved, so a slow spell of the machine falls on every pool alike
                for pool in POOLS:
                    runs[pool].append(_fit(pool))
            for pool in POOLS:
                times[pool, busy] = statistics.median(runs[pool])
        finally:
            if loop:
                loop.kill()
                loop.wait()
    print("| TensorFlow pools | alone | beside a busy process | busy / alone |")
    print("|---|---|---|---|")
    for pool in POOLS:
        print(f"| {pool} | {times[pool, False]:.2f}s | {times[pool, True]:.2f}s | {times[pool, True] / times[pool, False]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Train a predictive-coding network on the bundled 8x8 digits and plot its learning curves.

    python examples/train_digits.py [--epochs N] [--out DIR]
"""
import argparse
from pathlib import Path

import neurosim as ns
from neurosim.data import load_digits

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--out", type=Path, default=Path("results/examples"))
args = parser.parse_args()

d = load_digits(seed=0)
net = ns.hierarchy([64, 128, 10], phi="tanh", lr=0.05, optimizer=ns.SGD(momentum=0.9))
with ns.Simulator(net, dt=0.1, backend="numba", seed=0) as sim:
    hist = sim.train(d.X_train, d.Y_train, epochs=args.epochs, batch_size=16, steps=20,
                     X_test=d.X_test, Y_test=d.Y_test)
    print(f"test accuracy after {args.epochs} epochs: {sim.evaluate(d.X_test, d.Y_test)['accuracy']:.3f}")
    ns.plot.learning_curves(hist, path=args.out / "digits_learning_curves.png")
print(f"figures in {args.out}/")

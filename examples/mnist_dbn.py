"""Classify MNIST digits with a Deep Belief Network, save it, and draw a digit from the generative
model.  python examples/mnist_dbn.py [MNIST_FOLDER] [--n-train 10000] [-o out]

MNIST_FOLDER holds the four IDX files (train-images-idx3-ubyte.gz, ...). The default subset of
10,000 training images takes about two minutes on two CPU cores; --n-train 60000 is the full set.
"""

import argparse
from pathlib import Path

import deepbelief
from deepbelief.data import load_mnist

parser = argparse.ArgumentParser()
parser.add_argument("mnist", nargs="?", default=Path(__file__).parents[2] / "shared/datasets/mnist")
parser.add_argument("--n-train", type=int, default=10000)
parser.add_argument("-o", "--output", type=Path, default=Path("out"))
args = parser.parse_args()

X, y = load_mnist(args.mnist, "train")  # pixels in [0, 1], shape (60000, 784)
X_test, y_test = load_mnist(args.mnist, "test")
X, y = X[: args.n_train], y[: args.n_train]

# the top RBM (500 -> 2000 units) learns at a lower rate: at 0.1 all its units die at the start
top = {"learning_rate": 0.05}
clf = deepbelief.DBNClassifier(
    hidden_layers=(500, 500, 2000),
    pretrain_epochs=10,  # greedy CD-1 pretraining of each RBM
    pretrain_batch_size=100,
    layer_params=[{}, {}, top],
    epochs=20,  # then backprop fine-tuning of the unfolded network
    batch_size=100,
    learning_rate=0.5,
    lr_schedule="linear",
    dropout=0.5,
    input_dropout=0.2,
    max_norm=4.0,
    random_state=0,
    verbose=1,
)
# Full MNIST at <= 1.00 % test error in 30 minutes (benchmarks/mnist_classification.py, whose
# per-layer rates differ): layer epochs 50, 50, 30 (layer_params=[{"epochs": 50}, ...]),
# epochs=800, batch_size=250, learning_rate=0.25, max_norm=None, average_epochs=400.
clf.fit(X, y)
print(f"test accuracy: {clf.score(X_test, y_test):.4f}")
args.output.mkdir(parents=True, exist_ok=True)
clf.save(args.output / "mnist_dbn.safetensors")  # deepbelief.load(path) reads it back

# the generative model: the top RBM learns the features joined with the labels
gen = deepbelief.DBN(
    (500, 500, 2000),
    pretrain_epochs=10,
    pretrain_batch_size=100,
    layer_params=[{}, {}, {**top, "k": 5}],
    random_state=0,
)
threes = gen.fit(X, y).sample(10, label=3)  # ten new images of a 3, shape (10, 784)
print("the classifier reads the ten samples as", clf.predict(threes))
for line in threes[0].reshape(28, 28):
    print("".join(" .:-=+*#%@"[min(int(p * 10), 9)] for p in line))

"""A small PyTorch CNN classifier for gantry's Python bridge, reporting like the Rust
classifier plugin (plugins/classifier) so the runner derives the same metrics.

Network, one block per entry of `channels` (default 16, 32, 64): Conv3x3 pad 1 ->
LeakyReLU(0.2) (or ReLU) -> MaxPool 2; then global average pooling, dropout (training
only) and a linear layer to num_classes logits. Cross-entropy, Adam with the run's lr
(default 1e-3).

train_step returns `loss` and `accuracy` (of the batch, before the update). eval returns
`loss` and one score per class, `p/0` .. `p/{K-1}` (the softmax probability of that class
for each image): from those and the labels the runner computes accuracy, macro F1, the
confusion matrix and one-vs-rest AUROC. For the batches the host wants
images of, eval adds a `saliency` grid: the first 8 images above |d logit_true / d input|
(max over channels, normalised per image).

Seeded with torch.manual_seed(setup["seed"]); save/load keep the weights, Adam's state, the
step and the RNG states (dropout masks), so a resumed run continues exactly.
"""

import os

import torch
import torch.nn as nn

GANTRY_PLUGIN = {
    "name": "torch-classifier",
    "family": "classifier",
    "version": "0.1.0",
    "summary": "small PyTorch CNN classifier; per-class softmax probabilities p/0..p/{K-1} as scores",
    "params": {"channels": [16, 32, 64], "activation": "leaky_relu", "leaky_slope": 0.2, "dropout": 0.0},
    "losses": ["loss"],
    "metrics": ["accuracy"],
    # One score per class, p/0 .. p/{K-1}; K is known only at create (as the Rust plugin).
    "scores": ["p/0", "p/1"],
    "input": {"channels": [1, 3], "multiple_of": 8, "min_size": 8},
}

GRID = 8
FILE = "torch_classifier.pt"


class Net(nn.Module):
    def __init__(self, channels_in, classes, channels, slope, dropout):
        super().__init__()
        layers, cin = [], channels_in
        for c in channels:
            act = nn.LeakyReLU(slope) if slope is not None else nn.ReLU()
            layers += [nn.Conv2d(cin, c, 3, padding=1), act, nn.MaxPool2d(2)]
            cin = c
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(cin, classes)

    def forward(self, x):
        h = self.features(x).mean(dim=(2, 3))
        return self.head(self.dropout(h))


def pick_device(requested):
    if requested in ("auto", ""):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested, but torch sees no CUDA device")
    return torch.device(requested)


class Model:
    def __init__(self, params, setup):
        self.classes = setup["num_classes"]
        if self.classes < 2:
            raise ValueError(f"a classifier needs at least 2 classes, the dataset has {self.classes}")
        if params["activation"] not in ("leaky_relu", "relu"):
            raise ValueError(f"activation {params['activation']!r} is not one of leaky_relu, relu")
        self.torch_device = pick_device(setup["device"])
        self.device = str(self.torch_device)
        torch.manual_seed(setup["seed"])
        slope = float(params["leaky_slope"]) if params["activation"] == "leaky_relu" else None
        self.net = Net(
            setup["channels"], self.classes, [int(c) for c in params["channels"]], slope, float(params["dropout"])
        ).to(self.torch_device)
        lr = setup["lr"] if setup["lr"] is not None else 1e-3
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.step = 0

    def _inputs(self, images, labels):
        x = torch.from_numpy(images).to(self.torch_device)
        y = torch.from_numpy(labels.astype("int64")).to(self.torch_device)
        return x, y

    def train_step(self, images, labels):
        x, y = self._inputs(images, labels)
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        logits = self.net(x)
        loss = nn.functional.cross_entropy(logits, y)
        loss.backward()
        self.opt.step()
        self.step += 1
        accuracy = (logits.argmax(1) == y).float().mean()
        return {"loss": loss.item(), "accuracy": accuracy.item()}

    def eval(self, images, labels):
        x, y = self._inputs(images, labels)
        self.net.eval()
        with torch.no_grad():
            logits = self.net(x)
            loss = nn.functional.cross_entropy(logits, y)
            probs = logits.softmax(1)
        out = {
            # Only the loss: the runner derives accuracy (and F1, AUROC) from p/k and the labels.
            "scalars": {"loss": loss.item()},
            "scores": {f"p/{k}": probs[:, k] for k in range(self.classes)},
        }
        k = min(GRID, len(images))
        xs = x[:k].clone().requires_grad_(True)
        self.net(xs).gather(1, y[:k, None]).sum().backward()
        heat = xs.grad.abs().amax(1, keepdim=True)
        heat = heat / heat.flatten(1).amax(1).clamp_min(1e-12)[:, None, None, None]
        self.net.zero_grad(set_to_none=True)
        shown = x[:k] if x.shape[1] == 1 else x[:k].mean(1, keepdim=True)
        out["images"] = {"saliency": (torch.cat([shown, heat]), k)}
        return out

    def save(self, dir):
        state = {
            "model": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "step": self.step,
            "rng": torch.get_rng_state(),
        }
        if torch.cuda.is_available():
            state["cuda_rng"] = torch.cuda.get_rng_state_all()
        torch.save(state, os.path.join(dir, FILE))

    def load(self, dir):
        state = torch.load(os.path.join(dir, FILE), map_location="cpu", weights_only=True)
        self.net.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

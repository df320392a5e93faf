"""gantry's reference conv-ae (plugins/conv-ae) in PyTorch, for gantry's Python bridge.

The network is `ConvAE` of tests/peers/conv_ae_torch.py (the PyTorch twin the benchmarks
and the weights-interop check use), with its input size split into height and width and
the activation selectable as in the Rust plugin: encoder [Conv3x3 pad 1 -> LeakyReLU(0.2)
-> MaxPool 2] for channels (32, 64, 128); Linear(flat -> latent 64); Linear(latent ->
flat); decoder [Upsample x2 nearest -> Conv3x3 -> LeakyReLU(0.2)] for (64, 32); then
Upsample x2 -> Conv3x3 -> C -> Sigmoid. PyTorch's default init (what gantry's kit
reproduces from the seed), MSE loss (BCE selectable), Adam with the run's lr (default
1e-3). Its state_dict keys are the ones tests/peers/load_conv_ae_torch.py maps gantry's
checkpoints to. Not ported: the Rust plugin's image-quality metrics (PSNR, SSIM, ...).

Seeded with torch.manual_seed(setup["seed"]); save/load keep the weights, Adam's state,
the step and the RNG states (torch.save), so a resumed run continues exactly.
"""

import os

import torch
import torch.nn as nn

GANTRY_PLUGIN = {
    "name": "torch-conv-ae",
    "family": "autoencoder",
    "version": "0.1.0",
    "summary": "PyTorch twin of conv-ae; per-image reconstruction error as anomaly score",
    # plugins/conv-ae's ConvAeConfig::default(), less quality_metrics.
    "params": {
        "channels": [32, 64, 128],
        "latent": 64,
        "activation": "leaky_relu",
        "leaky_slope": 0.2,
        "loss": "mse",
    },
    "losses": ["loss"],
    "scores": ["mse"],
    # Each level halves H and W: the default depth 3 needs multiples of 8.
    "input": {"channels": [1, 3], "multiple_of": 8, "min_size": 8},
}

GRID = 8
FILE = "torch_conv_ae.pt"


class ConvAE(nn.Module):
    def __init__(self, channels_in=1, height=64, width=64, channels=(32, 64, 128), latent=64, slope=0.2):
        super().__init__()

        def act():
            return nn.LeakyReLU(slope) if slope is not None else nn.ReLU()

        layers, cin = [], channels_in
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, padding=1), act(), nn.MaxPool2d(2)]
            cin = c
        self.encoder = nn.Sequential(*layers)
        depth = len(channels)
        self.bottom = (cin, height >> depth, width >> depth)
        flat = cin * self.bottom[1] * self.bottom[2]
        self.down = nn.Linear(flat, latent)
        self.up = nn.Linear(latent, flat)
        layers = []
        for c in reversed(channels[:-1]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, c, 3, padding=1), act()]
            cin = c
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, channels_in, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def encode(self, x):
        return self.down(self.encoder(x).flatten(1))

    def decode(self, z):
        return self.decoder(self.up(z).view(z.shape[0], *self.bottom))

    def forward(self, x):
        return self.decode(self.encode(x))


def pick_device(requested):
    if requested in ("auto", ""):
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {requested!r} requested, but torch sees no CUDA device")
    return torch.device(requested)


class Model:
    def __init__(self, params, setup):
        channels = [int(c) for c in params["channels"]]
        depth = len(channels)
        for side in ("height", "width"):
            if setup[side] % (1 << depth):
                raise ValueError(f"{side} {setup[side]} is not divisible by 2^depth = {1 << depth}")
        if params["activation"] not in ("leaky_relu", "relu"):
            raise ValueError(f"activation {params['activation']!r} is not one of leaky_relu, relu")
        if params["loss"] not in ("mse", "bce"):
            raise ValueError(f"loss {params['loss']!r} is not one of mse, bce")
        self.loss_kind = params["loss"]
        self.torch_device = pick_device(setup["device"])
        self.device = str(self.torch_device)
        torch.manual_seed(setup["seed"])
        slope = float(params["leaky_slope"]) if params["activation"] == "leaky_relu" else None
        self.net = ConvAE(
            setup["channels"], setup["height"], setup["width"], channels, int(params["latent"]), slope
        ).to(self.torch_device)
        lr = setup["lr"] if setup["lr"] is not None else 1e-3
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr)
        self.step = 0

    def _loss(self, recon, x):
        if self.loss_kind == "bce":
            return nn.functional.binary_cross_entropy(recon, x)
        return nn.functional.mse_loss(recon, x)

    def _tensor(self, images):
        return torch.from_numpy(images).to(self.torch_device)

    def train_step(self, images, labels):
        x = self._tensor(images)
        self.net.train()
        self.opt.zero_grad(set_to_none=True)
        loss = self._loss(self.net(x), x)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"loss": loss.item()}

    def eval(self, images, labels):
        x = self._tensor(images)
        self.net.eval()
        with torch.no_grad():
            z = self.net.encode(x)
            recon = self.net.decode(z)
            loss = self._loss(recon, x)
            mse = ((recon - x) ** 2).flatten(1).mean(1)
        k = min(GRID, len(images))
        return {
            "scalars": {"loss": loss.item()},
            "scores": {"mse": mse},
            "images": {"reconstruction": (torch.cat([x[:k], recon[:k]]), k)},
            "vectors": {"latent": z},
        }

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

"""PyTorch twin of gantry's reference conv-ae plugin, for side-by-side timing.

Same layers as plugins/conv-ae (defaults): encoder [Conv3x3 pad 1 -> LeakyReLU(0.2) ->
MaxPool 2] for channels (32, 64, 128); Linear(flat -> 64); Linear(64 -> flat); decoder
[Upsample x2 nearest -> Conv3x3 -> LeakyReLU(0.2)] for (64, 32); Upsample x2 -> Conv3x3 ->
C -> Sigmoid. MSE loss, Adam lr 1e-3. Initialisation: PyTorch's defaults for Conv2d and
Linear (uniform in +-1/sqrt(fan_in) for weights and biases), which is the scheme gantry's
kit reproduces from the run seed.

Prints one line ending in "img/s" (like `gantry bench train`) and the peak RSS.
"""

import argparse
import resource
import time

import torch
import torch.nn as nn


class ConvAE(nn.Module):
    def __init__(self, channels_in=1, size=64, channels=(32, 64, 128), latent=64):
        super().__init__()
        layers, cin = [], channels_in
        for c in channels:
            layers += [nn.Conv2d(cin, c, 3, padding=1), nn.LeakyReLU(0.2), nn.MaxPool2d(2)]
            cin = c
        self.encoder = nn.Sequential(*layers)
        side = size >> len(channels)
        self.bottom = (cin, side, side)
        flat = cin * side * side
        self.down = nn.Linear(flat, latent)
        self.up = nn.Linear(latent, flat)
        layers = []
        for c in reversed(channels[:-1]):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, c, 3, padding=1), nn.LeakyReLU(0.2)]
            cin = c
        layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, channels_in, 3, padding=1), nn.Sigmoid()]
        self.decoder = nn.Sequential(*layers)

    def forward(self, x):
        z = self.down(self.encoder(x).flatten(1))
        return self.decoder(self.up(z).view(x.shape[0], *self.bottom))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--eval", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = ConvAE(a.channels, a.size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(7)
    # Random data in [0, 1), not zeros; four batches rotate, as in `gantry bench train`.
    batches = [torch.rand(a.batch, a.channels, a.size, a.size, generator=gen) for _ in range(4)]

    def step(i):
        x = batches[i % len(batches)]
        if a.eval:
            with torch.no_grad():
                r = model(x)
                ((r - x) ** 2).flatten(1).mean(1)
        else:
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.mse_loss(model(x), x)
            loss.backward()
            opt.step()

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(a.steps):
        step(i)
    secs = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kind = "eval" if a.eval else "train"
    print(
        f"pytorch {torch.__version__} conv-ae {kind} {a.channels}x{a.size}x{a.size} batch {a.batch} "
        f"threads {a.threads}: peak RSS {rss:.0f} MB, {secs * 1e3 / a.steps:.1f} ms/step, "
        f"{a.steps * a.batch / secs:.1f} img/s"
    )


if __name__ == "__main__":
    main()

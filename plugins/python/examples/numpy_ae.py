"""A numpy-only anomaly detector for gantry's Python bridge: no torch needed.

A linear autoencoder with tied weights, x_hat = mu + W W^T (x - mu), trained on normal
images by Adam on the mean squared reconstruction error. Its optimum spans the top
principal components of the normal images (PCA learnt by gradient descent), so it
reconstructs normal tissue well and cannot reconstruct what normal images never show:
large high-contrast lesions leave a high per-image error, the anomaly score.

Deterministic given setup["seed"] (it seeds W's orthonormal init; training draws nothing
else). save/load keep mu, W, Adam's moments and the step, so a resumed run continues
exactly.
"""

import os

import numpy as np

GANTRY_PLUGIN = {
    "name": "numpy-ae",
    "family": "autoencoder",
    "version": "0.1.0",
    "summary": "linear (PCA-like) autoencoder in numpy; per-image reconstruction error as anomaly score",
    "params": {"latent": 16, "beta1": 0.9, "beta2": 0.999},
    "losses": ["loss"],
    "scores": ["mse"],
    "input": {"channels": [1, 3], "multiple_of": 1, "min_size": 4},
}

DEFAULT_LR = 3e-3
EPS = 1e-8
GRID = 8


class Model:
    def __init__(self, params, setup):
        self.dim = setup["channels"] * setup["height"] * setup["width"]
        self.latent = int(params["latent"])
        if not 0 < self.latent <= self.dim:
            raise ValueError(f"latent must be in 1..{self.dim}, not {self.latent}")
        self.lr = setup["lr"] if setup["lr"] is not None else DEFAULT_LR
        self.beta1 = float(params["beta1"])
        self.beta2 = float(params["beta2"])
        rng = np.random.default_rng(setup["seed"])
        q, _ = np.linalg.qr(rng.standard_normal((self.dim, self.latent)))
        self.params = {
            "mu": np.full(self.dim, 0.5, dtype=np.float64),
            "w": q.astype(np.float64),
        }
        self.m = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.v = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.step = 0
        self.device = "cpu"

    def _forward(self, images):
        x = images.reshape(len(images), -1).astype(np.float64)
        r = x - self.params["mu"]
        z = r @ self.params["w"]
        e = z @ self.params["w"].T - r  # x_hat - x
        return x, r, z, e

    def train_step(self, images, labels):
        x, r, z, e = self._forward(images)
        w = self.params["w"]
        scale = 2.0 / e.size
        # Gradients of mean(e^2), e = (W W^T - I) r with r = x - mu: through W twice (the
        # encoder and the decoder), and through mu with de/dmu = I - W W^T.
        es = e.sum(0)
        grads = {
            "w": scale * (e.T @ z + r.T @ (e @ w)),
            "mu": scale * (es - w @ (w.T @ es)),
        }
        self.step += 1
        for k, g in grads.items():
            self.m[k] = self.beta1 * self.m[k] + (1 - self.beta1) * g
            self.v[k] = self.beta2 * self.v[k] + (1 - self.beta2) * g * g
            m_hat = self.m[k] / (1 - self.beta1**self.step)
            v_hat = self.v[k] / (1 - self.beta2**self.step)
            self.params[k] -= self.lr * m_hat / (np.sqrt(v_hat) + EPS)
        return {"loss": float(np.mean(e * e))}

    def eval(self, images, labels):
        x, r, z, e = self._forward(images)
        per_image = np.mean(e * e, axis=1)
        recon = np.clip(x + e, 0.0, 1.0).reshape(images.shape).astype(np.float32)
        k = min(GRID, len(images))
        grid = np.concatenate([images[:k], recon[:k]])
        return {
            "scalars": {"loss": float(per_image.mean())},
            "scores": {"mse": per_image},
            # Originals above reconstructions, k per row.
            "images": {"reconstruction": (grid, k)},
            "vectors": {"latent": z},
        }

    def save(self, dir):
        state = {"step": np.array(self.step)}
        for k in self.params:
            state[f"param_{k}"] = self.params[k]
            state[f"adam_m_{k}"] = self.m[k]
            state[f"adam_v_{k}"] = self.v[k]
        np.savez(os.path.join(dir, "numpy_ae.npz"), **state)

    def load(self, dir):
        with np.load(os.path.join(dir, "numpy_ae.npz")) as state:
            self.step = int(state["step"])
            for k in self.params:
                if state[f"param_{k}"].shape != self.params[k].shape:
                    raise ValueError(
                        f"checkpoint {k} has shape {state[f'param_{k}'].shape}, "
                        f"this model {self.params[k].shape}"
                    )
                self.params[k] = state[f"param_{k}"].copy()
                self.m[k] = state[f"adam_m_{k}"].copy()
                self.v[k] = state[f"adam_v_{k}"].copy()

//! gantry plugin: a convolutional variational autoencoder, for anomaly detection (trained on
//! normal images only; a high per-image reconstruction error or negative ELBO flags an
//! anomaly), representation learning (the posterior means) and sampling from the prior.
//!
//! The encoder and decoder are conv-ae's: encoder `[Conv3x3 pad 1 -> LeakyReLU(0.2) ->
//! MaxPool 2]` for channels (32, 64, 128); two linear heads `mu` and `logvar`
//! (`flat -> 32`); `Linear(32 -> flat)`; decoder `[Upsample x2 nearest -> Conv3x3 ->
//! LeakyReLU(0.2)]` for channels (64, 32); then `Upsample x2 -> Conv3x3 -> C -> Sigmoid`.
//!
//! Training samples `z = mu + exp(0.5 logvar) * eps` (reparameterisation) and minimises
//! `recon + beta * KL(q(z|x) || N(0, I))`, each term summed over pixels / latent dimensions
//! and averaged over the batch; `recon` is binary cross-entropy (default) or squared error.
//! `beta` may be warmed up linearly from 0 over `warmup_steps`. The noise `eps` is drawn
//! from ChaCha8 seeded by the run seed (candle's CPU `randn` cannot be seeded), so a run is
//! reproducible on the CPU.

use std::path::Path;

use candle_core::{D, DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use gantry_kit::layers::{self, Conv2d};
use gantry_kit::loss::{self, Reconstruction};
use gantry_kit::optim::{Adam, AdamConfig};
use gantry_kit::{batch, checkpoint, device, init, ops, params};
use gantry_plugin_api::{
    Batch, Context, Description, ImageRef, InputConstraints, Level, Model, PluginError,
    PluginResult, Setup,
};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

// Training allocates and frees many activation-sized buffers per step; mimalloc keeps them
// (see conv-ae). Each plugin has its own allocator; nothing allocated here is freed by the
// host.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hyper-parameters, with conv-ae's encoder and decoder as defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VaeConfig {
    /// Encoder channels per level; the depth is their count (each level halves H and W).
    pub channels: Vec<usize>,
    /// Dimension of the latent space (the `mu` and `logvar` heads).
    pub latent: usize,
    /// `leaky_relu` or `relu`.
    pub activation: String,
    /// Negative slope of `leaky_relu`.
    pub leaky_slope: f64,
    /// Reconstruction term: `bce` (Bernoulli likelihood) or `mse` (squared error), summed
    /// over pixels and averaged over the batch.
    pub recon: String,
    /// Weight of the KL term (1 is the plain VAE, above 1 a beta-VAE).
    pub beta: f64,
    /// Steps over which the KL weight rises linearly from 0 to `beta` (0: no warm-up).
    pub warmup_steps: u64,
    /// Log PSNR, SSIM, GMSD, MDSI, HaarPSI... of reconstructions at each evaluation. At
    /// 64x64 they cost about as much as the forward pass; `gantry bench train --eval`
    /// turns them off to time the forward pass alone.
    pub quality_metrics: bool,
}

impl Default for VaeConfig {
    fn default() -> Self {
        VaeConfig {
            channels: vec![32, 64, 128],
            latent: 32,
            activation: "leaky_relu".into(),
            leaky_slope: 0.2,
            recon: "bce".into(),
            beta: 1.0,
            warmup_steps: 0,
            quality_metrics: true,
        }
    }
}

impl VaeConfig {
    fn reconstruction(&self) -> std::result::Result<Reconstruction, String> {
        match self.recon.as_str() {
            "mse" => Ok(Reconstruction::Mse),
            "bce" => Ok(Reconstruction::Bce),
            other => Err(format!("params: recon {other:?} is not one of bce, mse")),
        }
    }

    fn check(&self, setup: &Setup) -> std::result::Result<(), String> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("params: channels must be a non-empty list of positive counts".into());
        }
        if self.latent == 0 {
            return Err("params: latent must be positive".into());
        }
        if !matches!(self.activation.as_str(), "leaky_relu" | "relu") {
            return Err(format!(
                "params: activation {:?} is not one of leaky_relu, relu",
                self.activation
            ));
        }
        if !self.leaky_slope.is_finite() {
            return Err(format!(
                "params: leaky_slope must be finite, got {}",
                self.leaky_slope
            ));
        }
        if !(self.beta.is_finite() && self.beta >= 0.0) {
            return Err(format!(
                "params: beta must be a finite number >= 0, got {}",
                self.beta
            ));
        }
        self.reconstruction()?;
        params::check_input(setup, self.channels.len(), "vae")
    }
}

/// The network: encoder convs, `mu`/`logvar` heads, the latent-to-feature linear, decoder
/// convs, output conv.
pub struct VaeNet {
    encoder: Vec<Conv2d>,
    mu: Linear,
    logvar: Linear,
    up: Linear,
    decoder: Vec<Conv2d>,
    output: Conv2d,
    /// Shape of the deepest feature map: (channels, height, width).
    bottom: (usize, usize, usize),
    latent: usize,
    leaky_slope: Option<f64>,
}

impl VaeNet {
    pub fn new(cfg: &VaeConfig, setup: &Setup, vb: VarBuilder) -> Result<VaeNet> {
        let mut encoder = Vec::new();
        let mut in_c = setup.channels;
        for (i, &c) in cfg.channels.iter().enumerate() {
            encoder.push(layers::conv2d(
                in_c,
                c,
                3,
                1,
                vb.pp(format!("enc.{i}.conv")),
            )?);
            in_c = c;
        }
        let depth = cfg.channels.len();
        let bottom = (in_c, setup.height >> depth, setup.width >> depth);
        let flat = bottom.0 * bottom.1 * bottom.2;
        let mu = candle_nn::linear(flat, cfg.latent, vb.pp("bottleneck.mu"))?;
        let logvar = candle_nn::linear(flat, cfg.latent, vb.pp("bottleneck.logvar"))?;
        let up = candle_nn::linear(cfg.latent, flat, vb.pp("bottleneck.up"))?;
        let mut decoder = Vec::new();
        for (i, &c) in cfg.channels.iter().rev().skip(1).enumerate() {
            decoder.push(layers::conv2d(
                in_c,
                c,
                3,
                1,
                vb.pp(format!("dec.{i}.conv")),
            )?);
            in_c = c;
        }
        let output = layers::conv2d(in_c, setup.channels, 3, 1, vb.pp("out.conv"))?;
        Ok(VaeNet {
            encoder,
            mu,
            logvar,
            up,
            decoder,
            output,
            bottom,
            latent: cfg.latent,
            leaky_slope: (cfg.activation == "leaky_relu").then_some(cfg.leaky_slope),
        })
    }

    /// LeakyReLU's slope, 0 for ReLU: fused into the convolution before it.
    fn slope(&self) -> f64 {
        self.leaky_slope.unwrap_or(0.0)
    }

    /// The posterior's parameters `(mu, logvar)`, each `[n, latent]`.
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let mut h = x.clone();
        for conv in &self.encoder {
            h = ops::pool::max_pool2x2(&conv.forward_leaky(&h, self.slope())?)?;
        }
        let h = h.flatten_from(1)?;
        Ok((self.mu.forward(&h)?, self.logvar.forward(&h)?))
    }

    /// Images in (0, 1) from latent codes `[n, latent]`.
    pub fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let n = z.dim(0)?;
        let (c, bh, bw) = self.bottom;
        let mut h = self.up.forward(z)?.reshape((n, c, bh, bw))?;
        for conv in &self.decoder {
            h = conv.forward_leaky(&ops::pool::upsample2x(&h)?, self.slope())?;
        }
        let out = self.output.forward(&ops::pool::upsample2x(&h)?)?;
        candle_nn::ops::sigmoid(&out)
    }

    /// Per-image terms of the negative ELBO with one sample `z = mu + exp(0.5 logvar) * eps`
    /// (`eps` is `[n, latent]`): the reconstruction loss summed over pixels and the KL.
    pub fn terms(&self, x: &Tensor, eps: &Tensor, kind: Reconstruction) -> Result<Terms> {
        let (mu, logvar) = self.encode(x)?;
        let z = (&mu + (&logvar * 0.5)?.exp()?.mul(eps)?)?;
        let recon = self.decode(&z)?;
        let pixels = x.elem_count() / x.dim(0)?.max(1);
        Ok(Terms {
            recon: (loss::per_image(kind, &recon, x)? * pixels as f64)?,
            kl: kl_per_image(&mu, &logvar)?,
            mu,
        })
    }
}

/// Per-image loss terms, each `[n]`, and the posterior means `[n, latent]`.
pub struct Terms {
    pub recon: Tensor,
    pub kl: Tensor,
    pub mu: Tensor,
}

/// `KL(N(mu, diag(exp(logvar))) || N(0, I))` per row, in closed form:
/// `0.5 * sum(exp(logvar) + mu^2 - 1 - logvar)`. Inputs `[n, latent]`, output `[n]`.
pub fn kl_per_image(mu: &Tensor, logvar: &Tensor) -> Result<Tensor> {
    let t = ((logvar.exp()? + mu.sqr()?)? - logvar)?;
    (t - 1.0)?.sum(D::Minus1)? * 0.5
}

/// A uniform draw in [0, 1) with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `n` standard normal draws (Box-Muller), identical on every machine for a given stream.
pub fn standard_normal(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - unit(rng); // (0, 1]: the log is finite
        let u2 = unit(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// ChaCha8 streams of the run seed: stream 0 is the weight initialisation (the kit's), the
/// others are this plugin's noise, so no two uses share draws.
const TRAIN_STREAM: u64 = 1;
const EVAL_STREAM: u64 = 2;
const PRIOR_STREAM: u64 = 3;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Images per sample grid row.
const GRID_COLUMNS: usize = 8;
/// Images in the prior grid (decoded from a fixed draw, the same every epoch).
const PRIOR_SAMPLES: usize = 16;
/// Latent dimensions shown in the traversal grid (rows), and values per dimension (columns).
const TRAVERSAL_DIMS: usize = 8;
const TRAVERSAL_STEPS: usize = 8;
/// The traversal sets one dimension to values evenly spaced in [-LIMIT, LIMIT].
const TRAVERSAL_LIMIT: f32 = 3.0;
/// Images decoded per chunk by `sample`.
const SAMPLE_CHUNK: usize = 256;
/// The noise streams' positions, saved beside the weights so a resumed run draws on.
const NOISE_FILE: &str = "noise.ron";

/// Losses of one training step, batch means.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLosses {
    pub recon: f64,
    pub kl: f64,
    /// `recon + beta_t * kl`, with the warmed-up `beta_t` of this step.
    pub loss: f64,
}

/// What one evaluation batch yields.
pub struct EvalOutput {
    /// `recon + beta * kl` with one sample, batch mean (full `beta`, no warm-up).
    pub loss: f64,
    /// Per-image mean squared error of the mean reconstruction (decoding `mu`).
    pub mse: Vec<f32>,
    /// Per-image negative ELBO (`recon + kl`), one sample.
    pub elbo: Vec<f32>,
    /// The mean reconstructions `[n, c, h, w]`.
    pub reconstruction: Tensor,
    /// The posterior means `[n, latent]`.
    pub mu: Tensor,
}

#[derive(Serialize, Deserialize)]
struct NoiseState {
    /// ChaCha word positions (u128, as decimal text).
    train: String,
    eval: String,
}

/// The plugin instance: network, weights, optimiser, noise streams.
pub struct Vae {
    net: VaeNet,
    varmap: VarMap,
    adam: Adam,
    device: Device,
    recon: Reconstruction,
    beta: f64,
    warmup_steps: u64,
    seed: u64,
    channels: usize,
    height: usize,
    width: usize,
    train_rng: ChaCha8Rng,
    eval_rng: ChaCha8Rng,
    /// Whether eval logs image quality metrics.
    quality: bool,
}

impl Vae {
    /// Builds the model on `device` with seeded weights.
    pub fn build(cfg: &VaeConfig, setup: &Setup, device: Device) -> PluginResult<Vae> {
        cfg.check(setup).map_err(PluginError::new)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = VaeNet::new(cfg, setup, vb)?;
        init::pytorch_default(&varmap, setup.seed)?;
        let adam = Adam::new(
            &varmap,
            AdamConfig {
                lr: setup.learning_rate.unwrap_or(1e-3),
                ..Default::default()
            },
        )?;
        Ok(Vae {
            net,
            varmap,
            adam,
            device,
            recon: cfg.reconstruction().map_err(PluginError::new)?,
            beta: cfg.beta,
            warmup_steps: cfg.warmup_steps,
            seed: setup.seed,
            channels: setup.channels,
            height: setup.height,
            width: setup.width,
            train_rng: stream(setup.seed, TRAIN_STREAM),
            eval_rng: stream(setup.seed, EVAL_STREAM),
            quality: cfg.quality_metrics,
        })
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        let data = self.varmap.data().lock().expect("varmap lock");
        data.values().map(|v| v.elem_count()).sum()
    }

    pub fn net(&self) -> &VaeNet {
        &self.net
    }

    /// The KL weight after `steps_done` optimiser steps: `beta`, ramped linearly from 0
    /// over `warmup_steps` when that is positive.
    pub fn beta_at(&self, steps_done: u64) -> f64 {
        if self.warmup_steps == 0 {
            self.beta
        } else {
            self.beta * (steps_done as f64 / self.warmup_steps as f64).min(1.0)
        }
    }

    /// Standard normal `[rows, latent]` from `rng`, on this model's device.
    fn noise(rng: &mut ChaCha8Rng, rows: usize, latent: usize, device: &Device) -> Result<Tensor> {
        Tensor::from_vec(standard_normal(rng, rows * latent), (rows, latent), device)
    }

    /// One optimisation step on `x` `[n, c, h, w]`.
    pub fn train_on(&mut self, x: &Tensor) -> Result<StepLosses> {
        let eps = Self::noise(
            &mut self.train_rng,
            x.dim(0)?,
            self.net.latent,
            &self.device,
        )?;
        let terms = self.net.terms(x, &eps, self.recon)?;
        let beta = self.beta_at(self.adam.steps());
        let recon = terms.recon.mean_all()?;
        let kl = terms.kl.mean_all()?;
        let loss = (&recon + (&kl * beta)?)?;
        self.adam.backward_step(&loss)?;
        Ok(StepLosses {
            recon: recon.to_scalar::<f32>()? as f64,
            kl: kl.to_scalar::<f32>()? as f64,
            loss: loss.to_scalar::<f32>()? as f64,
        })
    }

    /// Evaluates `x` without learning.
    pub fn evaluate(&mut self, x: &Tensor) -> Result<EvalOutput> {
        let eps = Self::noise(&mut self.eval_rng, x.dim(0)?, self.net.latent, &self.device)?;
        let terms = self.net.terms(x, &eps, self.recon)?;
        let mu = terms.mu.detach();
        let reconstruction = self.net.decode(&mu)?.detach();
        let mse = gantry_kit::fused::per_image_mse(&reconstruction, x)?;
        let elbo = (&terms.recon + &terms.kl)?;
        let loss = (&terms.recon + (&terms.kl * self.beta)?)?.mean_all()?;
        Ok(EvalOutput {
            loss: loss.to_scalar::<f32>()? as f64,
            mse: batch::to_vec(&mse)?,
            elbo: batch::to_vec(&elbo)?,
            reconstruction,
            mu,
        })
    }

    /// Decodes latent codes given as a flat row-major `[rows, latent]` vector.
    fn decode_rows(&self, z: Vec<f32>) -> Result<Tensor> {
        let rows = z.len() / self.net.latent;
        let z = Tensor::from_vec(z, (rows, self.net.latent), &self.device)?;
        Ok(self.net.decode(&z)?.detach())
    }

    /// `PRIOR_SAMPLES` images decoded from `z ~ N(0, I)`, the same draw on every call.
    pub fn prior_grid(&self) -> Result<Tensor> {
        let mut rng = stream(self.seed, PRIOR_STREAM);
        self.decode_rows(standard_normal(&mut rng, PRIOR_SAMPLES * self.net.latent))
    }

    /// Latent traversal around `mu` (one image's posterior mean): row `d` sets dimension `d`
    /// (the first `TRAVERSAL_DIMS`) to `TRAVERSAL_STEPS` values evenly spaced in [-3, 3],
    /// the other dimensions staying at `mu`. Returns `[rows * TRAVERSAL_STEPS, c, h, w]`.
    pub fn traversal_grid(&self, mu: &[f32]) -> Result<Tensor> {
        let latent = self.net.latent;
        let rows = latent.min(TRAVERSAL_DIMS);
        let mut z = Vec::with_capacity(rows * TRAVERSAL_STEPS * latent);
        for d in 0..rows {
            for s in 0..TRAVERSAL_STEPS {
                let t = s as f32 / (TRAVERSAL_STEPS - 1) as f32;
                let mut code = mu.to_vec();
                code[d] = -TRAVERSAL_LIMIT + 2.0 * TRAVERSAL_LIMIT * t;
                z.extend_from_slice(&code);
            }
        }
        self.decode_rows(z)
    }

    fn emit_grid(ctx: &mut Context<'_>, name: &str, images: &Tensor, columns: usize) -> Result<()> {
        let shape = batch::dims4(images)?;
        ctx.image(
            name,
            ImageRef {
                data: &batch::to_vec(images)?,
                shape,
                columns,
            },
        );
        Ok(())
    }

    fn emit_images(&self, x: &Tensor, out: &EvalOutput, ctx: &mut Context<'_>) -> Result<()> {
        let k = x.dim(0)?.min(GRID_COLUMNS);
        if k == 0 {
            return Ok(());
        }
        let pair = Tensor::cat(
            &[x.narrow(0, 0, k)?, out.reconstruction.narrow(0, 0, k)?],
            0,
        )?;
        Self::emit_grid(ctx, "reconstruction", &pair, k)?;
        Self::emit_grid(ctx, "prior", &self.prior_grid()?, GRID_COLUMNS)?;
        let mu0: Vec<f32> = out.mu.narrow(0, 0, 1)?.flatten_all()?.to_vec1()?;
        Self::emit_grid(
            ctx,
            "traversal",
            &self.traversal_grid(&mu0)?,
            TRAVERSAL_STEPS,
        )?;
        Ok(())
    }

    /// `n` images decoded from `z ~ N(0, I)` drawn from ChaCha8 seeded by `seed`.
    pub fn generate(&self, n: usize, seed: u64) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut parts = Vec::new();
        let mut left = n;
        while left > 0 {
            let rows = left.min(SAMPLE_CHUNK);
            parts.push(self.decode_rows(standard_normal(&mut rng, rows * self.net.latent))?);
            left -= rows;
        }
        if parts.is_empty() {
            return Tensor::zeros(
                (0, self.channels, self.height, self.width),
                DType::F32,
                &self.device,
            );
        }
        Tensor::cat(&parts, 0)
    }

    fn save_noise(&self, dir: &Path) -> std::result::Result<(), String> {
        let state = NoiseState {
            train: self.train_rng.get_word_pos().to_string(),
            eval: self.eval_rng.get_word_pos().to_string(),
        };
        let path = dir.join(NOISE_FILE);
        let text = ron::to_string(&state).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Restores the noise streams' positions; a checkpoint without the file keeps them.
    fn load_noise(&mut self, dir: &Path) -> std::result::Result<bool, String> {
        let path = dir.join(NOISE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let bad = |e: String| format!("{}: {e}", path.display());
        let state: NoiseState = ron::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let pos = |s: &str| {
            s.parse::<u128>()
                .map_err(|e| bad(format!("word position {s:?}: {e}")))
        };
        self.train_rng = stream(self.seed, TRAIN_STREAM);
        self.train_rng.set_word_pos(pos(&state.train)?);
        self.eval_rng = stream(self.seed, EVAL_STREAM);
        self.eval_rng.set_word_pos(pos(&state.eval)?);
        Ok(true)
    }
}

impl Model for Vae {
    fn describe() -> Description {
        Description {
            summary: "convolutional variational autoencoder; per-image reconstruction error \
                      (of the mean) and negative ELBO as anomaly scores; samples the prior"
                .into(),
            families: vec!["autoencoder".into(), "vae".into()],
            default_params: params::to_map_text(&VaeConfig::default()),
            losses: vec!["loss".into(), "recon".into(), "kl".into()],
            metrics: vec![],
            scores: vec!["mse".into(), "elbo".into()],
            input: InputConstraints {
                channels: vec![1, 3],
                multiple_of: 8,
                min_size: 8,
            },
            name: None,
            version: None,
        }
    }

    fn create(
        params: &str,
        device: &str,
        setup: &Setup,
        ctx: &mut Context<'_>,
    ) -> PluginResult<Self> {
        let cfg: VaeConfig = params::parse(params).map_err(PluginError::new)?;
        let model = Vae::build(&cfg, setup, device::open(device, ctx)?)?;
        ctx.info("parameters", &model.parameter_count().to_string());
        Ok(model)
    }

    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let losses = self.train_on(&x)?;
        ctx.scalar("recon", losses.recon);
        ctx.scalar("kl", losses.kl);
        ctx.scalar("loss", losses.loss);
        Ok(())
    }

    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let out = self.evaluate(&x)?;
        ctx.scalar("loss", out.loss);
        ctx.scores("mse", &out.mse);
        ctx.scores("elbo", &out.elbo);
        if self.quality {
            for (name, value) in gantry_kit::quality::batch_quality(&out.reconstruction, &x)? {
                ctx.scalar(name, value);
            }
        }
        // Posterior means for the host's embedding view (ignored before ABI 1.1).
        ctx.vectors("latent", &batch::to_vec(&out.mu)?, self.net.latent);
        if batch.want_images {
            self.emit_images(&x, &out, ctx)?;
        }
        Ok(())
    }

    fn sample(&mut self, n: usize, seed: u64, ctx: &mut Context<'_>) -> PluginResult<()> {
        let images = self.generate(n, seed)?;
        if n > 0 {
            Self::emit_grid(ctx, "sample", &images, n.min(GRID_COLUMNS))?;
        }
        Ok(())
    }

    fn save(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        checkpoint::save(dir, &self.varmap, &self.adam)?;
        self.save_noise(dir).map_err(PluginError::new)?;
        Ok(())
    }

    fn load(&mut self, dir: &Path, ctx: &mut Context<'_>) -> PluginResult<()> {
        checkpoint::load(dir, &self.varmap, &mut self.adam)?;
        if !self.load_noise(dir).map_err(PluginError::new)? {
            ctx.log(
                Level::Warn,
                &format!(
                    "{} has no {NOISE_FILE}; the noise streams go on from where they are",
                    dir.display()
                ),
            );
        }
        Ok(())
    }
}

gantry_plugin_api::export_model!(
    Vae,
    name: "vae",
    family: "vae",
    candle: gantry_kit::CANDLE_VERSION,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(size: usize) -> Setup {
        Setup {
            channels: 1,
            height: size,
            width: size,
            num_classes: 1,
            seed: 3,
            learning_rate: None,
            total_steps: None,
        }
    }

    fn small() -> VaeConfig {
        VaeConfig {
            channels: vec![8, 16],
            latent: 8,
            ..Default::default()
        }
    }

    fn build(cfg: &VaeConfig, setup: &Setup) -> Vae {
        Vae::build(cfg, setup, Device::Cpu)
            .map_err(|e| e.message().to_string())
            .unwrap()
    }

    /// Smooth blobs at varying positions: a learnable distribution.
    fn blobs(n: usize, size: usize) -> Tensor {
        let data: Vec<f32> = (0..n * size * size)
            .map(|i| {
                let (k, y, x) = (i / (size * size), (i / size) % size, i % size);
                let s = size as f32 / 16.0;
                let (cy, cx) = (s * (4.0 + k as f32), s * (10.0 - k as f32 / 2.0));
                (-((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)) / (12.0 * s * s)).exp()
            })
            .collect();
        Tensor::from_vec(data, (n, 1, size, size), &Device::Cpu).unwrap()
    }

    #[test]
    fn reference_architecture_shapes_and_parameter_count() {
        let model = build(&VaeConfig::default(), &setup(64));
        let x = Tensor::zeros((2, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
        let (mu, logvar) = model.net().encode(&x).unwrap();
        assert_eq!(mu.dims(), &[2, 32]);
        assert_eq!(logvar.dims(), &[2, 32]);
        assert_eq!(model.net().decode(&mu).unwrap().dims(), &[2, 1, 64, 64]);
        // enc: (1*9+1)*32 + (32*9+1)*64 + (64*9+1)*128; flat = 128*8*8 = 8192;
        // mu, logvar: 8192*32+32 each; up: 32*8192+8192;
        // dec: (128*9+1)*64 + (64*9+1)*32; out: (32*9+1)*1.
        let expected = 320 + 18_496 + 73_856 + 2 * 262_176 + 270_336 + 73_792 + 18_464 + 289;
        assert_eq!(model.parameter_count(), expected);
        // RGB, non-square.
        let rgb = Setup {
            channels: 3,
            height: 32,
            width: 48,
            ..setup(32)
        };
        let model = build(&VaeConfig::default(), &rgb);
        let x = Tensor::zeros((3, 3, 32, 48), DType::F32, &Device::Cpu).unwrap();
        let (mu, _) = model.net().encode(&x).unwrap();
        assert_eq!(model.net().decode(&mu).unwrap().dims(), &[3, 3, 32, 48]);
    }

    #[test]
    fn kl_is_zero_at_the_prior_and_matches_the_closed_form() {
        let zeros = Tensor::zeros((3, 5), DType::F32, &Device::Cpu).unwrap();
        let kl: Vec<f32> = kl_per_image(&zeros, &zeros).unwrap().to_vec1().unwrap();
        assert_eq!(kl, vec![0.0; 3]);

        // Per dimension KL(N(m, s^2) || N(0, 1)) = ln(1/s) + (s^2 + m^2 - 1) / 2.
        let rows = [
            [(1.0f64, 1.0f64), (-0.5, 2.0f64.sqrt())],
            [(0.0, 0.5), (2.0, 3.0)],
        ];
        let mu: Vec<f32> = rows.iter().flatten().map(|&(m, _)| m as f32).collect();
        let logvar: Vec<f32> = rows
            .iter()
            .flatten()
            .map(|&(_, s)| (s * s).ln() as f32)
            .collect();
        let mu = Tensor::from_vec(mu, (2, 2), &Device::Cpu).unwrap();
        let logvar = Tensor::from_vec(logvar, (2, 2), &Device::Cpu).unwrap();
        let got: Vec<f32> = kl_per_image(&mu, &logvar).unwrap().to_vec1().unwrap();
        for (row, &g) in rows.iter().zip(&got) {
            let want: f64 = row
                .iter()
                .map(|&(m, s)| (1.0 / s).ln() + (s * s + m * m - 1.0) / 2.0)
                .sum();
            assert!((g as f64 - want).abs() < 1e-5, "{got:?}");
        }
        // Worked by hand: row 0 = 0.5 + (ln(1/sqrt 2) + (2 + 0.25 - 1) / 2) = 0.7784.
        assert!((got[0] - 0.778_426).abs() < 1e-5, "{got:?}");
    }

    #[test]
    fn normal_draws_are_seeded_and_standard() {
        let a = standard_normal(&mut stream(5, TRAIN_STREAM), 20_001);
        let b = standard_normal(&mut stream(5, TRAIN_STREAM), 20_001);
        let c = standard_normal(&mut stream(5, EVAL_STREAM), 20_001);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 20_001);
        let n = a.len() as f64;
        let mean = a.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        assert!(a.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn warmup_ramps_beta_linearly() {
        let cfg = VaeConfig {
            beta: 4.0,
            warmup_steps: 10,
            ..small()
        };
        let model = build(&cfg, &setup(16));
        assert_eq!(model.beta_at(0), 0.0);
        assert_eq!(model.beta_at(5), 2.0);
        assert_eq!(model.beta_at(10), 4.0);
        assert_eq!(model.beta_at(1000), 4.0);
        let plain = build(&small(), &setup(16));
        assert_eq!(plain.beta_at(0), 1.0);
    }

    #[test]
    fn same_seed_same_losses_after_three_steps() {
        let x = blobs(8, 16);
        let run = |seed: u64| {
            let mut model = build(&small(), &Setup { seed, ..setup(16) });
            let mut last = None;
            for _ in 0..3 {
                last = Some(model.train_on(&x).unwrap());
            }
            let eval = model.evaluate(&x).unwrap();
            (last.unwrap(), eval.loss, eval.elbo)
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b);
        assert_ne!(a.0, c.0);
    }

    #[test]
    fn training_on_blobs_lowers_the_loss() {
        for recon in ["bce", "mse"] {
            let cfg = VaeConfig {
                recon: recon.into(),
                ..small()
            };
            let mut model = build(&cfg, &setup(16));
            let x = blobs(8, 16);
            let first = model.evaluate(&x).unwrap();
            let mut losses = Vec::new();
            for _ in 0..150 {
                losses.push(model.train_on(&x).unwrap());
            }
            let last = model.evaluate(&x).unwrap();
            let mean_mse = |v: &[f32]| v.iter().sum::<f32>() / v.len() as f32;
            assert!(
                last.loss < first.loss * 0.7,
                "{recon}: eval loss {} -> {}",
                first.loss,
                last.loss
            );
            assert!(
                mean_mse(&last.mse) < mean_mse(&first.mse) * 0.5,
                "{recon}: mse {} -> {}",
                mean_mse(&first.mse),
                mean_mse(&last.mse)
            );
            let tail = &losses[losses.len() - 10..];
            assert!(tail.iter().all(|l| l.loss.is_finite() && l.kl >= 0.0));
        }
    }

    #[test]
    fn eval_outputs_and_grids_have_the_promised_shapes() {
        let mut model = build(&small(), &setup(16));
        let x = blobs(5, 16);
        let out = model.evaluate(&x).unwrap();
        assert_eq!(out.mse.len(), 5);
        assert_eq!(out.elbo.len(), 5);
        assert_eq!(out.reconstruction.dims(), &[5, 1, 16, 16]);
        assert!(out.elbo.iter().all(|&e| e.is_finite() && e > 0.0));
        let prior = model.prior_grid().unwrap();
        assert_eq!(prior.dims(), &[PRIOR_SAMPLES, 1, 16, 16]);
        // Fixed draw: the same images on every call.
        assert_eq!(
            batch::to_vec(&prior).unwrap(),
            batch::to_vec(&model.prior_grid().unwrap()).unwrap()
        );
        let mu0: Vec<f32> = out
            .mu
            .narrow(0, 0, 1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let grid = model.traversal_grid(&mu0).unwrap();
        assert_eq!(grid.dims(), &[64, 1, 16, 16]);
        // A latent smaller than 8 gives one row per dimension.
        let tiny = build(
            &VaeConfig {
                latent: 3,
                ..small()
            },
            &setup(16),
        );
        assert_eq!(
            tiny.traversal_grid(&[0.0; 3]).unwrap().dims(),
            &[3 * TRAVERSAL_STEPS, 1, 16, 16]
        );
        assert_eq!(model.generate(300, 1).unwrap().dims(), &[300, 1, 16, 16]);
        assert_eq!(model.generate(0, 1).unwrap().dims(), &[0, 1, 16, 16]);
    }

    #[test]
    fn save_and_load_restore_weights_and_noise() {
        let x = blobs(4, 16);
        let mut a = build(&small(), &setup(16));
        a.train_on(&x).unwrap();
        let dir = tempfile::tempdir().unwrap();
        checkpoint::save(dir.path(), &a.varmap, &a.adam).unwrap();
        a.save_noise(dir.path()).unwrap();
        let mut b = build(
            &small(),
            &Setup {
                seed: 3,
                ..setup(16)
            },
        );
        checkpoint::load(dir.path(), &b.varmap, &mut b.adam).unwrap();
        assert!(b.load_noise(dir.path()).unwrap());
        assert_eq!(a.train_on(&x).unwrap(), b.train_on(&x).unwrap());
        assert_eq!(a.evaluate(&x).unwrap().elbo, b.evaluate(&x).unwrap().elbo);
        let empty = tempfile::tempdir().unwrap();
        assert!(!b.load_noise(empty.path()).unwrap());
    }

    #[test]
    fn bad_params_and_sizes_are_named() {
        let cfg: VaeConfig =
            params::parse("{\"latent\": 16, \"recon\": \"mse\", \"beta\": 4.0}").unwrap();
        assert_eq!(cfg.latent, 16);
        assert_eq!(cfg.beta, 4.0);
        assert_eq!(cfg.channels, vec![32, 64, 128]);
        let err = params::parse::<VaeConfig>("{\"latnet\": 16}").unwrap_err();
        assert!(err.contains("latnet"), "{err}");
        let err = params::parse::<VaeConfig>("{\"loss\": \"bce\"}").unwrap_err();
        assert!(err.contains("loss"), "{err}");
        let check = |cfg: VaeConfig| cfg.check(&setup(64)).unwrap_err();
        let err = check(VaeConfig {
            recon: "l1".into(),
            ..Default::default()
        });
        assert!(err.contains("recon") && err.contains("\"l1\""), "{err}");
        let err = check(VaeConfig {
            beta: -1.0,
            ..Default::default()
        });
        assert!(err.contains("beta"), "{err}");
        let err = check(VaeConfig {
            latent: 0,
            ..Default::default()
        });
        assert!(err.contains("latent"), "{err}");
        let err = check(VaeConfig {
            activation: "gelu".into(),
            ..Default::default()
        });
        assert!(err.contains("\"gelu\""), "{err}");
        let err = check(VaeConfig {
            channels: vec![],
            ..Default::default()
        });
        assert!(err.contains("channels"), "{err}");
        let err = Vae::build(&VaeConfig::default(), &setup(60), Device::Cpu)
            .err()
            .unwrap();
        assert!(
            err.message().contains("not divisible by 2^depth = 8"),
            "{}",
            err.message()
        );
        let two = Setup {
            channels: 2,
            ..setup(64)
        };
        let err = VaeConfig::default().check(&two).unwrap_err();
        assert!(err.contains("2 channels"), "{err}");
    }

    #[test]
    fn describe_lists_scores_families_and_parseable_defaults() {
        let d = Vae::describe();
        assert_eq!(d.scores, vec!["mse", "elbo"]);
        assert_eq!(d.families, vec!["autoencoder", "vae"]);
        assert_eq!(
            params::parse::<VaeConfig>(&d.default_params).unwrap(),
            VaeConfig::default()
        );
    }
}

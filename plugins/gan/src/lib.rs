//! gantry plugin: the GAN family in one library, the variant chosen by `variant`:
//!
//! - `dcgan` (Radford et al.): G = `Linear(z -> c0*4*4)` reshaped, BatchNorm, ReLU, then
//!   `[ConvTranspose 4x4 stride 2 -> BatchNorm -> ReLU]` up to the image size, the last
//!   transposed conv to the image channels with tanh (default) or sigmoid. D = `[Conv 4x4
//!   stride 2 pad 1 -> BatchNorm (not on the first) -> LeakyReLU 0.2]` down to 4x4, then
//!   `Linear(-> 1)` logits; BCE with logits, non-saturating G loss; Adam(2e-4, 0.5, 0.999).
//! - `wgan_gp` (Gulrajani et al.): the same critic without batch norm; loss
//!   `E[D(fake)] - E[D(real)] + lambda * E[(||grad_x D(x_hat)||_2 - 1)^2]`, n_critic 5,
//!   lambda 10, Adam(1e-4, 0.0, 0.9).
//! - `sngan` (Miyato et al.): every critic weight divided by its spectral norm, estimated by
//!   one power iteration per critic step (the `u` vectors are persisted, not trained); hinge
//!   (default) or BCE loss; Adam(2e-4, 0.5, 0.999).
//! - `acgan` (Odena et al.): G takes a label embedding concatenated to `z`; D has an
//!   auxiliary classifier head (cross-entropy on real and fake labels, emitted as `aux`).
//! - `wgan` (Arjovsky et al.): the critic's weights clipped to `[-clip, clip]` after every
//!   step; n_critic 5; Adam(5e-5, 0.0, 0.99) (the kit has no RMSprop; beta1 = 0 makes Adam
//!   RMSprop with bias correction).
//!
//! Images come in [0, 1]; with a tanh output they are mapped to [-1, 1] inside the plugin
//! and generated images mapped back. Each `train_step` takes `n_critic` critic steps on the
//! batch (fresh noise each) then one generator step. All noise (z, labels, interpolation
//! weights) is drawn from ChaCha8 seeded by the run seed, so a CPU run is reproducible.
//!
//! The gradient penalty is computed without second-order autograd: the critic's input
//! gradient is written out as a differentiable graph of candle ops (the transposed
//! convolutions of the backward pass, with LeakyReLU's derivative as a constant mask), and
//! one ordinary backward through that graph gives the penalty's exact gradient w.r.t. every
//! critic weight. candle's default backward detaches gradients, so taking the input
//! gradient with `backward()` and back-propagating through it would silently miss most of
//! the penalty's gradient unless `CANDLE_GRAD_DO_NOT_DETACH=1` were set before the thread's
//! first backward; this plugin needs no environment variable. The critic uses candle's own
//! `conv2d` (stride 2) and `conv_transpose2d`.

use std::path::Path;

use candle_core::{D, DType, Device, Module, ModuleT, Result, Tensor, Var};
use candle_nn::{BatchNorm, ConvTranspose2d, Embedding, Linear, VarBuilder, VarMap};
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

/// The GAN variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Dcgan,
    Wgan,
    WganGp,
    Sngan,
    Acgan,
}

impl Variant {
    fn parse(name: &str) -> std::result::Result<Variant, String> {
        Ok(match name {
            "dcgan" => Variant::Dcgan,
            "wgan" => Variant::Wgan,
            "wgan_gp" => Variant::WganGp,
            "sngan" => Variant::Sngan,
            "acgan" => Variant::Acgan,
            other => {
                return Err(format!(
                    "params: variant {other:?} is not one of dcgan, wgan, wgan_gp, sngan, acgan"
                ));
            }
        })
    }

    /// Batch norm in the critic (not with Wasserstein losses or spectral norm).
    fn critic_batch_norm(self) -> bool {
        matches!(self, Variant::Dcgan | Variant::Acgan)
    }

    /// Default (lr, beta1, beta2, n_critic).
    fn defaults(self) -> (f64, f64, f64, usize) {
        match self {
            Variant::Dcgan | Variant::Acgan | Variant::Sngan => (2e-4, 0.5, 0.999, 1),
            Variant::WganGp => (1e-4, 0.0, 0.9, 5),
            Variant::Wgan => (5e-5, 0.0, 0.99, 5),
        }
    }
}

/// Hyper-parameters. Zero (or empty) values of the optimiser fields mean "the variant's
/// default".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GanConfig {
    /// `dcgan`, `wgan`, `wgan_gp`, `sngan` or `acgan`.
    pub variant: String,
    /// Dimension of the latent noise `z`.
    pub z_dim: usize,
    /// Channels of G's last hidden layer; each coarser level doubles them (up to
    /// `max_width`).
    pub g_width: usize,
    /// Channels of D's first conv; each deeper level doubles them (up to `max_width`).
    pub d_width: usize,
    pub max_width: usize,
    /// G's output: `tanh` (data mapped to [-1, 1]) or `sigmoid` (data kept in [0, 1]).
    pub output: String,
    /// Negative slope of the critic's LeakyReLU.
    pub leaky_slope: f64,
    /// Critic steps per batch (0: 5 for wgan and wgan_gp, 1 otherwise).
    pub n_critic: usize,
    /// Learning rates (0: the run's `lr`, else the variant's default).
    pub lr_g: f64,
    pub lr_d: f64,
    /// Adam's (beta1, beta2) for both networks; empty for the variant's default.
    pub betas: Vec<f64>,
    /// Weight of the gradient penalty (wgan_gp).
    pub gp_lambda: f64,
    /// Weight clipping bound (wgan).
    pub clip: f64,
    /// sngan's loss: `hinge` or `bce`.
    pub sn_loss: String,
    /// acgan's label embedding size.
    pub embed_dim: usize,
}

impl Default for GanConfig {
    fn default() -> Self {
        GanConfig {
            variant: "dcgan".into(),
            z_dim: 100,
            g_width: 64,
            d_width: 64,
            max_width: 512,
            output: "tanh".into(),
            leaky_slope: 0.2,
            n_critic: 0,
            lr_g: 0.0,
            lr_d: 0.0,
            betas: vec![],
            gp_lambda: 10.0,
            clip: 0.01,
            sn_loss: "hinge".into(),
            embed_dim: 50,
        }
    }
}

impl GanConfig {
    pub fn variant(&self) -> std::result::Result<Variant, String> {
        Variant::parse(&self.variant)
    }

    fn check(&self, setup: &Setup) -> std::result::Result<(), String> {
        self.variant()?;
        for (name, v) in [
            ("z_dim", self.z_dim),
            ("g_width", self.g_width),
            ("d_width", self.d_width),
            ("max_width", self.max_width),
            ("embed_dim", self.embed_dim),
        ] {
            if v == 0 {
                return Err(format!("params: {name} must be positive"));
            }
        }
        if !matches!(self.output.as_str(), "tanh" | "sigmoid") {
            return Err(format!(
                "params: output {:?} is not one of tanh, sigmoid",
                self.output
            ));
        }
        if !matches!(self.sn_loss.as_str(), "hinge" | "bce") {
            return Err(format!(
                "params: sn_loss {:?} is not one of hinge, bce",
                self.sn_loss
            ));
        }
        if !(self.leaky_slope.is_finite() && self.leaky_slope >= 0.0) {
            return Err(format!(
                "params: leaky_slope must be finite and >= 0, got {}",
                self.leaky_slope
            ));
        }
        for (name, v) in [
            ("lr_g", self.lr_g),
            ("lr_d", self.lr_d),
            ("gp_lambda", self.gp_lambda),
            ("clip", self.clip),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("params: {name} must be finite and >= 0, got {v}"));
            }
        }
        if !(self.betas.is_empty()
            || (self.betas.len() == 2 && self.betas.iter().all(|b| (0.0..1.0).contains(b))))
        {
            return Err(format!(
                "params: betas must be empty or two numbers in [0, 1), got {:?}",
                self.betas
            ));
        }
        let s = setup.height;
        if setup.width != s || !s.is_power_of_two() || !(16..=256).contains(&s) {
            return Err(format!(
                "input {}x{}: gan needs square images whose side is a power of two from 16 \
                 to 256 (32, 64, 128...)",
                setup.height, setup.width
            ));
        }
        if !(setup.channels == 1 || setup.channels == 3) {
            return Err(format!(
                "input has {} channels; gan takes 1 (gray) or 3 (RGB)",
                setup.channels
            ));
        }
        if self.variant()? == Variant::Acgan && setup.num_classes == 0 {
            return Err("acgan needs setup.num_classes >= 1".into());
        }
        Ok(())
    }
}

/// Up/down-sampling levels between 4x4 and the image side.
fn levels(side: usize) -> usize {
    (side / 4).trailing_zeros() as usize
}

/// `x / ||x||` over all elements.
fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_all()?.sqrt()?;
    x.broadcast_div(&(norm + 1e-12)?)
}

/// `log(1 + exp(x))`, stable for any `x`.
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + (x.abs()?.neg()?.exp()? + 1.0)?.log()?
}

// ----- the generator -----

/// G: `[z, embed(label)] -> Linear -> [c0, 4, 4] -> BN -> ReLU -> (ConvT -> BN -> ReLU)* ->
/// ConvT -> tanh | sigmoid`.
pub struct Generator {
    embed: Option<Embedding>,
    fc: Linear,
    bn0: BatchNorm,
    ups: Vec<ConvTranspose2d>,
    bns: Vec<BatchNorm>,
    c0: usize,
    tanh: bool,
}

fn bn_config() -> candle_nn::BatchNormConfig {
    candle_nn::BatchNormConfig {
        eps: 1e-5,
        remove_mean: true,
        affine: true,
        momentum: 0.1,
    }
}

impl Generator {
    pub fn new(cfg: &GanConfig, setup: &Setup, vb: VarBuilder) -> Result<Generator> {
        let l = levels(setup.height);
        let width = |i: usize| (cfg.g_width << (l - 1 - i)).min(cfg.max_width);
        let c0 = width(0);
        let embed = if cfg.variant().ok() == Some(Variant::Acgan) {
            Some(candle_nn::embedding(
                setup.num_classes,
                cfg.embed_dim,
                vb.pp("g.embed"),
            )?)
        } else {
            None
        };
        let input = cfg.z_dim + embed.as_ref().map_or(0, |_| cfg.embed_dim);
        let fc = candle_nn::linear(input, c0 * 16, vb.pp("g.fc"))?;
        let bn0 = candle_nn::batch_norm(c0, bn_config(), vb.pp("g.bn0"))?;
        let up_cfg = candle_nn::ConvTranspose2dConfig {
            padding: 1,
            output_padding: 0,
            stride: 2,
            dilation: 1,
        };
        let mut ups = Vec::new();
        let mut bns = Vec::new();
        let mut cin = c0;
        for i in 0..l {
            let cout = if i + 1 == l {
                setup.channels
            } else {
                width(i + 1)
            };
            ups.push(candle_nn::conv_transpose2d(
                cin,
                cout,
                4,
                up_cfg,
                vb.pp(format!("g.up{i}")),
            )?);
            if i + 1 < l {
                bns.push(candle_nn::batch_norm(
                    cout,
                    bn_config(),
                    vb.pp(format!("g.bn{}", i + 1)),
                )?);
            }
            cin = cout;
        }
        Ok(Generator {
            embed,
            fc,
            bn0,
            ups,
            bns,
            c0,
            tanh: cfg.output == "tanh",
        })
    }

    /// Images in the model's range ([-1, 1] for tanh) from `z` `[n, z_dim]` (and labels
    /// `[n]` u32 for acgan). `train` selects batch statistics in batch norm.
    pub fn forward(&self, z: &Tensor, labels: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let input = match (&self.embed, labels) {
            (Some(e), Some(l)) => Tensor::cat(&[z, &e.forward(l)?], 1)?,
            (Some(_), None) => candle_core::bail!("acgan's generator needs labels"),
            _ => z.clone(),
        };
        let n = z.dim(0)?;
        let h = self.fc.forward(&input)?.reshape((n, self.c0, 4, 4))?;
        let mut h = self.bn0.forward_t(&h, train)?.relu()?;
        for (i, up) in self.ups.iter().enumerate() {
            h = up.forward(&h)?;
            if let Some(bn) = self.bns.get(i) {
                h = bn.forward_t(&h, train)?.relu()?;
            }
        }
        if self.tanh {
            h.tanh()
        } else {
            candle_nn::ops::sigmoid(&h)
        }
    }
}

// ----- the critic -----

/// One critic layer: weight (conv `[co, ci, 4, 4]` or linear `[1, f]`), bias, optional
/// batch norm, optional spectral-norm vector `u` `[co]`.
struct Layer {
    weight: Tensor,
    bias: Tensor,
    bn: Option<BatchNorm>,
    u: Option<Var>,
}

impl Layer {
    /// The weight used in the forward pass: `W / sigma(W)` with spectral norm, `sigma`
    /// estimated from the stored `u` (`v = normalize(W^T u)`, `sigma = u^T W v`; `u` and `v`
    /// are constants, the gradient flows through `W` in both places).
    fn effective_weight(&self) -> Result<Tensor> {
        let Some(u) = &self.u else {
            return Ok(self.weight.clone());
        };
        let out = self.weight.dim(0)?;
        let wm = self.weight.reshape((out, ()))?;
        let u = u.as_tensor().detach().reshape((out, 1))?;
        let v = l2_normalize(&wm.detach().t()?.matmul(&u)?)?;
        let sigma = u.t()?.matmul(&wm.matmul(&v)?)?;
        let ones = vec![1usize; self.weight.rank()];
        self.weight.broadcast_div(&sigma.reshape(ones)?)
    }

    /// One power iteration: `v = normalize(W^T u)`, `u = normalize(W v)`.
    fn power_iteration(&self) -> Result<()> {
        let Some(u) = &self.u else { return Ok(()) };
        let out = self.weight.dim(0)?;
        let wm = self.weight.detach().reshape((out, ()))?;
        let v = l2_normalize(&wm.t()?.matmul(&u.as_tensor().reshape((out, 1))?)?)?;
        let next = l2_normalize(&wm.matmul(&v)?)?;
        u.set(&next.reshape(out)?)
    }
}

/// D: `[Conv 4x4 s2 p1 -> (BN) -> LeakyReLU]` down to 4x4, `Linear(-> 1)`, and for acgan
/// `Linear(-> classes)` on the same features.
pub struct Critic {
    convs: Vec<Layer>,
    fc: Layer,
    aux: Option<Linear>,
    slope: f64,
}

impl Critic {
    /// Builds the critic; spectral-norm vectors are drawn from `sn_rng` when `spectral`.
    pub fn new(
        cfg: &GanConfig,
        setup: &Setup,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
        sn_rng: &mut ChaCha8Rng,
    ) -> Result<Critic> {
        let variant = cfg.variant().map_err(candle_core::Error::Msg)?;
        let vb = VarBuilder::from_varmap(varmap, dtype, device);
        let spectral = variant == Variant::Sngan;
        let zero = candle_nn::Init::Const(0.0);
        let mut make = |name: String,
                        shape: &[usize],
                        bn: Option<BatchNorm>,
                        vb: &VarBuilder|
         -> Result<Layer> {
            let weight = vb.get_with_hints(shape, &format!("{name}.weight"), zero)?;
            let bias = vb.get_with_hints(shape[0], &format!("{name}.bias"), zero)?;
            let u = if spectral {
                let key = format!("{name}.sn_u");
                vb.get_with_hints(shape[0], &key, zero)?;
                let draw: Vec<f32> = standard_normal(sn_rng, shape[0]);
                let u = l2_normalize(&Tensor::from_vec(draw, shape[0], device)?)?;
                let var = varmap.data().lock().expect("varmap lock")[&key].clone();
                var.set(&u.to_dtype(dtype)?)?;
                Some(var)
            } else {
                None
            };
            Ok(Layer {
                weight,
                bias,
                bn,
                u,
            })
        };
        let l = levels(setup.height);
        let mut convs = Vec::new();
        let mut cin = setup.channels;
        for i in 0..l {
            let cout = (cfg.d_width << i).min(cfg.max_width);
            let bn = if i > 0 && variant.critic_batch_norm() {
                Some(candle_nn::batch_norm(
                    cout,
                    bn_config(),
                    vb.pp(format!("d.bn{i}")),
                )?)
            } else {
                None
            };
            convs.push(make(format!("d.conv{i}"), &[cout, cin, 4, 4], bn, &vb)?);
            cin = cout;
        }
        let features = cin * 16;
        let fc = make("d.fc".into(), &[1, features], None, &vb)?;
        let aux = if variant == Variant::Acgan {
            Some(candle_nn::linear(
                features,
                setup.num_classes,
                vb.pp("d.aux"),
            )?)
        } else {
            None
        };
        Ok(Critic {
            convs,
            fc,
            aux,
            slope: cfg.leaky_slope,
        })
    }

    fn conv(layer: &Layer, x: &Tensor) -> Result<Tensor> {
        let w = layer.effective_weight()?;
        x.conv2d(&w, 1, 2, 1, 1)?
            .broadcast_add(&layer.bias.reshape((1, (), 1, 1))?)
    }

    /// Logits `[n]` and, for acgan, class logits `[n, classes]`.
    pub fn forward(&self, x: &Tensor, train: bool) -> Result<(Tensor, Option<Tensor>)> {
        let mut h = x.clone();
        for layer in &self.convs {
            h = Self::conv(layer, &h)?;
            if let Some(bn) = &layer.bn {
                h = bn.forward_t(&h, train)?;
            }
            h = ops::act::leaky_relu(&h, self.slope)?;
        }
        let f = h.flatten_from(1)?;
        let w = self.fc.effective_weight()?;
        let logits = f
            .matmul(&w.t()?)?
            .broadcast_add(&self.fc.bias)?
            .squeeze(1)?;
        let aux = match &self.aux {
            Some(a) => Some(a.forward(&f)?),
            None => None,
        };
        Ok((logits, aux))
    }

    /// `d(sum_i D(x_i)) / dx` `[n, c, h, w]` as a graph of candle ops that is differentiable
    /// w.r.t. the critic's weights (first-order autograd through it gives the exact gradient
    /// of any function of it). The forward pass only provides LeakyReLU's derivative masks
    /// (piecewise constant in the weights) and is taken without a graph. Needs a critic
    /// without batch norm (the per-sample gradient would couple samples).
    pub fn input_gradient(&self, x: &Tensor) -> Result<Tensor> {
        if self.convs.iter().any(|l| l.bn.is_some()) {
            candle_core::bail!("input_gradient: the critic has batch norm");
        }
        let n = x.dim(0)?;
        let mut masks = Vec::with_capacity(self.convs.len());
        let mut h = x.detach();
        for layer in &self.convs {
            let w = layer.effective_weight()?.detach();
            let pre = h
                .conv2d(&w, 1, 2, 1, 1)?
                .broadcast_add(&layer.bias.detach().reshape((1, (), 1, 1))?)?;
            // 1 where positive, slope elsewhere.
            let mask = pre
                .gt(0.0)?
                .to_dtype(pre.dtype())?
                .affine(1.0 - self.slope, self.slope)?;
            masks.push(mask);
            h = ops::act::leaky_relu(&pre, self.slope)?;
        }
        let (_, c, hh, ww) = h.dims4()?;
        let w = self.fc.effective_weight()?;
        let mut g = w
            .reshape((1, c, hh, ww))?
            .broadcast_as((n, c, hh, ww))?
            .contiguous()?;
        for (layer, mask) in self.convs.iter().zip(&masks).rev() {
            let w = layer.effective_weight()?;
            g = (g * mask)?.conv_transpose2d(&w, 1, 0, 2, 1)?;
        }
        Ok(g)
    }

    /// The gradient penalty `mean_i (||grad_x D(x_i)||_2 - 1)^2` at `x`.
    pub fn gradient_penalty(&self, x: &Tensor) -> Result<Tensor> {
        let g = self.input_gradient(x)?;
        let norms = (g.sqr()?.flatten_from(1)?.sum(D::Minus1)? + 1e-12)?.sqrt()?;
        (norms - 1.0)?.sqr()?.mean_all()
    }

    fn power_iteration(&self) -> Result<()> {
        for layer in self.convs.iter().chain(std::iter::once(&self.fc)) {
            layer.power_iteration()?;
        }
        Ok(())
    }
}

// ----- noise -----

/// A uniform draw in [0, 1) with 53 random bits.
fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// `n` standard normal draws (Box-Muller), identical on every machine for a given stream.
pub fn standard_normal(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1 = 1.0 - unit(rng);
        let u2 = unit(rng);
        let r = (-2.0 * u1.ln()).sqrt();
        let a = std::f64::consts::TAU * u2;
        out.push((r * a.cos()) as f32);
        out.push((r * a.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// ChaCha8 streams of the run seed (stream 0 is the kit's weight initialisation).
const TRAIN_STREAM: u64 = 1;
const FIXED_STREAM: u64 = 2;
const SN_STREAM: u64 = 3;
const EVAL_STREAM: u64 = 4;

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The fixed sample grid: GRID x GRID images from one latent draw.
const GRID: usize = 8;
/// Images generated per chunk by `sample`.
const SAMPLE_CHUNK: usize = 256;
const NOISE_FILE: &str = "noise.ron";

#[derive(Serialize, Deserialize)]
struct NoiseState {
    /// ChaCha word position of the training stream (u128 as decimal text).
    train: String,
}

/// Losses of one training step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    pub d_loss: f64,
    pub g_loss: f64,
    /// wgan_gp's penalty (before lambda).
    pub gp: Option<f64>,
    /// `E[D(real)] - E[D(fake)]` (wgan, wgan_gp).
    pub w_dist: Option<f64>,
    /// acgan's critic classification loss.
    pub aux: Option<f64>,
}

/// The plugin instance.
pub struct Gan {
    variant: Variant,
    cfg: GanConfig,
    g: Generator,
    d: Critic,
    g_vars: VarMap,
    d_vars: VarMap,
    g_adam: Adam,
    d_adam: Adam,
    device: Device,
    n_critic: usize,
    num_classes: usize,
    seed: u64,
    channels: usize,
    side: usize,
    train_rng: ChaCha8Rng,
}

impl Gan {
    pub fn build(cfg: &GanConfig, setup: &Setup, device: Device) -> PluginResult<Gan> {
        cfg.check(setup).map_err(PluginError::new)?;
        let variant = cfg.variant().map_err(PluginError::new)?;
        let g_vars = VarMap::new();
        let g = Generator::new(
            cfg,
            setup,
            VarBuilder::from_varmap(&g_vars, DType::F32, &device),
        )?;
        init::pytorch_default(&g_vars, setup.seed)?;
        let d_vars = VarMap::new();
        let mut sn_rng = stream(setup.seed, SN_STREAM);
        let d = Critic::new(cfg, setup, &d_vars, DType::F32, &device, &mut sn_rng)?;
        // Another seed stream for D than for G: derive it from the run seed.
        init::pytorch_default(&d_vars, setup.seed ^ 0x9e37_79b9_7f4a_7c15)?;
        let (lr, b1, b2, n_critic) = variant.defaults();
        let (b1, b2) = match cfg.betas.as_slice() {
            [a, b] => (*a, *b),
            _ => (b1, b2),
        };
        let lr = setup.learning_rate.unwrap_or(lr);
        let adam = |vars: &VarMap, own: f64| {
            Adam::new(
                vars,
                AdamConfig {
                    lr: if own > 0.0 { own } else { lr },
                    beta1: b1,
                    beta2: b2,
                    eps: 1e-8,
                },
            )
        };
        Ok(Gan {
            variant,
            cfg: cfg.clone(),
            g_adam: adam(&g_vars, cfg.lr_g)?,
            d_adam: adam(&d_vars, cfg.lr_d)?,
            g,
            d,
            g_vars,
            d_vars,
            device,
            n_critic: if cfg.n_critic > 0 {
                cfg.n_critic
            } else {
                n_critic
            },
            num_classes: setup.num_classes.max(1),
            seed: setup.seed,
            channels: setup.channels,
            side: setup.height,
            train_rng: stream(setup.seed, TRAIN_STREAM),
        })
    }

    pub fn parameter_counts(&self) -> (usize, usize) {
        let count = |v: &VarMap| -> usize {
            let data = v.data().lock().expect("varmap lock");
            data.iter()
                .filter(|(k, _)| !k.contains("running_") && !k.ends_with("sn_u"))
                .map(|(_, v)| v.elem_count())
                .sum()
        };
        (count(&self.g_vars), count(&self.d_vars))
    }

    fn tanh(&self) -> bool {
        self.cfg.output == "tanh"
    }

    /// Data in [0, 1] to the model's range.
    fn to_model(&self, x: &Tensor) -> Result<Tensor> {
        if self.tanh() {
            x.affine(2.0, -1.0)
        } else {
            Ok(x.clone())
        }
    }

    /// Model output to [0, 1].
    fn to_data(&self, x: &Tensor) -> Result<Tensor> {
        if self.tanh() {
            x.affine(0.5, 0.5)?.clamp(0.0, 1.0)
        } else {
            Ok(x.clone())
        }
    }

    fn noise(&self, rng: &mut ChaCha8Rng, n: usize) -> Result<Tensor> {
        Tensor::from_vec(
            standard_normal(rng, n * self.cfg.z_dim),
            (n, self.cfg.z_dim),
            &self.device,
        )
    }

    /// Uniform labels for fake images (acgan), `None` otherwise.
    fn fake_labels(&self, rng: &mut ChaCha8Rng, n: usize) -> Result<Option<Tensor>> {
        if self.variant != Variant::Acgan {
            return Ok(None);
        }
        let k = self.num_classes as u64;
        let labels: Vec<u32> = (0..n).map(|_| (rng.next_u64() % k) as u32).collect();
        Ok(Some(Tensor::from_vec(labels, n, &self.device)?))
    }

    fn bce_like(&self) -> bool {
        match self.variant {
            Variant::Dcgan | Variant::Acgan => true,
            Variant::Sngan => self.cfg.sn_loss == "bce",
            Variant::Wgan | Variant::WganGp => false,
        }
    }

    /// The critic's loss on real and fake logits (without penalty or aux).
    fn d_loss(&self, real: &Tensor, fake: &Tensor) -> Result<Tensor> {
        match self.variant {
            Variant::Wgan | Variant::WganGp => fake.mean_all()? - real.mean_all()?,
            Variant::Sngan if self.cfg.sn_loss == "hinge" => {
                let r = (real.neg()? + 1.0)?.relu()?.mean_all()?;
                let f = (fake + 1.0)?.relu()?.mean_all()?;
                r + f
            }
            _ => softplus(&real.neg()?)?.mean_all()? + softplus(fake)?.mean_all()?,
        }
    }

    /// The generator's loss on fake logits: non-saturating BCE, or `-E[D(fake)]`.
    fn g_loss(&self, fake: &Tensor) -> Result<Tensor> {
        if self.bce_like() {
            softplus(&fake.neg()?)?.mean_all()
        } else {
            fake.mean_all()?.neg()
        }
    }

    /// One training step on `x` (data in [0, 1]) with optional labels: `n_critic` critic
    /// steps, then one generator step.
    pub fn train_on(&mut self, x: &Tensor, labels: Option<&Tensor>) -> Result<StepStats> {
        let n = x.dim(0)?;
        let real = self.to_model(x)?;
        if self.variant == Variant::Acgan && labels.is_none() {
            candle_core::bail!("acgan needs labelled batches");
        }
        let mut rng = self.train_rng.clone();
        let mut stats = StepStats {
            d_loss: 0.0,
            g_loss: 0.0,
            gp: None,
            w_dist: None,
            aux: None,
        };
        for _ in 0..self.n_critic {
            if self.variant == Variant::Sngan {
                self.d.power_iteration()?;
            }
            let z = self.noise(&mut rng, n)?;
            let fl = self.fake_labels(&mut rng, n)?;
            let fake = self.g.forward(&z, fl.as_ref(), true)?.detach();
            let (lr, ar) = self.d.forward(&real, true)?;
            let (lf, af) = self.d.forward(&fake, true)?;
            let mut loss = self.d_loss(&lr, &lf)?;
            if matches!(self.variant, Variant::Wgan | Variant::WganGp) {
                let w = (lr.mean_all()? - lf.mean_all()?)?;
                stats.w_dist = Some(w.to_dtype(DType::F64)?.to_scalar::<f64>()?);
            }
            if self.variant == Variant::WganGp {
                let eps: Vec<f32> = (0..n).map(|_| unit(&mut rng) as f32).collect();
                let eps = Tensor::from_vec(eps, (n, 1, 1, 1), &self.device)?;
                let x_hat =
                    (real.broadcast_mul(&eps)? + fake.broadcast_mul(&eps.affine(-1.0, 1.0)?)?)?;
                let gp = self.d.gradient_penalty(&x_hat)?;
                stats.gp = Some(gp.to_scalar::<f32>()? as f64);
                loss = (loss + (gp * self.cfg.gp_lambda)?)?;
            }
            if let (Some(ar), Some(af), Some(l), Some(fl)) = (ar, af, labels, fl.as_ref()) {
                let aux = (candle_nn::loss::cross_entropy(&ar, l)?
                    + candle_nn::loss::cross_entropy(&af, fl)?)?;
                stats.aux = Some(aux.to_scalar::<f32>()? as f64);
                loss = (loss + aux)?;
            }
            stats.d_loss = loss.to_scalar::<f32>()? as f64;
            self.d_adam.backward_step(&loss)?;
            if self.variant == Variant::Wgan {
                let c = self.cfg.clip;
                let data = self.d_vars.data().lock().expect("varmap lock");
                for var in data.values() {
                    var.set(&var.as_tensor().clamp(-c, c)?)?;
                }
            }
        }
        let z = self.noise(&mut rng, n)?;
        let fl = self.fake_labels(&mut rng, n)?;
        let fake = self.g.forward(&z, fl.as_ref(), true)?;
        let (lf, af) = self.d.forward(&fake, true)?;
        let mut loss = self.g_loss(&lf)?;
        if let (Some(af), Some(fl)) = (af, fl.as_ref()) {
            loss = (loss + candle_nn::loss::cross_entropy(&af, fl)?)?;
        }
        stats.g_loss = loss.to_scalar::<f32>()? as f64;
        self.g_adam.backward_step(&loss)?;
        self.train_rng = rng;
        Ok(stats)
    }

    /// Evaluation without learning (batch norm on running statistics; noise from a stream
    /// restarted on every call): `(g_loss, d_loss, per-image critic score -D(x))`.
    pub fn evaluate(&self, x: &Tensor) -> Result<(f64, f64, Vec<f32>)> {
        let n = x.dim(0)?;
        let real = self.to_model(x)?;
        let mut rng = stream(self.seed, EVAL_STREAM);
        let z = self.noise(&mut rng, n)?;
        let fl = self.fake_labels(&mut rng, n)?;
        let fake = self.g.forward(&z, fl.as_ref(), false)?;
        let (lr, _) = self.d.forward(&real, false)?;
        let (lf, af) = self.d.forward(&fake, false)?;
        let mut g_loss = self.g_loss(&lf)?;
        if let (Some(af), Some(fl)) = (af, fl.as_ref()) {
            g_loss = (g_loss + candle_nn::loss::cross_entropy(&af, fl)?)?;
        }
        let d_loss = self.d_loss(&lr, &lf)?;
        Ok((
            g_loss.to_scalar::<f32>()? as f64,
            d_loss.to_scalar::<f32>()? as f64,
            batch::to_vec(&lr.neg()?)?,
        ))
    }

    /// Images in [0, 1] from `z` (acgan: labels cycling through the classes).
    fn generate_from(&self, z: Tensor) -> Result<Tensor> {
        let n = z.dim(0)?;
        let labels = if self.variant == Variant::Acgan {
            let l: Vec<u32> = (0..n)
                .map(|i| ((i / GRID) % self.num_classes) as u32)
                .collect();
            Some(Tensor::from_vec(l, n, &self.device)?)
        } else {
            None
        };
        self.to_data(&self.g.forward(&z, labels.as_ref(), false)?.detach())
    }

    /// The fixed 8x8 grid: the same latent draw every call (acgan: row r is class r mod K).
    pub fn fixed_grid(&self) -> Result<Tensor> {
        let mut rng = stream(self.seed, FIXED_STREAM);
        let z = self.noise(&mut rng, GRID * GRID)?;
        self.generate_from(z)
    }

    /// `n` images from ChaCha8 seeded by `seed`.
    pub fn generate(&self, n: usize, seed: u64) -> Result<Tensor> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut parts = Vec::new();
        let mut left = n;
        while left > 0 {
            let rows = left.min(SAMPLE_CHUNK);
            let z = self.noise(&mut rng, rows)?;
            parts.push(self.generate_from(z)?);
            left -= rows;
        }
        if parts.is_empty() {
            return Tensor::zeros(
                (0, self.channels, self.side, self.side),
                DType::F32,
                &self.device,
            );
        }
        Tensor::cat(&parts, 0)
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

    fn save_all(&self, dir: &Path) -> std::result::Result<(), String> {
        for (sub, vars, adam) in [
            ("generator", &self.g_vars, &self.g_adam),
            ("critic", &self.d_vars, &self.d_adam),
        ] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| format!("creating {}: {e}", d.display()))?;
            checkpoint::save(&d, vars, adam).map_err(|e| e.to_string())?;
        }
        let state = NoiseState {
            train: self.train_rng.get_word_pos().to_string(),
        };
        let path = dir.join(NOISE_FILE);
        let text = ron::to_string(&state).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::write(&path, text).map_err(|e| format!("writing {}: {e}", path.display()))
    }

    /// Restores both networks; returns whether the noise state was there.
    fn load_all(&mut self, dir: &Path) -> std::result::Result<bool, String> {
        checkpoint::load(&dir.join("generator"), &self.g_vars, &mut self.g_adam)
            .map_err(|e| e.to_string())?;
        checkpoint::load(&dir.join("critic"), &self.d_vars, &mut self.d_adam)
            .map_err(|e| e.to_string())?;
        let path = dir.join(NOISE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let state: NoiseState =
            ron::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let pos = state
            .train
            .parse::<u128>()
            .map_err(|e| format!("{}: word position: {e}", path.display()))?;
        self.train_rng = stream(self.seed, TRAIN_STREAM);
        self.train_rng.set_word_pos(pos);
        Ok(true)
    }
}

fn labels_of(batch: &Batch<'_>, device: &Device) -> Result<Option<Tensor>> {
    if batch.labels.is_empty() {
        return Ok(None);
    }
    Ok(Some(Tensor::from_slice(
        batch.labels,
        batch.labels.len(),
        device,
    )?))
}

impl Model for Gan {
    fn describe() -> Description {
        Description {
            summary: "GAN family (dcgan, wgan, wgan_gp, sngan, acgan by `variant`); fixed-seed \
                      sample grids; -D(x) as a per-image score"
                .into(),
            families: vec!["gan".into()],
            default_params: params::to_map_text(&GanConfig::default()),
            losses: vec![
                "d_loss".into(),
                "g_loss".into(),
                "loss".into(),
                "gp".into(),
                "w_dist".into(),
                "aux".into(),
            ],
            metrics: vec![],
            scores: vec!["critic".into()],
            input: InputConstraints {
                channels: vec![1, 3],
                multiple_of: 16,
                min_size: 16,
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
        let cfg: GanConfig = params::parse(params).map_err(PluginError::new)?;
        let model = Gan::build(&cfg, setup, device::open(device, ctx)?)?;
        let (g, d) = model.parameter_counts();
        ctx.info("parameters", &(g + d).to_string());
        ctx.info("variant", &cfg.variant);
        ctx.log(
            Level::Info,
            &format!(
                "{}: generator {g} parameters, critic {d}, n_critic {}",
                cfg.variant, model.n_critic
            ),
        );
        Ok(model)
    }

    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let labels = labels_of(batch, &self.device)?;
        let s = self.train_on(&x, labels.as_ref())?;
        ctx.scalar("d_loss", s.d_loss);
        ctx.scalar("g_loss", s.g_loss);
        for (name, v) in [("gp", s.gp), ("w_dist", s.w_dist), ("aux", s.aux)] {
            if let Some(v) = v {
                ctx.scalar(name, v);
            }
        }
        Ok(())
    }

    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let (g_loss, d_loss, scores) = self.evaluate(&x)?;
        ctx.scalar("loss", g_loss);
        ctx.scalar("d_loss", d_loss);
        ctx.scores("critic", &scores);
        // As seed 002 reported them: PSNR/SSIM of a generated batch against the real one
        // (unpaired, so a distribution-level similarity, not a reconstruction score).
        let fake = self.generate(x.dim(0)?, self.seed ^ 0x0E7A_1A7E)?;
        for (name, value) in gantry_kit::quality::batch_quality(&fake, &x)? {
            ctx.scalar(name, value);
        }
        if batch.want_images {
            Self::emit_grid(ctx, "samples", &self.fixed_grid()?, GRID)?;
        }
        Ok(())
    }

    fn sample(&mut self, n: usize, seed: u64, ctx: &mut Context<'_>) -> PluginResult<()> {
        let images = self.generate(n, seed)?;
        if n > 0 {
            // The class of each generated image (acgan), so a host can use the samples as
            // labelled training data; the same rule `generate_from` applies per chunk.
            if self.variant == Variant::Acgan {
                let labels: Vec<f32> = (0..n)
                    .map(|i| (((i % SAMPLE_CHUNK) / GRID) % self.num_classes) as f32)
                    .collect();
                ctx.scores("class", &labels);
            }
            Self::emit_grid(ctx, "sample", &images, n.min(GRID))?;
        }
        Ok(())
    }

    fn save(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        self.save_all(dir).map_err(PluginError::new)?;
        Ok(())
    }

    fn load(&mut self, dir: &Path, ctx: &mut Context<'_>) -> PluginResult<()> {
        if !self.load_all(dir).map_err(PluginError::new)? {
            ctx.log(
                Level::Warn,
                &format!(
                    "{} has no {NOISE_FILE}; the noise stream goes on",
                    dir.display()
                ),
            );
        }
        Ok(())
    }
}

gantry_plugin_api::export_model!(
    Gan,
    name: "gan",
    family: "gan",
    candle: gantry_kit::CANDLE_VERSION,
);

#[cfg(test)]
mod tests;

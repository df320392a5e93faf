//! gantry plugin: a small convolutional image classifier for N classes (class indices are
//! the dataset's sorted class folder names, as the host numbers them).
//!
//! Architecture, one block per entry of `channels` (default 16, 32, 64):
//! `Conv3x3 pad 1 -> LeakyReLU(0.2)` (or ReLU), then with `residual: true` a second
//! `Conv3x3 -> activation` added to the first's output (`h = a + act(conv(a))`), then
//! `MaxPool 2`; after the last block global average pooling, dropout (training only, seeded
//! by the run seed and the step, so a resumed run draws the same masks), and a linear layer
//! to `num_classes` logits. Adam with `train.lr` (default 1e-3); weights initialised as
//! PyTorch's defaults from the run seed.
//!
//! Losses (`loss`):
//! - `ce`: cross-entropy, batch mean.
//! - `weighted_ce`: cross-entropy with per-class weights inverse to class frequency,
//!   normalised to mean 1 over the classes seen, reduced as PyTorch's
//!   `CrossEntropyLoss(weight=w)`: `sum_i w[y_i] nll_i / sum_i w[y_i]`. The plugin cannot
//!   see the dataset, so the frequencies are the label counts of every training batch seen
//!   so far (cumulative, this batch included; saved with checkpoints): early steps weigh
//!   by a rough estimate that settles within the first epoch. `class_weights: [..]` (one
//!   positive weight per class) overrides the counts.
//! - `focal`: focal loss `-(1 - p_t)^gamma log p_t` (batch mean), `gamma` default 2; with
//!   `focal_alpha: true` each image is also multiplied by its class weight (the same
//!   weights as `weighted_ce`). With `gamma: 0` and no alpha it is cross-entropy.
//!
//! `train_step` emits `loss` and `accuracy` (of the batch, before the update). `eval` emits
//! `loss` and one score array per class, `p/0` .. `p/{K-1}`: the softmax probability of
//! that class for each image; the host derives accuracy, F1, the confusion matrix and
//! one-vs-rest AUROC from them and the labels. With `want_images`, `eval` writes two grids
//! for the first 8 images (originals above overlays, red = attention): `saliency`
//! (|d logit_true / d input|, max over channels, normalised per image) and `gradcam`
//! (Grad-CAM of the true class on the last block's activation, bilinearly upsampled).

use std::path::Path;

use candle_core::{D, DType, Device, Module, Result, Tensor, Var};
use candle_nn::{Linear, VarBuilder, VarMap};
use gantry_kit::layers::{self, Conv2d};
use gantry_kit::optim::{Adam, AdamConfig};
use gantry_kit::{batch, checkpoint, device, init, ops, params};
use gantry_plugin_api::{
    Batch, Context, Description, ImageRef, InputConstraints, Level, Model, PluginError,
    PluginResult, Setup,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

// Training allocates and frees many activation-sized buffers per step; mimalloc keeps them
// (see conv-ae). Each plugin has its own allocator; nothing allocated here is freed by the
// host.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Channels per block; the depth is their count (each block halves H and W).
    pub channels: Vec<usize>,
    /// A second conv per block with a residual connection.
    pub residual: bool,
    /// `leaky_relu` or `relu`.
    pub activation: String,
    /// Negative slope of `leaky_relu`.
    pub leaky_slope: f64,
    /// Dropout probability before the linear head (training only).
    pub dropout: f64,
    /// `ce`, `weighted_ce` or `focal`.
    pub loss: String,
    /// Focusing parameter of the focal loss.
    pub gamma: f64,
    /// Focal loss: weight each image by its class weight (alpha).
    pub focal_alpha: bool,
    /// Explicit class weights (one per class); empty: inverse label frequency.
    pub class_weights: Vec<f64>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig {
            channels: vec![16, 32, 64],
            residual: false,
            activation: "leaky_relu".into(),
            leaky_slope: 0.2,
            dropout: 0.0,
            loss: "ce".into(),
            gamma: 2.0,
            focal_alpha: false,
            class_weights: vec![],
        }
    }
}

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LossKind {
    Ce,
    WeightedCe,
    /// Focal loss; `alpha`: multiply by the class weights.
    Focal {
        gamma: f64,
        alpha: bool,
    },
}

impl LossKind {
    fn uses_weights(self) -> bool {
        matches!(
            self,
            LossKind::WeightedCe | LossKind::Focal { alpha: true, .. }
        )
    }
}

impl ClassifierConfig {
    fn loss_kind(&self) -> std::result::Result<LossKind, String> {
        match self.loss.as_str() {
            "ce" => Ok(LossKind::Ce),
            "weighted_ce" => Ok(LossKind::WeightedCe),
            "focal" => Ok(LossKind::Focal {
                gamma: self.gamma,
                alpha: self.focal_alpha,
            }),
            other => Err(format!(
                "params: loss {other:?} is not one of ce, weighted_ce, focal"
            )),
        }
    }

    fn check(&self, setup: &Setup) -> std::result::Result<(), String> {
        if setup.num_classes < 2 {
            return Err(format!(
                "the classifier needs at least 2 classes, the dataset has {}; give data \
                 with one folder per class (and no normal_class, which keeps one class)",
                setup.num_classes
            ));
        }
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err("params: channels must be a non-empty list of positive counts".into());
        }
        if !matches!(self.activation.as_str(), "leaky_relu" | "relu") {
            return Err(format!(
                "params: activation {:?} is not one of leaky_relu, relu",
                self.activation
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("params: dropout {} is not in [0, 1)", self.dropout));
        }
        if !(self.gamma.is_finite() && self.gamma >= 0.0) {
            return Err(format!("params: gamma {} must be >= 0", self.gamma));
        }
        self.loss_kind()?;
        if !self.class_weights.is_empty() {
            if self.class_weights.len() != setup.num_classes {
                return Err(format!(
                    "params: class_weights has {} entries, the dataset has {} classes",
                    self.class_weights.len(),
                    setup.num_classes
                ));
            }
            if self
                .class_weights
                .iter()
                .any(|w| !(w.is_finite() && *w > 0.0))
            {
                return Err("params: class_weights must all be positive".into());
            }
        }
        params::check_input(setup, self.channels.len(), "the classifier")
    }
}

/// One block: conv + activation, optionally a residual conv, (max-pool applied outside).
struct Block {
    conv: Conv2d,
    residual: Option<Conv2d>,
}

/// The network.
pub struct ClassifierNet {
    blocks: Vec<Block>,
    head: Linear,
    slope: f64,
}

impl ClassifierNet {
    pub fn new(cfg: &ClassifierConfig, setup: &Setup, vb: VarBuilder) -> Result<ClassifierNet> {
        let mut blocks = Vec::new();
        let mut in_c = setup.channels;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let conv = layers::conv2d(in_c, c, 3, 1, vb.pp(format!("block.{i}.conv")))?;
            let residual = if cfg.residual {
                Some(layers::conv2d(
                    c,
                    c,
                    3,
                    1,
                    vb.pp(format!("block.{i}.residual")),
                )?)
            } else {
                None
            };
            blocks.push(Block { conv, residual });
            in_c = c;
        }
        let head = candle_nn::linear(in_c, setup.num_classes, vb.pp("head"))?;
        Ok(ClassifierNet {
            blocks,
            head,
            slope: if cfg.activation == "leaky_relu" {
                cfg.leaky_slope
            } else {
                0.0
            },
        })
    }

    fn block(&self, block: &Block, x: &Tensor) -> Result<Tensor> {
        let a = block.conv.forward_leaky(x, self.slope)?;
        match &block.residual {
            Some(conv) => &a + conv.forward_leaky(&a, self.slope)?,
            None => Ok(a),
        }
    }

    /// Everything up to the last block's activation (before its pooling): Grad-CAM's layer.
    pub fn trunk(&self, x: &Tensor) -> Result<Tensor> {
        let (last, rest) = self.blocks.split_last().expect("at least one block");
        let mut h = x.clone();
        for block in rest {
            h = ops::pool::max_pool2x2(&self.block(block, &h)?)?;
        }
        self.block(last, &h)
    }

    /// From the last block's activation to logits; `keep` is a dropout mask (already
    /// scaled by 1/(1-p)) of shape `[n, channels]`.
    pub fn tail(&self, a: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
        let h = ops::pool::max_pool2x2(a)?;
        let pooled = h.flatten_from(2)?.mean(2)?;
        let pooled = match keep {
            Some(mask) => (pooled * mask)?,
            None => pooled,
        };
        self.head.forward(&pooled)
    }

    /// Logits `[n, classes]`.
    pub fn forward_with(&self, x: &Tensor, keep: Option<&Tensor>) -> Result<Tensor> {
        self.tail(&self.trunk(x)?, keep)
    }

    /// Channels of the pooled features (the head's input).
    pub fn features(&self) -> usize {
        self.head.weight().dim(1).expect("linear weight is 2-D")
    }
}

impl Module for ClassifierNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.forward_with(x, None)
    }
}

/// Per-image cross-entropy parts: `log p_t`, shape `[n]`.
fn log_p_true(logits: &Tensor, labels: &Tensor) -> Result<Tensor> {
    let logp = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    logp.gather(&labels.unsqueeze(1)?, 1)?.squeeze(1)
}

/// The batch loss (a scalar tensor). `weights` (`[classes]`) is required by
/// `weighted_ce` and by focal with alpha.
pub fn classification_loss(
    kind: LossKind,
    logits: &Tensor,
    labels: &Tensor,
    weights: Option<&Tensor>,
) -> Result<Tensor> {
    let logp_t = log_p_true(logits, labels)?;
    let w_y = || -> Result<Tensor> {
        match weights {
            Some(w) => w.index_select(labels, 0),
            None => candle_core::bail!("loss {kind:?} needs class weights"),
        }
    };
    match kind {
        LossKind::Ce => logp_t.neg()?.mean_all(),
        LossKind::WeightedCe => {
            let w = w_y()?;
            (logp_t * &w)?.sum_all()?.neg()? / w.sum_all()?
        }
        LossKind::Focal { gamma, alpha } => {
            let per = if gamma == 0.0 {
                logp_t.neg()?
            } else {
                // Clamped below so that gamma < 1 keeps a finite gradient at p_t = 1.
                let one_minus = (1.0 - logp_t.exp()?)?.clamp(1e-12f32, 1f32)?;
                (one_minus.powf(gamma)? * logp_t)?.neg()?
            };
            let per = if alpha { (per * w_y()?)? } else { per };
            per.mean_all()
        }
    }
}

/// Class weights inverse to the counts, normalised to mean 1 over the classes with a
/// non-zero count; classes not seen yet get 1 (they cannot occur in the loss).
pub fn inverse_frequency_weights(counts: &[u64]) -> Vec<f64> {
    let inv: Vec<Option<f64>> = counts
        .iter()
        .map(|&c| (c > 0).then(|| 1.0 / c as f64))
        .collect();
    let seen: Vec<f64> = inv.iter().flatten().copied().collect();
    if seen.is_empty() {
        return vec![1.0; counts.len()];
    }
    let mean = seen.iter().sum::<f64>() / seen.len() as f64;
    inv.into_iter()
        .map(|w| w.map_or(1.0, |w| w / mean))
        .collect()
}

/// The plugin instance.
pub struct Classifier {
    net: ClassifierNet,
    varmap: VarMap,
    adam: Adam,
    device: Device,
    loss: LossKind,
    classes: usize,
    dropout: f64,
    seed: u64,
    /// Explicit class weights from the params, if any.
    fixed_weights: Option<Vec<f64>>,
    /// Label counts of every training batch seen (for `weighted_ce` / focal alpha).
    counts: Vec<u64>,
    /// The one-class warning was logged.
    warned: bool,
}

/// Images explained per saliency grid (one row of originals, one of overlays).
const GRID_COLUMNS: usize = 8;
/// Training images of one class only before [`Classifier::one_class_warning`] speaks.
const ONE_CLASS_WARNING_AFTER: u64 = 256;
/// Mixed into the run seed for dropout masks (the weights use the seed itself).
const DROPOUT_SEED: u64 = 0x0d70_9047;
/// File (in the checkpoint directory) that keeps the label counts.
const COUNTS_FILE: &str = "class_counts.ron";

/// A named image grid: NCHW data in [0, 1], its shape, and the grid width.
pub struct Grid {
    pub name: &'static str,
    pub data: Vec<f32>,
    pub shape: [usize; 4],
    pub columns: usize,
}

impl Classifier {
    /// Builds the model on `device` with seeded weights.
    pub fn build(cfg: &ClassifierConfig, setup: &Setup, device: Device) -> PluginResult<Self> {
        cfg.check(setup).map_err(PluginError::new)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = ClassifierNet::new(cfg, setup, vb)?;
        init::pytorch_default(&varmap, setup.seed)?;
        let adam = Adam::new(
            &varmap,
            AdamConfig {
                lr: setup.learning_rate.unwrap_or(1e-3),
                ..Default::default()
            },
        )?;
        Ok(Classifier {
            net,
            varmap,
            adam,
            device,
            loss: cfg.loss_kind().map_err(PluginError::new)?,
            classes: setup.num_classes,
            dropout: cfg.dropout,
            seed: setup.seed,
            fixed_weights: (!cfg.class_weights.is_empty()).then(|| cfg.class_weights.clone()),
            counts: vec![0; setup.num_classes],
            warned: false,
        })
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        let data = self.varmap.data().lock().expect("varmap lock");
        data.values().map(|v| v.elem_count()).sum()
    }

    /// Logits without dropout.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        self.net.forward(x)
    }

    /// The class weights the loss uses now: explicit ones, or inverse label frequency.
    pub fn class_weights(&self) -> Vec<f64> {
        match &self.fixed_weights {
            Some(w) => w.clone(),
            None => inverse_frequency_weights(&self.counts),
        }
    }

    fn weights_tensor(&self) -> Result<Option<Tensor>> {
        if !self.loss.uses_weights() {
            return Ok(None);
        }
        let w: Vec<f32> = self.class_weights().iter().map(|&w| w as f32).collect();
        Tensor::from_vec(w, self.classes, &self.device).map(Some)
    }

    /// A warning when many training images have all been of one class (as with
    /// `normal_class`, which keeps one class in train): once.
    fn one_class_warning(&mut self) -> Option<String> {
        let seen: u64 = self.counts.iter().sum();
        let classes = self.counts.iter().filter(|&&c| c > 0).count();
        if self.warned || seen < ONE_CLASS_WARNING_AFTER || classes > 1 {
            return None;
        }
        self.warned = true;
        Some(format!(
            "all {seen} training images so far are of one class; a classifier needs every \
             class in train (is data.normal_class set?)"
        ))
    }

    /// The labels of a batch as a `[n]` u32 tensor, checked.
    fn labels(&self, labels: &[u32], n: usize) -> PluginResult<Tensor> {
        if labels.is_empty() {
            return Err(PluginError::new(
                "the classifier needs labels, but this batch has none; give data with one \
                 folder (or label) per class",
            ));
        }
        if labels.len() != n {
            return Err(PluginError::new(format!(
                "the batch has {n} images but {} labels",
                labels.len()
            )));
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize >= self.classes) {
            return Err(PluginError::new(format!(
                "label {bad} is out of range for {} classes",
                self.classes
            )));
        }
        Ok(Tensor::from_slice(labels, n, &self.device)?)
    }

    /// The dropout mask for this step (`None` without dropout), scaled by 1/(1-p). Drawn
    /// from the run seed with the optimiser step as the stream, so it is reproducible and
    /// survives a checkpoint resume.
    fn dropout_mask(&self, n: usize) -> Result<Option<Tensor>> {
        if self.dropout <= 0.0 {
            return Ok(None);
        }
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed ^ DROPOUT_SEED);
        rng.set_stream(self.adam.steps());
        let f = self.net.features();
        let scale = (1.0 / (1.0 - self.dropout)) as f32;
        let p = self.dropout as f32;
        let mask: Vec<f32> = (0..n * f)
            .map(|_| if rng.random::<f32>() < p { 0.0 } else { scale })
            .collect();
        Tensor::from_vec(mask, (n, f), &self.device).map(Some)
    }

    /// One optimisation step; returns the batch loss and accuracy (before the update).
    pub fn step(&mut self, x: &Tensor, labels: &[u32]) -> PluginResult<(f64, f64)> {
        let n = x.dim(0)?;
        let y = self.labels(labels, n)?;
        for &l in labels {
            self.counts[l as usize] += 1;
        }
        let keep = self.dropout_mask(n)?;
        let logits = self.net.forward_with(x, keep.as_ref())?;
        let loss = classification_loss(self.loss, &logits, &y, self.weights_tensor()?.as_ref())?;
        let accuracy = accuracy(&logits, &y)?;
        self.adam.backward_step(&loss)?;
        Ok((loss.to_scalar::<f32>()? as f64, accuracy))
    }

    /// Evaluation: the loss and the softmax probabilities `[n][classes]` (row-major).
    pub fn evaluate(&self, x: &Tensor, labels: &[u32]) -> PluginResult<(f64, Vec<f32>)> {
        let n = x.dim(0)?;
        let y = self.labels(labels, n)?;
        let logits = self.net.forward(x)?.detach();
        let loss = classification_loss(self.loss, &logits, &y, self.weights_tensor()?.as_ref())?;
        let probs = candle_nn::ops::softmax(&logits, D::Minus1)?;
        Ok((loss.to_scalar::<f32>()? as f64, batch::to_vec(&probs)?))
    }

    /// Saliency and Grad-CAM grids for the first (up to) 8 images of `x`.
    pub fn explain(&self, x: &Tensor, labels: &[u32]) -> PluginResult<Vec<Grid>> {
        let k = x.dim(0)?.min(GRID_COLUMNS);
        let x = x.narrow(0, 0, k)?;
        let y = self.labels(&labels[..k.min(labels.len())], k)?;
        let (_, c, h, w) = x.dims4()?;

        // Input gradient of the true-class logit (images are independent, so the gradient
        // of the sum is each image's own).
        let xv = Var::from_tensor(&x.detach())?;
        let logits = self.net.forward(xv.as_tensor())?;
        let target = logits.gather(&y.unsqueeze(1)?, 1)?.sum_all()?;
        let grads = target.backward()?;
        let g = grads
            .get(xv.as_tensor())
            .ok_or_else(|| PluginError::new("saliency: no gradient reached the input"))?;
        let sal = g.abs()?.max_keepdim(1)?; // [k, 1, h, w]
        let sal = normalise_per_image(&batch::to_vec(&sal)?, k);

        // Grad-CAM: gradient of the true-class logit at the last block's activation.
        let a = Var::from_tensor(&self.net.trunk(&x)?.detach())?;
        let logits = self.net.tail(a.as_tensor(), None)?;
        let target = logits.gather(&y.unsqueeze(1)?, 1)?.sum_all()?;
        let grads = target.backward()?;
        let da = grads
            .get(a.as_tensor())
            .ok_or_else(|| PluginError::new("grad-cam: no gradient reached the last block"))?;
        let alpha = da.flatten_from(2)?.mean_keepdim(2)?.unsqueeze(3)?; // [k, C, 1, 1]
        let cam = a
            .as_tensor()
            .broadcast_mul(&alpha)?
            .sum_keepdim(1)?
            .relu()?;
        let (_, _, ch, cw) = cam.dims4()?;
        let cam = bilinear(&batch::to_vec(&cam)?, k, ch, cw, h, w);
        let cam = normalise_per_image(&cam, k);

        let images = batch::to_vec(&x)?;
        Ok(vec![
            Grid {
                name: "saliency",
                data: overlay_grid(&images, &sal, k, c, h, w),
                shape: [2 * k, 3, h, w],
                columns: k,
            },
            Grid {
                name: "gradcam",
                data: overlay_grid(&images, &cam, k, c, h, w),
                shape: [2 * k, 3, h, w],
                columns: k,
            },
        ])
    }
}

/// Fraction of rows whose argmax is the label.
fn accuracy(logits: &Tensor, labels: &Tensor) -> Result<f64> {
    let hits = logits
        .argmax(D::Minus1)?
        .eq(labels)?
        .to_dtype(DType::F32)?
        .mean_all()?;
    Ok(hits.to_scalar::<f32>()? as f64)
}

/// Divides each of `n` equal parts of `v` by its maximum (all-zero parts stay zero).
fn normalise_per_image(v: &[f32], n: usize) -> Vec<f32> {
    let per = v.len() / n.max(1);
    v.chunks(per.max(1))
        .flat_map(|part| {
            let max = part.iter().copied().fold(0f32, f32::max);
            let s = if max > 0.0 { 1.0 / max } else { 0.0 };
            part.iter().map(move |&x| x * s)
        })
        .collect()
}

/// Bilinear resize (half-pixel centres, as PyTorch's `align_corners=False`) of `n` planes.
fn bilinear(v: &[f32], n: usize, h: usize, w: usize, oh: usize, ow: usize) -> Vec<f32> {
    let mut out = vec![0f32; n * oh * ow];
    let src = |o: usize, size: usize, osize: usize| {
        let s = ((o as f32 + 0.5) * size as f32 / osize as f32 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(size - 1);
        let i1 = (i0 + 1).min(size - 1);
        (i0, i1, s - i0 as f32)
    };
    for p in 0..n {
        let plane = &v[p * h * w..(p + 1) * h * w];
        for y in 0..oh {
            let (y0, y1, fy) = src(y, h, oh);
            for x in 0..ow {
                let (x0, x1, fx) = src(x, w, ow);
                let top = plane[y0 * w + x0] * (1.0 - fx) + plane[y0 * w + x1] * fx;
                let bottom = plane[y1 * w + x0] * (1.0 - fx) + plane[y1 * w + x1] * fx;
                out[(p * oh + y) * ow + x] = top * (1.0 - fy) + bottom * fy;
            }
        }
    }
    out
}

/// A grid of `k` originals (as RGB) over `k` overlays: the input's gray blended towards red
/// by the heat map (`heat`: `k` planes in [0, 1]). Inputs already in [0, 1] are shown as
/// they are; others (normalised data) are min-max scaled per image.
fn overlay_grid(images: &[f32], heat: &[f32], k: usize, c: usize, h: usize, w: usize) -> Vec<f32> {
    let plane = h * w;
    let mut originals = Vec::with_capacity(k * 3 * plane);
    let mut overlays = Vec::with_capacity(k * 3 * plane);
    for i in 0..k {
        let img = &images[i * c * plane..(i + 1) * c * plane];
        let (lo, hi) = img
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let (lo, scale) = if lo >= 0.0 && hi <= 1.0 {
            (0.0, 1.0)
        } else if hi > lo {
            (lo, 1.0 / (hi - lo))
        } else {
            (lo, 0.0)
        };
        let px = |ch: usize, p: usize| (img[ch.min(c - 1) * plane + p] - lo) * scale;
        for ch in 0..3 {
            originals.extend((0..plane).map(|p| px(ch, p)));
        }
        let gray: Vec<f32> = (0..plane)
            .map(|p| (0..c).map(|ch| px(ch, p)).sum::<f32>() / c as f32)
            .collect();
        let heat = &heat[i * plane..(i + 1) * plane];
        // Red rises with the heat, green and blue fade: hot pixels turn red.
        let a = |p: usize| 0.7 * heat[p];
        overlays.extend((0..plane).map(|p| gray[p] * (1.0 - a(p)) + a(p)));
        for _ in 0..2 {
            overlays.extend((0..plane).map(|p| gray[p] * (1.0 - a(p))));
        }
    }
    originals.extend(overlays);
    originals
}

impl Model for Classifier {
    fn describe() -> Description {
        Description {
            summary: "small CNN classifier; per-class softmax probabilities p/0..p/{K-1} as \
                      scores (one per class), saliency and Grad-CAM maps"
                .into(),
            families: vec!["classifier".into()],
            default_params: params::to_map_text(&ClassifierConfig::default()),
            losses: vec!["loss".into()],
            metrics: vec!["accuracy".into()],
            // One score per class: p/0 .. p/{K-1}; K is known only at create.
            scores: vec!["p/0".into(), "p/1".into()],
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
        let cfg: ClassifierConfig = params::parse(params).map_err(PluginError::new)?;
        let model = Classifier::build(&cfg, setup, device::open(device, ctx)?)?;
        ctx.info("parameters", &model.parameter_count().to_string());
        ctx.info("classes", &setup.num_classes.to_string());
        if model.loss.uses_weights() && model.fixed_weights.is_none() {
            ctx.log(
                Level::Info,
                "class weights: inverse label frequency, counted cumulatively over the \
                 training batches seen so far",
            );
        }
        Ok(model)
    }

    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let (loss, accuracy) = self.step(&x, batch.labels)?;
        if let Some(warning) = self.one_class_warning() {
            ctx.log(Level::Warn, &warning);
        }
        ctx.scalar("loss", loss);
        ctx.scalar("accuracy", accuracy);
        Ok(())
    }

    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let (loss, probs) = self.evaluate(&x, batch.labels)?;
        ctx.scalar("loss", loss);
        let n = batch.len();
        for class in 0..self.classes {
            let p: Vec<f32> = (0..n).map(|i| probs[i * self.classes + class]).collect();
            ctx.scores(&format!("p/{class}"), &p);
        }
        if batch.want_images {
            for grid in self.explain(&x, batch.labels)? {
                ctx.image(
                    grid.name,
                    ImageRef {
                        data: &grid.data,
                        shape: grid.shape,
                        columns: grid.columns,
                    },
                );
            }
        }
        Ok(())
    }

    fn save(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        checkpoint::save(dir, &self.varmap, &self.adam)?;
        let path = dir.join(COUNTS_FILE);
        std::fs::write(&path, ron::to_string(&self.counts)?)
            .map_err(|e| PluginError::new(format!("writing {}: {e}", path.display())))?;
        Ok(())
    }

    fn load(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        checkpoint::load(dir, &self.varmap, &mut self.adam)?;
        let path = dir.join(COUNTS_FILE);
        // Checkpoints without the file start counting afresh.
        if let Ok(text) = std::fs::read_to_string(&path) {
            let counts: Vec<u64> = ron::from_str(&text)
                .map_err(|e| PluginError::new(format!("reading {}: {e}", path.display())))?;
            if counts.len() != self.classes {
                return Err(PluginError::new(format!(
                    "{}: {} class counts, the model has {} classes",
                    path.display(),
                    counts.len(),
                    self.classes
                )));
            }
            self.counts = counts;
        }
        Ok(())
    }
}

gantry_plugin_api::export_model!(
    Classifier,
    name: "classifier",
    family: "classifier",
    candle: gantry_kit::CANDLE_VERSION,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(size: usize, classes: usize) -> Setup {
        Setup {
            channels: 1,
            height: size,
            width: size,
            num_classes: classes,
            seed: 3,
            learning_rate: None,
            total_steps: None,
        }
    }

    fn build(cfg: &ClassifierConfig, setup: &Setup) -> Classifier {
        Classifier::build(cfg, setup, Device::Cpu)
            .map_err(|e| e.message().to_string())
            .unwrap()
    }

    fn scalar(t: Tensor) -> f32 {
        t.to_scalar::<f32>().unwrap()
    }

    /// `n` images of size `s` in 3 classes, a bright shape at a random place on a noisy
    /// background: a round blob (class 0), a horizontal bar (1) or a vertical bar (2).
    /// The pooled network is nearly translation invariant, so the class is the shape, not
    /// the place.
    fn blobs(n: usize, s: usize, seed: u64) -> (Tensor, Vec<u32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut data = Vec::with_capacity(n * s * s);
        let mut labels = Vec::with_capacity(n);
        let margin = s as f32 * 0.3;
        for i in 0..n {
            let class = (i % 3) as u32;
            labels.push(class);
            let cx = rng.random_range(margin..s as f32 - margin);
            let cy = rng.random_range(margin..s as f32 - margin);
            // Squared spreads along y and x.
            let (sy, sx) = match class {
                0 => (3.0, 3.0),
                1 => (1.0, 16.0),
                _ => (16.0, 1.0),
            };
            for y in 0..s {
                for x in 0..s {
                    let d = (y as f32 - cy).powi(2) / sy + (x as f32 - cx).powi(2) / sx;
                    let v = 0.8 * (-d).exp() + rng.random_range(0.0..0.2);
                    data.push(v.min(1.0));
                }
            }
        }
        (
            Tensor::from_vec(data, (n, 1, s, s), &Device::Cpu).unwrap(),
            labels,
        )
    }

    #[test]
    fn default_architecture_shapes_and_parameter_count() {
        let model = build(&ClassifierConfig::default(), &setup(32, 3));
        let x = Tensor::zeros((2, 1, 32, 32), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(model.logits(&x).unwrap().dims(), &[2, 3]);
        // convs (1*9+1)*16 + (16*9+1)*32 + (32*9+1)*64; head 64*3+3.
        assert_eq!(model.parameter_count(), 160 + 4_640 + 18_496 + 195);
        let residual = ClassifierConfig {
            residual: true,
            ..Default::default()
        };
        let model = build(&residual, &setup(32, 3));
        assert_eq!(model.logits(&x).unwrap().dims(), &[2, 3]);
        // plus (16*9+1)*16 + (32*9+1)*32 + (64*9+1)*64.
        assert_eq!(
            model.parameter_count(),
            160 + 4_640 + 18_496 + 195 + 2_320 + 9_248 + 36_928
        );
    }

    #[test]
    fn bad_setups_and_params_are_clear_errors() {
        let err = Classifier::build(&ClassifierConfig::default(), &setup(32, 1), Device::Cpu)
            .err()
            .unwrap();
        assert!(
            err.message().contains("at least 2 classes"),
            "{}",
            err.message()
        );
        let err = Classifier::build(&ClassifierConfig::default(), &setup(36, 3), Device::Cpu)
            .err()
            .unwrap();
        assert!(err.message().contains("2^depth = 8"), "{}", err.message());
        let cfg: ClassifierConfig =
            params::parse("{\"loss\": \"focal\", \"class_weights\": [1.0, 2.0]}").unwrap();
        assert_eq!(cfg.channels, vec![16, 32, 64]);
        assert_eq!(cfg.class_weights, vec![1.0, 2.0]);
        assert!(cfg.check(&setup(32, 3)).unwrap_err().contains("2 entries"));
        let err = params::parse::<ClassifierConfig>("{\"dropuot\": 0.5}").unwrap_err();
        assert!(err.contains("dropuot"), "{err}");
        let bad = ClassifierConfig {
            loss: "hinge".into(),
            ..Default::default()
        };
        assert!(bad.check(&setup(32, 3)).unwrap_err().contains("\"hinge\""));
        let defaults: ClassifierConfig =
            params::parse(&params::to_map_text(&ClassifierConfig::default())).unwrap();
        assert_eq!(defaults, ClassifierConfig::default());
    }

    #[test]
    fn missing_labels_are_a_clear_error() {
        let mut model = build(&ClassifierConfig::default(), &setup(16, 3));
        let x = Tensor::zeros((2, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
        let err = model.step(&x, &[]).err().unwrap();
        assert!(err.message().contains("needs labels"), "{}", err.message());
        let err = model.step(&x, &[0, 5]).err().unwrap();
        assert!(err.message().contains("out of range"), "{}", err.message());
    }

    fn hand_example() -> (Tensor, Tensor, [[f64; 3]; 2], [usize; 2]) {
        let logits = [[1.0, 2.0, 0.5], [0.3, -1.0, 2.0]];
        let labels = [1usize, 0];
        let t = Tensor::new(&[[1.0f32, 2.0, 0.5], [0.3, -1.0, 2.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
        (t, y, logits, labels)
    }

    /// `-log softmax(z)[y]` in f64.
    fn nll(z: &[f64; 3], y: usize) -> f64 {
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        lse - z[y]
    }

    #[test]
    fn cross_entropy_matches_the_closed_form() {
        let (t, y, z, labels) = hand_example();
        let expected = (nll(&z[0], labels[0]) + nll(&z[1], labels[1])) / 2.0;
        let got = scalar(classification_loss(LossKind::Ce, &t, &y, None).unwrap());
        assert!((got as f64 - expected).abs() < 1e-5, "{got} vs {expected}");
        // Weighted: sum w_y nll / sum w_y (PyTorch's CrossEntropyLoss(weight=w)).
        let w = [0.5, 2.0, 1.0];
        let wt = Tensor::new(&[0.5f32, 2.0, 1.0], &Device::Cpu).unwrap();
        let expected = (w[1] * nll(&z[0], 1) + w[0] * nll(&z[1], 0)) / (w[1] + w[0]);
        let got = scalar(classification_loss(LossKind::WeightedCe, &t, &y, Some(&wt)).unwrap());
        assert!((got as f64 - expected).abs() < 1e-5, "{got} vs {expected}");
        // Focal, gamma 2: mean of (1 - p_t)^2 * nll.
        let focal = |g: f64| {
            (0..2)
                .map(|i| {
                    let l = nll(&z[i], labels[i]);
                    (1.0 - (-l).exp()).powf(g) * l
                })
                .sum::<f64>()
                / 2.0
        };
        let kind = LossKind::Focal {
            gamma: 2.0,
            alpha: false,
        };
        let got = scalar(classification_loss(kind, &t, &y, None).unwrap());
        assert!(
            (got as f64 - focal(2.0)).abs() < 1e-5,
            "{got} vs {}",
            focal(2.0)
        );
        let kind = LossKind::Focal {
            gamma: 0.5,
            alpha: false,
        };
        let got = scalar(classification_loss(kind, &t, &y, None).unwrap());
        assert!((got as f64 - focal(0.5)).abs() < 1e-5);
    }

    #[test]
    fn focal_with_gamma_zero_is_cross_entropy() {
        let (t, y, _, _) = hand_example();
        let ce = scalar(classification_loss(LossKind::Ce, &t, &y, None).unwrap());
        for gamma in [0.0, 1e-9] {
            let kind = LossKind::Focal {
                gamma,
                alpha: false,
            };
            let focal = scalar(classification_loss(kind, &t, &y, None).unwrap());
            assert!((focal - ce).abs() < 1e-6, "gamma {gamma}: {focal} vs {ce}");
        }
        // Gradients agree too.
        let v = Var::from_tensor(&t).unwrap();
        let g = |kind| {
            let grads = classification_loss(kind, v.as_tensor(), &y, None)
                .unwrap()
                .backward()
                .unwrap();
            batch::to_vec(grads.get(v.as_tensor()).unwrap()).unwrap()
        };
        let (a, b) = (
            g(LossKind::Ce),
            g(LossKind::Focal {
                gamma: 0.0,
                alpha: false,
            }),
        );
        assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6));
    }

    #[test]
    fn weighted_ce_weights_follow_the_counts() {
        // Counts 10, 30, 60 -> inverse 0.1, 0.0333, 0.01667 -> mean 1.
        let w = inverse_frequency_weights(&[10, 30, 60]);
        let inv = [0.1, 1.0 / 30.0, 1.0 / 60.0];
        let mean = inv.iter().sum::<f64>() / 3.0;
        for (got, i) in w.iter().zip(inv) {
            assert!((got - i / mean).abs() < 1e-12);
        }
        assert!((w.iter().sum::<f64>() / 3.0 - 1.0).abs() < 1e-12);
        assert!((w[0] / w[2] - 6.0).abs() < 1e-9);
        // Unseen classes get 1 and do not enter the mean.
        assert_eq!(inverse_frequency_weights(&[0, 0]), vec![1.0, 1.0]);
        let w = inverse_frequency_weights(&[5, 0, 20]);
        assert_eq!(w[1], 1.0);
        assert!(((w[0] + w[2]) / 2.0 - 1.0).abs() < 1e-12);

        // The model counts the labels of the batches it trains on, cumulatively.
        let cfg = ClassifierConfig {
            channels: vec![4],
            loss: "weighted_ce".into(),
            ..Default::default()
        };
        let mut model = build(&cfg, &setup(8, 3));
        let x = Tensor::zeros((4, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
        model.step(&x, &[0, 0, 0, 1]).unwrap();
        model.step(&x, &[0, 1, 1, 0]).unwrap();
        assert_eq!(model.counts, vec![5, 3, 0]);
        assert_eq!(model.one_class_warning(), None);
        let w = model.class_weights();
        assert!((w[0] / w[1] - 3.0 / 5.0).abs() < 1e-9, "{w:?}");
        // Explicit weights override the counts.
        let cfg = ClassifierConfig {
            class_weights: vec![1.0, 2.0, 3.0],
            ..cfg
        };
        let mut model = build(&cfg, &setup(8, 3));
        model.step(&x, &[0, 0, 0, 1]).unwrap();
        assert_eq!(model.class_weights(), vec![1.0, 2.0, 3.0]);
    }

    #[test]
    fn one_class_training_warns_once() {
        let cfg = ClassifierConfig {
            channels: vec![4],
            ..Default::default()
        };
        let mut model = build(&cfg, &setup(8, 2));
        let x = Tensor::zeros((128, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
        model.step(&x, &[1; 128]).unwrap();
        assert_eq!(model.one_class_warning(), None);
        model.step(&x, &[1; 128]).unwrap();
        let warning = model.one_class_warning().unwrap();
        assert!(warning.contains("normal_class"), "{warning}");
        assert_eq!(model.one_class_warning(), None);
    }

    #[test]
    fn same_seed_same_training() {
        let cfg = ClassifierConfig {
            channels: vec![4, 8],
            dropout: 0.3,
            residual: true,
            ..Default::default()
        };
        let (x, y) = blobs(12, 16, 1);
        let run = |seed: u64| {
            let mut model = build(
                &cfg,
                &Setup {
                    seed,
                    ..setup(16, 3)
                },
            );
            let losses: Vec<f64> = (0..3).map(|_| model.step(&x, &y).unwrap().0).collect();
            (losses, batch::to_vec(&model.logits(&x).unwrap()).unwrap())
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5).1, run(6).1);
    }

    #[test]
    fn training_learns_the_shapes() {
        let cfg = ClassifierConfig {
            channels: vec![8, 16],
            ..Default::default()
        };
        let mut model = build(
            &cfg,
            &Setup {
                learning_rate: Some(3e-3),
                ..setup(16, 3)
            },
        );
        let (x, y) = blobs(96, 16, 7);
        let mut losses = Vec::new();
        let mut accs = Vec::new();
        for epoch in 0..30 {
            for b in 0..4 {
                let xb = x.narrow(0, b * 24, 24).unwrap();
                let (l, a) = model.step(&xb, &y[b * 24..(b + 1) * 24]).unwrap();
                if epoch == 0 || epoch == 29 {
                    losses.push(l);
                    accs.push(a);
                }
            }
        }
        let first = losses[..4].iter().sum::<f64>() / 4.0;
        let last = losses[4..].iter().sum::<f64>() / 4.0;
        let acc = accs[4..].iter().sum::<f64>() / 4.0;
        assert!(last < first * 0.5, "loss {first} -> {last}");
        assert!(acc > 0.6, "train accuracy {acc}");
        // Held-out images of the same kind.
        let (xt, yt) = blobs(30, 16, 99);
        let (_, probs) = model.evaluate(&xt, &yt).unwrap();
        let hits = yt
            .iter()
            .enumerate()
            .filter(|&(i, &l)| {
                let row = &probs[i * 3..i * 3 + 3];
                let best = (0..3).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
                best == l as usize
            })
            .count();
        assert!(hits as f64 / 30.0 > 0.6, "test accuracy {}/30", hits);
    }

    #[test]
    fn eval_probabilities_sum_to_one() {
        let model = build(&ClassifierConfig::default(), &setup(16, 4));
        let x = Tensor::zeros((3, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
        let (loss, probs) = model.evaluate(&x, &[0, 1, 3]).unwrap();
        assert!(loss.is_finite());
        assert_eq!(probs.len(), 12);
        for row in probs.chunks(4) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn saliency_grid_shape_and_range() {
        let cfg = ClassifierConfig {
            channels: vec![8, 16],
            ..Default::default()
        };
        let model = build(&cfg, &setup(16, 3));
        let (x, y) = blobs(10, 16, 2);
        let grids = model.explain(&x, &y).unwrap();
        assert_eq!(grids.len(), 2);
        for grid in &grids {
            assert_eq!(grid.shape, [16, 3, 16, 16], "{}", grid.name);
            assert_eq!(grid.columns, 8);
            assert_eq!(grid.data.len(), 16 * 3 * 16 * 16);
            assert!(grid.data.iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert_eq!(grids[0].name, "saliency");
        // The overlays differ from gray somewhere: red is above green.
        let plane = 16 * 16;
        let first_overlay = &grids[0].data[8 * 3 * plane..9 * 3 * plane];
        assert!((0..plane).any(|p| first_overlay[p] > first_overlay[plane + p] + 0.1));
        // Fewer than 8 images: one column per image.
        let grids = model.explain(&x.narrow(0, 0, 3).unwrap(), &y[..3]).unwrap();
        assert_eq!(grids[0].shape, [6, 3, 16, 16]);
        // RGB inputs work too.
        let model = build(
            &cfg,
            &Setup {
                channels: 3,
                ..setup(16, 3)
            },
        );
        let rgb = Tensor::cat(&[&x, &x, &x], 1).unwrap();
        assert_eq!(model.explain(&rgb, &y).unwrap()[1].shape, [16, 3, 16, 16]);
    }

    #[test]
    fn bilinear_keeps_constants_and_interpolates() {
        let v = vec![2.0f32; 4];
        assert!(
            bilinear(&v, 1, 2, 2, 8, 8)
                .iter()
                .all(|&x| (x - 2.0).abs() < 1e-6)
        );
        // 1x2 -> 1x4: half-pixel centres give 0, 0.25, 0.75, 1.
        let out = bilinear(&[0.0, 1.0], 1, 1, 2, 1, 4);
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn checkpoint_round_trips_with_counts() {
        let cfg = ClassifierConfig {
            channels: vec![4],
            loss: "weighted_ce".into(),
            ..Default::default()
        };
        let mut a = build(&cfg, &setup(8, 2));
        let x = Tensor::zeros((3, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
        a.step(&x, &[0, 1, 1]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        checkpoint::save(dir.path(), &a.varmap, &a.adam).unwrap();
        std::fs::write(
            dir.path().join(COUNTS_FILE),
            ron::to_string(&a.counts).unwrap(),
        )
        .unwrap();
        let mut b = build(
            &cfg,
            &Setup {
                seed: 9,
                ..setup(8, 2)
            },
        );
        checkpoint::load(dir.path(), &b.varmap, &mut b.adam).unwrap();
        b.counts =
            ron::from_str(&std::fs::read_to_string(dir.path().join(COUNTS_FILE)).unwrap()).unwrap();
        assert_eq!(b.counts, vec![1, 2]);
        assert_eq!(
            batch::to_vec(&a.logits(&x).unwrap()).unwrap(),
            batch::to_vec(&b.logits(&x).unwrap()).unwrap()
        );
    }
}

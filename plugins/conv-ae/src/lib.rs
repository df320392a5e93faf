//! gantry plugin: a convolutional autoencoder used as an anomaly detector. Trained on
//! normal images only; a high per-image reconstruction error flags an anomaly.
//!
//! The default architecture is the reference the benchmarks compare against:
//! encoder `[Conv3x3 pad 1 -> LeakyReLU(0.2) -> MaxPool 2]` for channels (32, 64, 128);
//! `Linear(flat -> 64)`; `Linear(64 -> flat)`; decoder `[Upsample x2 nearest -> Conv3x3 ->
//! LeakyReLU(0.2)]` for channels (64, 32); then `Upsample x2 -> Conv3x3 -> C -> Sigmoid`.
//! MSE loss (BCE selectable), Adam lr 1e-3.

use std::path::Path;

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{Linear, VarBuilder, VarMap};
use gantry_kit::layers::{self, Conv2d};
use gantry_kit::loss::{self, Reconstruction};
use gantry_kit::optim::{Adam, AdamConfig};
use gantry_kit::{batch, checkpoint, device, init, ops, params, quality};
use gantry_plugin_api::{
    Batch, Context, Description, ImageRef, InputConstraints, Model, PluginError, PluginResult,
    Setup,
};
use serde::{Deserialize, Serialize};

// Training allocates and frees many activation-sized buffers per step; glibc returns them
// to the kernel (mmap/munmap), so every op paid fresh page faults. mimalloc keeps them.
// Each plugin has its own allocator; nothing allocated here is freed by the host.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hyper-parameters, with the reference architecture as defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConvAeConfig {
    /// Encoder channels per level; the depth is their count (each level halves H and W).
    pub channels: Vec<usize>,
    /// Size of the bottleneck.
    pub latent: usize,
    /// `leaky_relu` or `relu`.
    pub activation: String,
    /// Negative slope of `leaky_relu`.
    pub leaky_slope: f64,
    /// `mse` or `bce`.
    pub loss: String,
    /// Log PSNR, SSIM, GMSD, MDSI, HaarPSI... of reconstructions at each evaluation. At
    /// 64x64 they cost about as much as the forward pass; `gantry bench train --eval`
    /// turns them off to time the forward pass alone.
    pub quality_metrics: bool,
}

impl Default for ConvAeConfig {
    fn default() -> Self {
        ConvAeConfig {
            channels: vec![32, 64, 128],
            latent: 64,
            activation: "leaky_relu".into(),
            leaky_slope: 0.2,
            loss: "mse".into(),
            quality_metrics: true,
        }
    }
}

impl ConvAeConfig {
    fn reconstruction(&self) -> std::result::Result<Reconstruction, String> {
        match self.loss.as_str() {
            "mse" => Ok(Reconstruction::Mse),
            "bce" => Ok(Reconstruction::Bce),
            other => Err(format!("params: loss {other:?} is not one of mse, bce")),
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
        self.reconstruction()?;
        params::check_input(setup, self.channels.len(), "conv-ae")
    }
}

/// The network: encoder convs, two bottleneck linears, decoder convs, output conv.
pub struct ConvAeNet {
    encoder: Vec<Conv2d>,
    down: Linear,
    up: Linear,
    decoder: Vec<Conv2d>,
    output: Conv2d,
    /// Shape of the deepest feature map: (channels, height, width).
    bottom: (usize, usize, usize),
    leaky_slope: Option<f64>,
}

impl ConvAeNet {
    pub fn new(cfg: &ConvAeConfig, setup: &Setup, vb: VarBuilder) -> Result<ConvAeNet> {
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
        let down = candle_nn::linear(flat, cfg.latent, vb.pp("bottleneck.down"))?;
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
        Ok(ConvAeNet {
            encoder,
            down,
            up,
            decoder,
            output,
            bottom,
            leaky_slope: (cfg.activation == "leaky_relu").then_some(cfg.leaky_slope),
        })
    }

    /// LeakyReLU's slope, 0 for ReLU: fused into the convolution before it.
    fn slope(&self) -> f64 {
        self.leaky_slope.unwrap_or(0.0)
    }
}

impl ConvAeNet {
    /// The bottleneck code `[N, latent]` of a batch.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let mut h = x.clone();
        for conv in &self.encoder {
            h = ops::pool::max_pool2x2(&conv.forward_leaky(&h, self.slope())?)?;
        }
        self.down.forward(&h.flatten_from(1)?)
    }

    /// The reconstruction of codes `[N, latent]`.
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
}

impl Module for ConvAeNet {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.decode(&self.encode(x)?)
    }
}

/// The plugin instance: network, weights, optimiser.
pub struct ConvAe {
    net: ConvAeNet,
    varmap: VarMap,
    adam: Adam,
    device: Device,
    loss: Reconstruction,
    /// Whether eval logs image quality metrics.
    quality: bool,
}

/// Images per sample grid row (originals above, reconstructions below).
const GRID_COLUMNS: usize = 8;

impl ConvAe {
    /// Builds the model on `device` with seeded weights.
    pub fn build(cfg: &ConvAeConfig, setup: &Setup, device: Device) -> PluginResult<ConvAe> {
        cfg.check(setup).map_err(PluginError::new)?;
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let net = ConvAeNet::new(cfg, setup, vb)?;
        init::pytorch_default(&varmap, setup.seed)?;
        let adam = Adam::new(
            &varmap,
            AdamConfig {
                lr: setup.learning_rate.unwrap_or(1e-3),
                ..Default::default()
            },
        )?;
        Ok(ConvAe {
            net,
            varmap,
            adam,
            device,
            loss: cfg.reconstruction().map_err(PluginError::new)?,
            quality: cfg.quality_metrics,
        })
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        let data = self.varmap.data().lock().expect("varmap lock");
        data.values().map(|v| v.elem_count()).sum()
    }

    /// Reconstructs a batch.
    pub fn reconstruct(&self, images: &Tensor) -> Result<Tensor> {
        self.net.forward(images)
    }
}

impl Model for ConvAe {
    fn describe() -> Description {
        Description {
            summary: "convolutional autoencoder; per-image reconstruction error as anomaly score"
                .into(),
            families: vec!["autoencoder".into()],
            default_params: params::to_map_text(&ConvAeConfig::default()),
            losses: vec!["loss".into()],
            metrics: vec![],
            scores: vec!["mse".into()],
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
        let cfg: ConvAeConfig = params::parse(params).map_err(PluginError::new)?;
        let model = ConvAe::build(&cfg, setup, device::open(device, ctx)?)?;
        ctx.info("parameters", &model.parameter_count().to_string());
        Ok(model)
    }

    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let recon = self.net.forward(&x)?;
        let loss = loss::mean(self.loss, &recon, &x)?;
        self.adam.backward_step(&loss)?;
        ctx.scalar("loss", loss.to_scalar::<f32>()? as f64);
        Ok(())
    }

    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let x = batch::images(batch, &self.device)?;
        let z = self.net.encode(&x)?.detach();
        let recon = self.net.decode(&z)?.detach();
        // Latent codes for the host's embedding view (ignored by a host before ABI 1.1).
        let latent = z.dim(1)?;
        ctx.vectors("latent", &batch::to_vec(&z)?, latent);
        let loss = loss::mean(self.loss, &recon, &x)?;
        ctx.scalar("loss", loss.to_scalar::<f32>()? as f64);
        if self.quality {
            for (name, value) in quality::batch_quality(&recon, &x)? {
                ctx.scalar(name, value);
            }
        }
        // Fused: on a GPU only the N scores leave the device.
        let mse = gantry_kit::fused::per_image_mse(&recon, &x)?;
        ctx.scores("mse", &batch::to_vec(&mse)?);
        if batch.want_images {
            let k = batch.len().min(GRID_COLUMNS);
            let pair = Tensor::cat(&[x.narrow(0, 0, k)?, recon.narrow(0, 0, k)?], 0)?;
            let shape = batch::dims4(&pair)?;
            ctx.image(
                "reconstruction",
                ImageRef {
                    data: &batch::to_vec(&pair)?,
                    shape,
                    columns: k,
                },
            );
        }
        Ok(())
    }

    fn save(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        checkpoint::save(dir, &self.varmap, &self.adam)?;
        Ok(())
    }

    fn load(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        checkpoint::load(dir, &self.varmap, &mut self.adam)?;
        Ok(())
    }
}

gantry_plugin_api::export_model!(
    ConvAe,
    name: "conv-ae",
    family: "autoencoder",
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

    #[test]
    fn reference_architecture_shapes_and_parameter_count() {
        let model = ConvAe::build(&ConvAeConfig::default(), &setup(64), Device::Cpu)
            .map_err(|e| e.message().to_string())
            .unwrap();
        let x = Tensor::zeros((2, 1, 64, 64), DType::F32, &Device::Cpu).unwrap();
        let y = model.reconstruct(&x).unwrap();
        assert_eq!(y.dims(), &[2, 1, 64, 64]);
        // enc: (1*9+1)*32 + (32*9+1)*64 + (64*9+1)*128; flat = 128*8*8 = 8192;
        // bottleneck: 8192*64+64 + 64*8192+8192; dec: (128*9+1)*64 + (64*9+1)*32;
        // out: (32*9+1)*1.
        let expected = 320 + 18_496 + 73_856 + 524_352 + 532_480 + 73_792 + 18_464 + 289;
        assert_eq!(model.parameter_count(), expected);
    }

    #[test]
    fn indivisible_size_is_a_clear_error() {
        let err = ConvAe::build(&ConvAeConfig::default(), &setup(60), Device::Cpu)
            .err()
            .unwrap();
        assert!(
            err.message().contains("not divisible by 2^depth = 8"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn params_parse_with_defaults_and_name_bad_fields() {
        let cfg: ConvAeConfig = params::parse("{\"latent\": 16, \"loss\": \"bce\"}").unwrap();
        assert_eq!(cfg.latent, 16);
        assert_eq!(cfg.channels, vec![32, 64, 128]);
        let err = params::parse::<ConvAeConfig>("{\"latnet\": 16}").unwrap_err();
        assert!(err.contains("latnet"), "{err}");
        let bad = ConvAeConfig {
            loss: "l1".into(),
            ..Default::default()
        };
        assert!(bad.check(&setup(64)).unwrap_err().contains("\"l1\""));
    }

    #[test]
    fn training_reduces_the_loss() {
        let cfg = ConvAeConfig {
            channels: vec![8, 16],
            latent: 16,
            ..Default::default()
        };
        let mut model = ConvAe::build(&cfg, &setup(16), Device::Cpu)
            .map_err(|e| e.message().to_string())
            .unwrap();
        // Smooth blobs: a learnable distribution.
        let data: Vec<f32> = (0..8 * 16 * 16)
            .map(|i| {
                let (n, y, x) = (i / 256, (i / 16) % 16, i % 16);
                let (cy, cx) = (4.0 + n as f32, 10.0 - n as f32 / 2.0);
                (-((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)) / 12.0).exp()
            })
            .collect();
        let x = Tensor::from_vec(data, (8, 1, 16, 16), &Device::Cpu).unwrap();
        let first = loss::mean(Reconstruction::Mse, &model.reconstruct(&x).unwrap(), &x)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        for _ in 0..150 {
            let l = loss::mean(Reconstruction::Mse, &model.reconstruct(&x).unwrap(), &x).unwrap();
            model.adam.backward_step(&l).unwrap();
        }
        let last = loss::mean(Reconstruction::Mse, &model.reconstruct(&x).unwrap(), &x)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(last < first * 0.5, "loss {first} -> {last}");
    }
}

//! Synthetic augmentation (seed 002's experiment): a classifier run takes images generated
//! by a finished class-conditional GAN run as extra training data. The GAN's plugin is
//! loaded in this process, its `last` checkpoint restored, and `sample` asked for
//! `per_class` images of every class; the plugin names each image's class with a `class`
//! score. Classes are matched by index, so the GAN run must have been trained on the same
//! class folders (sorted names), as the classifier's dataset.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context as _, Result, bail};
use gantry_plugin_api::Setup;
use gantry_plugin_api::host::Plugin;

use super::sink::RunSink;
use crate::data::options::Synthetic;
use crate::data::{Dataset, Loader, SYNTHETIC_SET, Sample};
use crate::plugins;
use crate::runfs::RunFolder;

/// Generates the images and appends them to the dataset's train split.
pub fn augment(
    dataset: &mut Dataset,
    spec: &Synthetic,
    run_dir: &Path,
    plugin_dirs: &[std::path::PathBuf],
) -> Result<usize> {
    let folder = RunFolder::new(run_dir);
    let record = folder
        .read_record()
        .with_context(|| format!("data.synthetic.run {}", run_dir.display()))?;
    let path = if record.plugin.path.exists() {
        record.plugin.path.clone()
    } else {
        plugins::resolve(&record.plugin.name, plugin_dirs).map_err(anyhow::Error::msg)?
    };
    let plugin = Plugin::load(&path)?;
    let classes = dataset.classes.len();
    let (h, w) = record.spec.data.size;
    let setup = Setup {
        channels: record.spec.data.channels as usize,
        height: h as usize,
        width: w as usize,
        num_classes: classes,
        seed: record.spec.train.seed,
        learning_rate: record.spec.train.lr,
        total_steps: None,
    };
    let mut sink = RunSink::new(Arc::new(AtomicBool::new(false)));
    let mut instance = plugin.create(&record.spec.params_text(), "cpu", &setup, &mut sink)?;
    let checkpoint = folder.checkpoints_dir().join("last");
    instance
        .load(&checkpoint, &mut sink)
        .with_context(|| format!("loading {}", checkpoint.display()))?;
    // Labels cycle through the classes in rows, so asking for per_class * K (plus a row
    // of slack per class) yields at least per_class of each.
    let n = (spec.per_class + 8) * classes;
    sink.clear();
    instance.sample(n as u32, record.spec.train.seed ^ 0x5A4E_7E71, &mut sink)?;
    let Some((_, labels)) = sink.scores.iter().find(|(name, _)| name == "class") else {
        bail!(
            "data.synthetic: {} ({}) gave no class per generated image: only a \
             class-conditional GAN (variant \"acgan\") can add labelled training data",
            run_dir.display(),
            record.plugin.name
        );
    };
    let Some(image) = sink.images.first() else {
        bail!("data.synthetic: {} generated no images", run_dir.display());
    };
    let [count, c, ih, iw] = image.shape;
    if labels.len() != count {
        bail!(
            "data.synthetic: {count} images but {} class labels",
            labels.len()
        );
    }
    let per = c * ih * iw;
    let mut images = Vec::new();
    let mut taken = vec![0usize; classes];
    for (i, &label) in labels.iter().enumerate() {
        let k = label as usize;
        if k >= classes || taken[k] >= spec.per_class {
            continue;
        }
        taken[k] += 1;
        images.push((
            k as u32,
            to_image(&image.data[i * per..(i + 1) * per], c, ih, iw)?,
        ));
    }
    let store: Arc<Vec<image::DynamicImage>> =
        Arc::new(images.iter().map(|(_, img)| img.clone()).collect());
    for (i, (class, _)) in images.iter().enumerate() {
        dataset.train.push(Sample {
            path: run_dir.to_path_buf(),
            name: format!("synthetic/{}/{i:05}", dataset.classes[*class as usize]),
            class: *class,
            frame: Some((SYNTHETIC_SET, i as u32)),
            group: None,
        });
    }
    let base = std::mem::replace(&mut dataset.loader, Loader::Files);
    dataset.loader = Loader::WithSynthetic {
        base: Box::new(base),
        images: store,
    };
    Ok(images.len())
}

/// CHW values in [0, 1] as an image the data pipeline shapes like any decoded file:
/// 16-bit gray, or float RGB.
fn to_image(chw: &[f32], c: usize, h: usize, w: usize) -> Result<image::DynamicImage> {
    let plane = h * w;
    let (w32, h32) = (w as u32, h as u32);
    match c {
        1 => {
            let px: Vec<u16> = chw
                .iter()
                .map(|v| (v.clamp(0.0, 1.0) * 65535.0).round() as u16)
                .collect();
            image::ImageBuffer::from_raw(w32, h32, px)
                .map(image::DynamicImage::ImageLuma16)
                .context("synthetic image buffer")
        }
        3 => {
            let px: Vec<f32> = (0..plane)
                .flat_map(|p| (0..3).map(move |k| chw[k * plane + p].clamp(0.0, 1.0)))
                .collect();
            image::ImageBuffer::from_raw(w32, h32, px)
                .map(image::DynamicImage::ImageRgb32F)
                .context("synthetic image buffer")
        }
        _ => bail!("data.synthetic: generated images have {c} channels (1 or 3 supported)"),
    }
}

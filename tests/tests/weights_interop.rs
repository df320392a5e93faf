//! A gantry conv-ae checkpoint is usable outside gantry: its `model.safetensors` holds the
//! tensors the README documents (names, shapes, f32, no optimiser state), and a plain numpy
//! forward pass over that file (`tests/peers/numpy_conv_ae.py`, the CI stand-in for the
//! PyTorch reference module of `tests/peers/load_conv_ae_torch.py`) reconstructs images as
//! gantry does, to 1e-5.
//!
//! Everything on gantry's side is the real path: the `gantry` binary trains and writes the
//! checkpoint; the plugin library the run recorded loads it through the host API
//! (`PluginInstance::load`, the code `gantry resume` uses) and evaluates the run's own val
//! and test images, read by the runner's data pipeline, and a batch of noise. Its eval
//! emits the inputs and their reconstructions (the `reconstruction` image), which are
//! written as `.npy` for the Python side; its per-image scores of the run's images must
//! equal the run's last `scores/epoch-N.csv`.
//!
//! The numpy check runs when `GANTRY_NUMPY_PYTHON` names a Python with `numpy` and
//! `safetensors` (`.ci/python-weights` sets it up); otherwise it says it was skipped.
//! `GANTRY_WEIGHTS_KEEP=DIR` keeps the run and the `.npy` files in DIR (for running the
//! PyTorch script by hand) and prints the commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use gantry::data::pipeline::Pipeline;
use gantry::data::source;
use gantry::runfs::RunFolder;
use gantry_e2e::{gantry, plugin_dir, shared_synth, workspace_root};
use gantry_plugin_api::host::{HostSink, Plugin};
use gantry_plugin_api::{Batch, ImageRef, Level, Setup};

/// What the numpy forward pass must match (max abs difference of reconstructions).
const TOLERANCE: f64 = 1e-5;

/// Images per eval call: conv-ae's eval emits at most 8 input/reconstruction pairs.
const CHUNK: usize = 8;

/// Non-default hyper-parameters, so the Python side must read them: three levels (two
/// decoder convs), a non-square input (bottom 32x2x3) and a LeakyReLU slope of 0.1.
fn config(data: &Path) -> String {
    format!(
        r#"(
    plugin: "conv-ae",
    params: {{"channels": [8, 16, 32], "latent": 16, "leaky_slope": 0.1}},
    data: (kind: ImageFolder, root: {:?}, size: (16, 24), channels: 1, normal_class: "normal"),
    train: (epochs: 2, batch_size: 16, lr: 0.002, seed: 1),
    device: "cpu",
)
"#,
        data.display().to_string()
    )
}

/// The tensors of `model.safetensors` for [`config`], as the README documents them for
/// conv-ae: `enc.{i}.conv`, `bottleneck.down`/`up`, `dec.{i}.conv`, `out.conv`.
fn documented_tensors() -> BTreeMap<String, Vec<usize>> {
    let flat = 32 * 2 * 3;
    [
        ("enc.0.conv.weight", vec![8, 1, 3, 3]),
        ("enc.0.conv.bias", vec![8]),
        ("enc.1.conv.weight", vec![16, 8, 3, 3]),
        ("enc.1.conv.bias", vec![16]),
        ("enc.2.conv.weight", vec![32, 16, 3, 3]),
        ("enc.2.conv.bias", vec![32]),
        ("bottleneck.down.weight", vec![16, flat]),
        ("bottleneck.down.bias", vec![16]),
        ("bottleneck.up.weight", vec![flat, 16]),
        ("bottleneck.up.bias", vec![flat]),
        ("dec.0.conv.weight", vec![16, 32, 3, 3]),
        ("dec.0.conv.bias", vec![16]),
        ("dec.1.conv.weight", vec![8, 16, 3, 3]),
        ("dec.1.conv.bias", vec![8]),
        ("out.conv.weight", vec![1, 8, 3, 3]),
        ("out.conv.bias", vec![1]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Keeps the `reconstruction` image (inputs over reconstructions) and the `mse` scores.
#[derive(Default)]
struct Capture {
    pairs: Vec<(Vec<f32>, [usize; 4])>,
    scores: Vec<f32>,
    logs: Vec<String>,
}

impl HostSink for Capture {
    fn scalar(&mut self, _name: &str, _value: f64) {}
    fn scores(&mut self, name: &str, values: &[f32]) {
        if name == "mse" {
            self.scores.extend_from_slice(values);
        }
    }
    fn image(&mut self, name: &str, image: ImageRef<'_>) {
        if name == "reconstruction" {
            self.pairs.push((image.data.to_vec(), image.shape));
        }
    }
    fn info(&mut self, _key: &str, _value: &str) {}
    fn log(&mut self, _level: Level, text: &str) {
        self.logs.push(text.into());
    }
}

/// Writes a little-endian f32 array in NumPy's `.npy` format (version 1.0).
fn write_npy(path: &Path, data: &[f32], shape: &[usize]) {
    assert_eq!(data.len(), shape.iter().product::<usize>());
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let tuple = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {tuple}, }}").into_bytes();
    // Magic (6) + version (2) + length (2) + header, padded with spaces to 64 and ended
    // by a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(&header);
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, out).unwrap();
}

/// `len` values uniform in [0, 1) from xorshift64*, seeded.
fn noise(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D);
            (r >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

/// Names, dtypes and shapes from a safetensors file's JSON header.
fn safetensors_header(path: &Path) -> BTreeMap<String, (String, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| {
            let dtype = v["dtype"].as_str().unwrap().to_string();
            let shape = v["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect();
            (k.clone(), (dtype, shape))
        })
        .collect()
}

#[test]
fn conv_ae_checkpoint_reconstructs_the_same_outside_gantry() {
    let data = shared_synth(96, 16, 5);
    let tmp = tempfile::tempdir().unwrap();
    let keep = std::env::var_os("GANTRY_WEIGHTS_KEEP").map(PathBuf::from);
    let root = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let runs = root.join("runs");
    let run = runs.join("conv-ae-interop");
    if run.exists() {
        std::fs::remove_dir_all(&run).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    let cfg = root.join("conv-ae-interop.ron");
    std::fs::write(&cfg, config(data)).unwrap();
    let (code, _, err) = gantry(&[
        "train",
        cfg.to_str().unwrap(),
        "--runs",
        runs.to_str().unwrap(),
        "--name",
        "conv-ae-interop",
        "--plugins",
        plugin_dir().to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(code, 0, "training failed: {err}");

    // The weights file: exactly the documented tensors, f32, no optimiser state.
    let folder = RunFolder::new(&run);
    let ckpt = folder.checkpoint_dir("last");
    let header = safetensors_header(&ckpt.join("model.safetensors"));
    let found: BTreeMap<String, Vec<usize>> = header
        .iter()
        .map(|(k, (_, shape))| (k.clone(), shape.clone()))
        .collect();
    assert_eq!(found, documented_tensors(), "model.safetensors tensors");
    assert!(
        header.values().all(|(dtype, _)| dtype == "F32"),
        "{header:?}"
    );
    let opt = safetensors_header(&ckpt.join("optimizer.safetensors"));
    assert!(
        opt.keys()
            .all(|k| k == "step" || k.starts_with("m.") || k.starts_with("v.")),
        "optimizer.safetensors: {:?}",
        opt.keys()
    );

    // The run's own val and test images, as the runner reads them for evaluation.
    let record = folder.read_record().unwrap();
    let spec = &record.spec;
    let dataset = source::open(&spec.data, spec.train.seed).unwrap();
    let pipeline = Pipeline::new(&spec.data, dataset.loader.clone(), spec.train.seed);
    let samples: Vec<_> = dataset.val.iter().chain(&dataset.test).collect();
    assert!(samples.len() >= 2 * CHUNK, "{} samples", samples.len());
    let (c, h, w) = (
        spec.data.channels as usize,
        spec.data.size.0 as usize,
        spec.data.size.1 as usize,
    );
    let plane = c * h * w;

    // The plugin the run used, restored from its last checkpoint as `resume` does.
    let plugin = Plugin::load(&record.plugin.path).unwrap();
    let setup = Setup {
        channels: c,
        height: h,
        width: w,
        num_classes: dataset.classes.len(),
        seed: spec.train.seed,
        learning_rate: spec.train.lr,
        total_steps: None,
    };
    let mut sink = Capture::default();
    let mut model = plugin
        .create(&spec.params_text(), &spec.device, &setup, &mut sink)
        .unwrap();
    model.load(&ckpt, &mut sink).unwrap();

    // The run's images, then one batch of uniform noise: the synthetic tissue is
    // low-contrast, noise drives every layer further from its operating point.
    let mut batches: Vec<Vec<f32>> = samples
        .chunks(CHUNK)
        .map(|chunk| {
            let mut pixels = Vec::with_capacity(chunk.len() * plane);
            for s in chunk {
                let shaped = pipeline.shaped(s).unwrap();
                pixels.extend(pipeline.finish(&shaped, None).unwrap());
            }
            pixels
        })
        .collect();
    batches.push(noise(CHUNK * plane, 9));
    let mut inputs = Vec::new();
    let mut recons = Vec::new();
    for pixels in &batches {
        let k = pixels.len() / plane;
        model
            .eval(
                &Batch {
                    images: pixels,
                    shape: [k, c, h, w],
                    labels: &[],
                    want_images: true,
                },
                &mut sink,
            )
            .unwrap();
        let (pair, shape) = sink.pairs.pop().expect("conv-ae emits its reconstructions");
        assert_eq!(shape, [2 * k, c, h, w]);
        // The image's top row is the input the plugin saw: bit for bit what was sent.
        assert_eq!(&pair[..k * plane], &pixels[..], "echoed inputs differ");
        inputs.extend_from_slice(pixels);
        recons.extend_from_slice(&pair[k * plane..]);
    }
    let n = inputs.len() / plane;

    // Restored, the plugin scores the images as the run did in its last evaluation.
    let epoch = spec.train.epochs;
    let rows = gantry::runfs::scores::read(&folder.scores_file(epoch)).unwrap();
    let by_name: BTreeMap<&str, f64> = rows.iter().map(|r| (r.sample.as_str(), r.score)).collect();
    assert_eq!(sink.scores.len(), n);
    assert_eq!(n, samples.len() + CHUNK);
    for (s, &score) in samples.iter().zip(&sink.scores) {
        let run_score = by_name[s.name.as_str()];
        let score = f64::from(score);
        assert!(
            (score - run_score).abs() <= 1e-5 * run_score.abs().max(1e-6),
            "{}: restored {score}, the run's epoch {epoch} {run_score}",
            s.name
        );
    }

    let interop = root.join("interop");
    std::fs::create_dir_all(&interop).unwrap();
    let (x_npy, y_npy) = (
        interop.join("inputs.npy"),
        interop.join("reconstructions.npy"),
    );
    write_npy(&x_npy, &inputs, &[n, c, h, w]);
    write_npy(&y_npy, &recons, &[n, c, h, w]);

    let script = |name: &str| workspace_root().join("tests/peers").join(name);
    let args = |python: &str, name: &str| {
        format!(
            "{python} {} {} --inputs {} --expected {}",
            script(name).display(),
            run.display(),
            x_npy.display(),
            y_npy.display()
        )
    };
    if keep.is_some() {
        eprintln!(
            "kept {}; check by hand with:\n  {}\n  {}",
            root.display(),
            args("python3", "numpy_conv_ae.py"),
            args("python3", "load_conv_ae_torch.py")
        );
    }

    let Some(python) = std::env::var_os("GANTRY_NUMPY_PYTHON") else {
        eprintln!(
            "skipped the numpy forward pass: GANTRY_NUMPY_PYTHON is not set (run \
             `eval \"$(.ci/python-weights)\"` to set it)"
        );
        return;
    };
    let out = Command::new(&python)
        .arg(script("numpy_conv_ae.py"))
        .arg(&run)
        .arg("--inputs")
        .arg(&x_npy)
        .arg("--expected")
        .arg(&y_npy)
        .args(["--tol", &TOLERANCE.to_string()])
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", Path::new(&python).display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{}{}", stdout.trim_end(), stderr);
    let diff: f64 = stdout
        .split("max abs diff ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max abs diff in: {stdout}{stderr}"));
    assert!(
        out.status.success() && diff <= TOLERANCE,
        "numpy forward pass differs from gantry's by {diff} (tolerance {TOLERANCE}): \
         {stdout}{stderr}"
    );
}

use super::*;

fn setup(size: usize) -> Setup {
    Setup {
        channels: 1,
        height: size,
        width: size,
        num_classes: 3,
        seed: 3,
        learning_rate: None,
        total_steps: None,
    }
}

fn small(variant: &str) -> GanConfig {
    GanConfig {
        variant: variant.into(),
        z_dim: 16,
        g_width: 8,
        d_width: 8,
        embed_dim: 4,
        ..Default::default()
    }
}

fn build(cfg: &GanConfig, setup: &Setup) -> Gan {
    Gan::build(cfg, setup, Device::Cpu)
        .map_err(|e| e.message().to_string())
        .unwrap()
}

/// Smooth blobs at varying positions, in [0, 1].
fn blobs(n: usize, c: usize, size: usize) -> Tensor {
    let data: Vec<f32> = (0..n * c * size * size)
        .map(|i| {
            let k = i / (c * size * size);
            let (y, x) = ((i / size) % size, i % size);
            let s = size as f32 / 16.0;
            let (cy, cx) = (s * (4.0 + k as f32), s * (10.0 - k as f32 / 2.0));
            (-((y as f32 - cy).powi(2) + (x as f32 - cx).powi(2)) / (12.0 * s * s)).exp()
        })
        .collect();
    Tensor::from_vec(data, (n, c, size, size), &Device::Cpu).unwrap()
}

fn labels(n: usize) -> Tensor {
    Tensor::from_vec(
        (0..n as u32).map(|i| i % 3).collect::<Vec<_>>(),
        n,
        &Device::Cpu,
    )
    .unwrap()
}

const VARIANTS: [&str; 5] = ["dcgan", "wgan", "wgan_gp", "sngan", "acgan"];

#[test]
fn shapes_for_32_64_128_gray_and_rgb() {
    for variant in VARIANTS {
        for (size, channels) in [(32, 1), (64, 3), (128, 1)] {
            let s = Setup {
                channels,
                ..setup(size)
            };
            let model = build(&small(variant), &s);
            let grid = model.fixed_grid().unwrap();
            assert_eq!(grid.dims(), &[64, channels, size, size], "{variant} {size}");
            let x = blobs(2, channels, size);
            let (logits, aux) = model.d.forward(&x, false).unwrap();
            assert_eq!(logits.dims(), &[2]);
            assert_eq!(aux.is_some(), variant == "acgan");
            let (_, _, scores) = model.evaluate(&x).unwrap();
            assert_eq!(scores.len(), 2);
        }
    }
}

#[test]
fn default_dcgan_32_parameter_count() {
    let model = build(&GanConfig::default(), &setup(32));
    // G: fc 100 -> 256*16 (+bias); bn0 256*2; up0 256->128 (4x4, +bias), bn 128*2;
    // up1 128->64, bn 64*2; up2 64->1.
    let g = 100 * 4096
        + 4096
        + 512
        + (256 * 128 * 16 + 128)
        + 256
        + (128 * 64 * 16 + 64)
        + 128
        + (64 * 16 + 1);
    // D: conv0 1->64, conv1 64->128 (+bn), conv2 128->256 (+bn), fc 256*16 -> 1.
    let d = (64 * 16 + 64) + (128 * 64 * 16 + 128) + 256 + (256 * 128 * 16 + 256) + 512 + 4097;
    assert_eq!(model.parameter_counts(), (g, d));
}

#[test]
fn every_variant_trains_a_few_steps_with_finite_losses() {
    for variant in VARIANTS {
        let mut model = build(&small(variant), &setup(16));
        let x = blobs(6, 1, 16);
        let l = labels(6);
        for _ in 0..3 {
            let s = model.train_on(&x, Some(&l)).unwrap();
            assert!(
                s.d_loss.is_finite() && s.g_loss.is_finite(),
                "{variant}: {s:?}"
            );
            assert_eq!(s.gp.is_some(), variant == "wgan_gp", "{variant}");
            assert_eq!(
                s.w_dist.is_some(),
                matches!(variant, "wgan" | "wgan_gp"),
                "{variant}"
            );
            assert_eq!(s.aux.is_some(), variant == "acgan", "{variant}");
        }
        let (g, d, scores) = model.evaluate(&x).unwrap();
        assert!(g.is_finite() && d.is_finite() && scores.iter().all(|v| v.is_finite()));
    }
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    for variant in VARIANTS {
        let x = blobs(4, 1, 16);
        let l = labels(4);
        let run = |seed: u64| {
            let mut model = build(&small(variant), &Setup { seed, ..setup(16) });
            let mut stats = Vec::new();
            for _ in 0..2 {
                stats.push(model.train_on(&x, Some(&l)).unwrap());
            }
            let grid = batch::to_vec(&model.fixed_grid().unwrap()).unwrap();
            let sample = batch::to_vec(&model.generate(5, 11).unwrap()).unwrap();
            (stats, grid, sample)
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b, "{variant}");
        assert_ne!(a.0, c.0, "{variant}");
    }
}

#[test]
fn fixed_grid_and_samples_are_stable_and_in_range() {
    let model = build(&small("dcgan"), &setup(32));
    let a = batch::to_vec(&model.fixed_grid().unwrap()).unwrap();
    let b = batch::to_vec(&model.fixed_grid().unwrap()).unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(model.generate(300, 1).unwrap().dims(), &[300, 1, 32, 32]);
    assert_eq!(model.generate(0, 1).unwrap().dims(), &[0, 1, 32, 32]);
    assert_eq!(
        batch::to_vec(&model.generate(3, 9).unwrap()).unwrap(),
        batch::to_vec(&model.generate(3, 9).unwrap()).unwrap()
    );
}

/// `mean_i (||g_i|| - 1)^2` of an `[n, ...]` gradient, in f64.
fn penalty_of(g: &Tensor) -> f64 {
    let n = g.dim(0).unwrap();
    let v: Vec<f64> = g.flatten_all().unwrap().to_vec1().unwrap();
    let per = v.len() / n;
    v.chunks(per)
        .map(|c| (c.iter().map(|x| x * x).sum::<f64>().sqrt() - 1.0).powi(2))
        .sum::<f64>()
        / n as f64
}

/// The reference: the input gradient by candle's ordinary (first-order) autograd, and the
/// penalty from it in plain f64.
fn reference_penalty(d: &Critic, x: &Tensor) -> f64 {
    let xv = Var::from_tensor(x).unwrap();
    let out = d
        .forward(xv.as_tensor(), true)
        .unwrap()
        .0
        .sum_all()
        .unwrap();
    let grads = out.backward().unwrap();
    penalty_of(grads.get(xv.as_tensor()).unwrap())
}

/// A small f64 critic as wgan_gp builds it (conv s2 -> leaky -> conv s2 -> leaky ->
/// linear, no batch norm), optionally with spectral norm.
fn f64_critic(variant: &str) -> (Critic, VarMap, Tensor) {
    let cfg = GanConfig {
        d_width: 3,
        ..small(variant)
    };
    let vars = VarMap::new();
    let mut rng = stream(1, SN_STREAM);
    let d = Critic::new(&cfg, &setup(16), &vars, DType::F64, &Device::Cpu, &mut rng).unwrap();
    init::pytorch_default(&vars, 5).unwrap();
    // Interpolates between two images: any batch with varied pre-activations will do.
    let x = (blobs(2, 1, 16).affine(2.0, -1.0).unwrap()
        + Tensor::from_vec(
            standard_normal(&mut stream(2, 9), 2 * 256),
            (2, 1, 16, 16),
            &Device::Cpu,
        )
        .unwrap()
        .affine(0.3, 0.0)
        .unwrap())
    .unwrap()
    .to_dtype(DType::F64)
    .unwrap();
    (d, vars, x)
}

fn finite_difference_check(variant: &str) {
    let (d, vars, x) = f64_critic(variant);
    // The explicit input gradient equals candle's autograd input gradient.
    let xv = Var::from_tensor(&x).unwrap();
    let out = d
        .forward(xv.as_tensor(), true)
        .unwrap()
        .0
        .sum_all()
        .unwrap();
    let auto = out.backward().unwrap().get(xv.as_tensor()).unwrap().clone();
    let mine = d.input_gradient(&x).unwrap();
    let diff = (auto - &mine)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f64>()
        .unwrap();
    assert!(diff < 1e-12, "input gradient differs by {diff}");

    let p = d.gradient_penalty(&x).unwrap();
    let p0 = p.to_scalar::<f64>().unwrap();
    assert!((p0 - reference_penalty(&d, &x)).abs() < 1e-10);
    let grads = p.backward().unwrap();
    let h = 1e-5;
    let data = vars.data().lock().unwrap();
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    let (mut worst_rel, mut worst_abs, mut checked, mut max_grad) = (0.0f64, 0.0f64, 0, 0.0f64);
    for name in names {
        if name.ends_with("sn_u") {
            continue;
        }
        let var = &data[name];
        let base: Vec<f64> = var.flatten_all().unwrap().to_vec1().unwrap();
        let analytic: Vec<f64> = match grads.get(var.as_tensor()) {
            Some(g) => g.flatten_all().unwrap().to_vec1().unwrap(),
            None => vec![0.0; base.len()],
        };
        let mut layer_max = 0.0f64;
        for i in 0..base.len() {
            let at = |delta: f64| {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                reference_penalty(&d, &x)
            };
            let fd = (at(h) - at(-h)) / (2.0 * h);
            let a = analytic[i];
            let abs = (a - fd).abs();
            worst_abs = worst_abs.max(abs);
            if fd.abs().max(a.abs()) > 1e-8 {
                worst_rel = worst_rel.max(abs / fd.abs().max(a.abs()));
            }
            layer_max = layer_max.max(a.abs());
            checked += 1;
        }
        var.set(&Tensor::from_vec(base, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        if name.ends_with("weight") {
            // The penalty reaches every layer's weights, not only the first.
            assert!(layer_max > 1e-6, "{name}: penalty gradient {layer_max}");
        }
        max_grad = max_grad.max(layer_max);
    }
    eprintln!(
        "{variant} gradient penalty: P = {p0:.6}, {checked} parameters, max |dP/dw| = \
         {max_grad:.3e}, worst relative error vs central differences (h = {h}) = \
         {worst_rel:.3e}, worst absolute = {worst_abs:.3e}"
    );
    assert!(worst_rel < 1e-6, "relative error {worst_rel}");
}

#[test]
fn gradient_penalty_weight_gradient_matches_finite_differences() {
    finite_difference_check("wgan_gp");
}

#[test]
fn gradient_penalty_through_spectral_norm_matches_finite_differences() {
    finite_difference_check("sngan");
}

#[test]
fn spectral_norm_brings_each_weight_to_unit_norm() {
    let (d, _vars, _) = f64_critic("sngan");
    for _ in 0..200 {
        d.power_iteration().unwrap();
    }
    for layer in d.convs.iter().chain(std::iter::once(&d.fc)) {
        let w = layer.effective_weight().unwrap();
        let out = w.dim(0).unwrap();
        let wm = w.reshape((out, ())).unwrap();
        // Largest singular value by many power iterations on W^T W.
        let mut v = Tensor::ones((wm.dim(1).unwrap(), 1), DType::F64, &Device::Cpu).unwrap();
        for _ in 0..500 {
            v = l2_normalize(&wm.t().unwrap().matmul(&wm.matmul(&v).unwrap()).unwrap()).unwrap();
        }
        let sigma = wm
            .matmul(&v)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .sqrt()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        assert!((sigma - 1.0).abs() < 1e-6, "sigma {sigma}");
    }
}

#[test]
fn wgan_clips_critic_weights() {
    let mut model = build(&small("wgan"), &setup(16));
    let x = blobs(4, 1, 16);
    model.train_on(&x, None).unwrap();
    let data = model.d_vars.data().lock().unwrap();
    for (name, var) in data.iter() {
        let m = var
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(m <= 0.01 + 1e-7, "{name}: {m}");
    }
}

#[test]
fn acgan_needs_labels() {
    let mut model = build(&small("acgan"), &setup(16));
    let err = model.train_on(&blobs(2, 1, 16), None).unwrap_err();
    assert!(err.to_string().contains("labelled"), "{err}");
}

#[test]
fn dcgan_on_blobs_moves_the_critic() {
    // A sanity check that training does something: after some steps D separates real
    // blobs from the generator's output better than at the start.
    let mut model = build(&small("dcgan"), &setup(16));
    let x = blobs(8, 1, 16);
    let before = model.evaluate(&x).unwrap().1;
    let mut last = None;
    for _ in 0..20 {
        last = Some(model.train_on(&x, None).unwrap());
    }
    let after = model.evaluate(&x).unwrap().1;
    assert!(after.is_finite() && before.is_finite());
    assert!(last.unwrap().d_loss < 2.0 * std::f64::consts::LN_2 + 0.5);
}

#[test]
fn save_and_load_restore_both_networks_and_noise() {
    for variant in ["dcgan", "sngan"] {
        let x = blobs(4, 1, 16);
        let mut a = build(&small(variant), &setup(16));
        a.train_on(&x, None).unwrap();
        let dir = tempfile::tempdir().unwrap();
        a.save_all(dir.path()).unwrap();
        let mut b = build(&small(variant), &setup(16));
        assert!(b.load_all(dir.path()).unwrap());
        assert_eq!(a.train_on(&x, None).unwrap(), b.train_on(&x, None).unwrap());
        assert_eq!(
            batch::to_vec(&a.fixed_grid().unwrap()).unwrap(),
            batch::to_vec(&b.fixed_grid().unwrap()).unwrap()
        );
    }
}

#[test]
fn bad_params_and_sizes_are_named() {
    let cfg: GanConfig = params::parse("{\"variant\": \"wgan_gp\", \"z_dim\": 32}").unwrap();
    assert_eq!(cfg.variant().unwrap(), Variant::WganGp);
    assert_eq!(cfg.z_dim, 32);
    let err = params::parse::<GanConfig>("{\"zdim\": 16}").unwrap_err();
    assert!(err.contains("zdim"), "{err}");
    let check = |cfg: GanConfig, s: Setup| cfg.check(&s).unwrap_err();
    let err = check(small("began"), setup(32));
    assert!(err.contains("\"began\""), "{err}");
    let err = check(small("dcgan"), setup(48));
    assert!(err.contains("power of two"), "{err}");
    let err = check(
        GanConfig {
            betas: vec![0.5],
            ..small("dcgan")
        },
        setup(32),
    );
    assert!(err.contains("betas"), "{err}");
    let err = check(
        small("dcgan"),
        Setup {
            channels: 2,
            ..setup(32)
        },
    );
    assert!(err.contains("2 channels"), "{err}");
    let d = Gan::describe();
    assert_eq!(
        params::parse::<GanConfig>(&d.default_params).unwrap(),
        GanConfig::default()
    );
}

//! The CPU twins against plain candle ops and against gantry-image-metrics (piq's
//! definitions); the same functions run the CUDA kernels on a GPU.

use candle_core::{D, DType, Device, Tensor};
use gantry_image_metrics::{self as iq, ImageBatch};

use super::*;

fn rand(shape: &[usize], seed: u64) -> Tensor {
    // A fixed LCG, not candle's RNG: the values are the same on every run.
    let n: usize = shape.iter().product();
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let v: Vec<f32> = (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// `noise * wn + a * wa`: an image correlated with `a`.
fn mix(noise: &Tensor, a: &Tensor, wn: f64, wa: f64) -> Tensor {
    (noise.affine(wn, 0.0).unwrap() + a.affine(wa, 0.0).unwrap()).unwrap()
}

fn v1(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().to_vec1().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        let scale = x.abs().max(y.abs()).max(1.0);
        assert!(
            (x - y).abs() <= tol * scale,
            "{what}[{i}]: {x} vs {y} (tol {tol})"
        );
    }
}

fn batch<'a>(data: &'a [f32], t: &Tensor) -> ImageBatch<'a> {
    let (n, c, h, w) = t.dims4().unwrap();
    ImageBatch { data, n, c, h, w }
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn per_image_sse_matches_candle_ops_on_odd_shapes() {
    // 3 x 17 x 13 = 663 elements: not a multiple of the kernel's block.
    for shape in [[5, 3, 17, 13], [1, 1, 64, 64], [3, 1, 1, 1]] {
        let a = rand(&shape, 1);
        let b = rand(&shape, 2);
        let want = (&a - &b)
            .unwrap()
            .sqr()
            .unwrap()
            .flatten_from(1)
            .unwrap()
            .sum(D::Minus1)
            .unwrap();
        close(
            &v1(&per_image_sse(&a, &b).unwrap()),
            &v1(&want),
            1e-5,
            "sse",
        );
    }
}

#[test]
fn per_image_mse_is_the_reconstruction_loss_per_image() {
    let a = rand(&[4, 1, 28, 28], 3);
    let b = rand(&[4, 1, 28, 28], 4);
    let want = crate::loss::per_image(crate::loss::Reconstruction::Mse, &a, &b).unwrap();
    close(
        &v1(&per_image_mse(&a, &b).unwrap()),
        &v1(&want),
        1e-5,
        "mse",
    );
}

#[test]
fn an_empty_batch_gives_no_scores() {
    let a = Tensor::zeros((0, 1, 8, 8), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(per_image_sse(&a, &a).unwrap().dims(), &[0]);
    assert_eq!(per_image_mse(&a, &a).unwrap().dims(), &[0]);
}

#[test]
fn per_image_psnr_matches_image_metrics() {
    let a = rand(&[3, 3, 20, 24], 5);
    let b = mix(&rand(&[3, 3, 20, 24], 6), &a, 0.2, 0.8);
    let (fa, fb) = (flat(&a), flat(&b));
    let want: Vec<f32> = iq::psnr_per_image(&batch(&fa, &a), &batch(&fb, &b))
        .unwrap()
        .into_iter()
        .map(|v| v as f32)
        .collect();
    close(&v1(&per_image_psnr(&a, &b).unwrap()), &want, 1e-5, "psnr");
    // Identical images: piq's 80 dB cap.
    close(
        &v1(&per_image_psnr(&a, &a).unwrap()),
        &[80.0; 3],
        1e-5,
        "psnr cap",
    );
}

#[test]
fn per_image_ssim_matches_image_metrics_on_grey_colour_and_odd_sizes() {
    for (shape, seed) in [
        ([4, 1, 64, 64], 7),
        ([2, 3, 27, 43], 9),
        ([1, 1, 11, 11], 11),
    ] {
        let a = rand(&shape, seed);
        // Correlated, so SSIM is far from 0 and 1 and every term matters.
        let b = mix(&rand(&shape, seed + 1), &a, 0.3, 0.7);
        let (fa, fb) = (flat(&a), flat(&b));
        let want: Vec<f32> = iq::ssim_per_image(&batch(&fa, &a), &batch(&fb, &b))
            .unwrap()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        close(
            &v1(&per_image_ssim(&a, &b).unwrap()),
            &want,
            2e-5,
            &format!("ssim {shape:?}"),
        );
    }
}

#[test]
fn per_image_ssim_downsamples_large_images_as_piq_does() {
    // 400 px: round(400 / 256) = 2, so both sides average-pool by 2 first.
    let a = rand(&[1, 1, 400, 400], 13);
    let b = mix(&rand(&[1, 1, 400, 400], 14), &a, 0.5, 0.5);
    let (fa, fb) = (flat(&a), flat(&b));
    let want = iq::ssim_per_image(&batch(&fa, &a), &batch(&fb, &b)).unwrap()[0] as f32;
    close(
        &v1(&per_image_ssim(&a, &b).unwrap()),
        &[want],
        2e-5,
        "ssim 400px",
    );
}

/// SSIM from candle's own conv2d with the 11x11 window, the way a PyTorch user writes it.
fn ssim_by_candle_ops(a: &Tensor, b: &Tensor) -> Vec<f32> {
    let (n, c, h, w) = a.dims4().unwrap();
    let g = cpu::gaussian();
    let win: Vec<f32> = g
        .iter()
        .flat_map(|gi| g.iter().map(move |gj| gi * gj))
        .collect();
    let win = Tensor::from_vec(win, (1, 1, 11, 11), &Device::Cpu).unwrap();
    let planes = |t: &Tensor| t.reshape((n * c, 1, h, w)).unwrap();
    let blur = |t: &Tensor| t.conv2d(&win, 0, 1, 1, 1).unwrap();
    let (x, y) = (planes(a), planes(b));
    let (mx, my) = (blur(&x), blur(&y));
    let sxx = (blur(&x.sqr().unwrap()) - mx.sqr().unwrap()).unwrap();
    let syy = (blur(&y.sqr().unwrap()) - my.sqr().unwrap()).unwrap();
    let sxy = (blur(&(&x * &y).unwrap()) - (&mx * &my).unwrap()).unwrap();
    let (c1, c2) = (
        gantry_kernels::SSIM_C1 as f64,
        gantry_kernels::SSIM_C2 as f64,
    );
    let num = (((&mx * &my).unwrap() * 2.0).unwrap() + c1)
        .unwrap()
        .mul(&((sxy * 2.0).unwrap() + c2).unwrap())
        .unwrap();
    let den = ((mx.sqr().unwrap() + my.sqr().unwrap()).unwrap() + c1)
        .unwrap()
        .mul(&((sxx + syy).unwrap() + c2).unwrap())
        .unwrap();
    let map = (num / den).unwrap();
    v1(&map.reshape((n, ())).unwrap().mean(1).unwrap())
}

#[test]
fn the_ssim_twin_matches_candle_conv2d() {
    let a = rand(&[3, 2, 30, 37], 15);
    let b = mix(&rand(&[3, 2, 30, 37], 16), &a, 0.4, 0.6);
    close(
        &v1(&per_image_ssim(&a, &b).unwrap()),
        &ssim_by_candle_ops(&a, &b),
        2e-5,
        "ssim",
    );
}

#[test]
fn identical_images_have_ssim_one() {
    let a = rand(&[2, 1, 32, 32], 17);
    close(
        &v1(&per_image_ssim(&a, &a).unwrap()),
        &[1.0, 1.0],
        1e-6,
        "ssim(a, a)",
    );
}

#[test]
fn ssim_refuses_images_smaller_than_its_window_naming_the_size() {
    let a = rand(&[1, 1, 10, 32], 18);
    let err = per_image_ssim(&a, &a).unwrap_err().to_string();
    assert!(err.contains("10x32"), "{err}");
    let b = rand(&[1, 1, 12, 32], 18);
    let err = per_image_ssim(&b, &rand(&[1, 1, 12, 33], 18))
        .unwrap_err()
        .to_string();
    assert!(err.contains("differ"), "{err}");
}

#[test]
fn histogram_bins_edges_nan_and_infinities_as_documented() {
    let v = [
        -1.0f32,
        0.0,
        0.24,
        0.25,
        0.5,
        0.999,
        1.0,
        2.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
    ];
    let t = Tensor::new(&v[..], &Device::Cpu).unwrap();
    let counts: Vec<u32> = score_histogram(&t, 0.0, 1.0, 4).unwrap().to_vec1().unwrap();
    // bin 0: -1, 0, 0.24, -inf; bin 1: 0.25; bin 2: 0.5; bin 3: 0.999, 1, 2, +inf. NaN: none.
    assert_eq!(counts, vec![4, 1, 1, 4]);
}

#[test]
fn histogram_matches_candle_ops_binning() {
    let v = rand(&[5000], 19).affine(3.0, -1.0).unwrap();
    let (lo, hi, bins) = (-0.5f32, 1.5f32, 37usize);
    let counts: Vec<u32> = score_histogram(&v, lo, hi, bins)
        .unwrap()
        .to_vec1()
        .unwrap();
    let scale = bins as f64 / (hi - lo) as f64;
    let idx = ((&v - lo as f64).unwrap() * scale)
        .unwrap()
        .floor()
        .unwrap()
        .clamp(0f32, (bins - 1) as f32)
        .unwrap();
    let idx: Vec<f32> = idx.to_vec1().unwrap();
    let mut want = vec![0u32; bins];
    for i in idx {
        want[i as usize] += 1;
    }
    assert_eq!(counts, want);
    assert_eq!(counts.iter().sum::<u32>(), 5000);
}

#[test]
fn histogram_refuses_bad_ranges_and_bin_counts() {
    let t = Tensor::new(&[0.5f32], &Device::Cpu).unwrap();
    for (lo, hi) in [
        (1.0, 1.0),
        (2.0, 1.0),
        (0.0, f32::INFINITY),
        (f32::NAN, 1.0),
    ] {
        let err = score_histogram(&t, lo, hi, 8).unwrap_err().to_string();
        assert!(err.contains("hi > lo"), "{err}");
    }
    assert!(
        score_histogram(&t, 0.0, 1.0, 0)
            .unwrap_err()
            .to_string()
            .contains("bin")
    );
    let err = score_histogram(&t, 0.0, 1.0, 100_000)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at most 12288 bins"), "{err}");
}

#[test]
fn twins_accept_non_contiguous_and_f64_inputs() {
    let a = rand(&[2, 1, 16, 16], 20).transpose(2, 3).unwrap();
    let b = rand(&[2, 1, 16, 16], 21).to_dtype(DType::F64).unwrap();
    let want = (a.to_dtype(DType::F64).unwrap() - &b)
        .unwrap()
        .sqr()
        .unwrap()
        .flatten_from(1)
        .unwrap()
        .sum(1)
        .unwrap();
    close(
        &v1(&per_image_sse(&a, &b.to_dtype(DType::F32).unwrap()).unwrap()),
        &v1(&want),
        1e-5,
        "sse",
    );
    assert_eq!(per_image_ssim(&a, &a).unwrap().dims(), &[2]);
}

#[test]
fn empty_batches_give_empty_results_without_a_kernel() {
    let a = Tensor::zeros((0, 1, 16, 16), DType::F32, &Device::Cpu).unwrap();
    assert_eq!(per_image_ssim(&a, &a).unwrap().dims(), &[0]);
    assert_eq!(per_image_psnr(&a, &a).unwrap().dims(), &[0]);
    let none = Tensor::zeros(0, DType::F32, &Device::Cpu).unwrap();
    let counts: Vec<u32> = score_histogram(&none, 0.0, 1.0, 3)
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(counts, vec![0, 0, 0]);
}

/// On a GPU: every kernel against its CPU twin, on shapes that exercise the tails (rows
/// and tiles not a multiple of the block), long rows (many strided passes), and more SSIM
/// planes than grid.y/z could hold. Skipped, saying so, where no GPU answers (CI builds it
/// with `--features cuda` but has no GPU). Run with
/// `cargo test --release -p gantry-kit --features cuda fused`.
#[cfg(feature = "cuda")]
#[test]
fn cuda_kernels_match_their_cpu_twins() {
    let gpu = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("skipped: no usable GPU: {e}");
            return;
        }
    };
    let on_gpu = |t: &Tensor| t.to_device(&gpu).unwrap();
    let back = |t: Tensor| v1(&t.to_device(&Device::Cpu).unwrap());

    for shape in [[7, 3, 37, 45], [1000, 1, 5, 7], [2, 1, 250, 400]] {
        let a = rand(&shape, 31);
        let b = mix(&rand(&shape, 32), &a, 0.3, 0.7);
        let (ga, gb) = (on_gpu(&a), on_gpu(&b));
        let what = format!("{shape:?}");
        close(
            &back(per_image_sse(&ga, &gb).unwrap()),
            &v1(&per_image_sse(&a, &b).unwrap()),
            1e-5,
            &format!("sse {what}"),
        );
        close(
            &back(per_image_psnr(&ga, &gb).unwrap()),
            &v1(&per_image_psnr(&a, &b).unwrap()),
            1e-5,
            &format!("psnr {what}"),
        );
        if shape[2] >= 11 && shape[3] >= 11 {
            close(
                &back(per_image_ssim(&ga, &gb).unwrap()),
                &v1(&per_image_ssim(&a, &b).unwrap()),
                1e-5,
                &format!("ssim {what}"),
            );
        }
    }
    // 70 000 planes of 11x11: more blocks than grid.y or grid.z could number.
    let a = rand(&[70_000, 1, 11, 11], 33);
    let b = mix(&rand(&[70_000, 1, 11, 11], 34), &a, 0.5, 0.5);
    close(
        &back(per_image_ssim(&on_gpu(&a), &on_gpu(&b)).unwrap()),
        &v1(&per_image_ssim(&a, &b).unwrap()),
        1e-5,
        "ssim 70k planes",
    );
    // The histogram bins identically, bit for bit, including NaN and the edges.
    let mut v: Vec<f32> = rand(&[300_001], 35)
        .affine(3.0, -1.0)
        .unwrap()
        .to_vec1()
        .unwrap();
    v.extend([f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.5, 1.5]);
    let t = Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
    for bins in [1, 37, 12_288] {
        let cpu: Vec<u32> = score_histogram(&t, -0.5, 1.5, bins)
            .unwrap()
            .to_vec1()
            .unwrap();
        let cuda: Vec<u32> = score_histogram(&on_gpu(&t), -0.5, 1.5, bins)
            .unwrap()
            .to_device(&Device::Cpu)
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(cuda, cpu, "{bins} bins");
    }
}

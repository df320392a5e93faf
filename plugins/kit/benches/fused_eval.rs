//! The fused evaluation ops' CPU twins against what evaluation used before them, on one
//! evaluation batch (256 x 1 x 64 x 64): per-image MSE against candle's composition
//! (`loss::per_image`), SSIM and PSNR against `gantry-image-metrics` on the host (f64, which
//! also needs the batch copied into a Vec). Medians of interleaved rounds, as ratios.
//! `RAYON_NUM_THREADS=2 cargo bench -p gantry-kit --bench fused_eval`

use std::time::Instant;

use candle_core::{Device, Tensor};
use gantry_image_metrics::{self as iq, ImageBatch};
use gantry_kit::fused;
use gantry_kit::loss::{self, Reconstruction};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time(f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let (n, c, h, w) = (256, 1, 64, 64);
    let x = Tensor::rand(0f32, 1.0, (n, c, h, w), &Device::Cpu).unwrap();
    let y = ((&x * 0.8).unwrap() + Tensor::rand(0f32, 0.2, (n, c, h, w), &Device::Cpu).unwrap())
        .unwrap();
    let host = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    // What evaluation did before: copy both batches to the host, then a per-image metric.
    type HostMetric = fn(&ImageBatch, &ImageBatch) -> Result<Vec<f64>, String>;
    let on_host = |metric: HostMetric| {
        let (a, b) = (host(&x), host(&y));
        let (ba, bb) = (
            ImageBatch {
                data: &a,
                n,
                c,
                h,
                w,
            },
            ImageBatch {
                data: &b,
                n,
                c,
                h,
                w,
            },
        );
        metric(&ba, &bb).unwrap();
    };
    type Case<'a> = (&'static str, Box<dyn FnMut() + 'a>, Box<dyn FnMut() + 'a>);
    let mut cases: Vec<Case> = vec![
        (
            "per-image MSE",
            Box::new(|| {
                loss::per_image(Reconstruction::Mse, &x, &y).unwrap();
            }),
            Box::new(|| {
                fused::per_image_mse(&x, &y).unwrap();
            }),
        ),
        (
            "PSNR",
            Box::new(|| on_host(iq::psnr_per_image)),
            Box::new(|| {
                fused::per_image_psnr(&x, &y).unwrap();
            }),
        ),
        (
            "SSIM",
            Box::new(|| on_host(iq::ssim_per_image)),
            Box::new(|| {
                fused::per_image_ssim(&x, &y).unwrap();
            }),
        ),
    ];
    println!("| op (256x1x64x64) | before, ms | fused twin, ms | speed-up |");
    println!("|---|---|---|---|");
    for (name, before, after) in cases.iter_mut() {
        let (mut tb, mut ta) = (Vec::new(), Vec::new());
        for round in 0..9 {
            let (b, a) = (time(before.as_mut()), time(after.as_mut()));
            if round > 0 {
                tb.push(b);
                ta.push(a);
            }
        }
        let (b, a) = (median(tb), median(ta));
        println!(
            "| {name} | {:.2} | {:.2} | {:.1}x |",
            b * 1e3,
            a * 1e3,
            b / a
        );
    }
}

//! The fp32 GEMM ceiling through the gemm path candle uses on the CPU (one large
//! `matmul`), printed as GFLOP/s: the limit every convolution of the kit runs against.
//! Then the three operand layouts a convolution's GEMMs use (forward `W x cols`, weight
//! gradient `G x cols^T`, input gradient `W^T x G`) at one conv-ae layer's shape, since
//! the gemm crate's speed depends on which operand it must repack.
//! `RAYON_NUM_THREADS=2 cargo bench -p gantry-kit --bench gemm`

use std::time::Instant;

use candle_core::{Device, Tensor};

/// Median GFLOP/s of `f`, which does `flops` per call.
fn rate(flops: f64, f: impl Fn()) -> f64 {
    f();
    let mut runs: Vec<f64> = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            flops / t.elapsed().as_secs_f64() / 1e9
        })
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

fn main() {
    ceiling();
    // conv-ae's GEMM layers at 64x64, batch 32: (Cout, K = Cin*9 + 1, images per chunk
    // x Ho*Wo), chunked as the kit's conv2d chunks them.
    for (m, k, n) in [
        (64, 289, 3 * 1024),
        (128, 577, 7 * 256),
        (64, 1153, 3 * 256),
        (32, 577, 1024),
    ] {
        layouts(m, k, n);
    }
}

fn layouts(m: usize, k: usize, n: usize) {
    let rand = |r, c| Tensor::rand(0f32, 1.0, (r, c), &Device::Cpu).unwrap();
    let (w, cols, g) = (rand(m, k), rand(k, n), rand(m, n));
    let flops = 2.0 * (m * k * n) as f64;
    let layouts = [
        (
            "forward W x cols",
            rate(flops, || drop(w.matmul(&cols).unwrap())),
        ),
        (
            "wgrad G x cols^T",
            rate(flops, || drop(g.matmul(&cols.t().unwrap()).unwrap())),
        ),
        (
            "wgrad cols x G^T",
            rate(flops, || drop(cols.matmul(&g.t().unwrap()).unwrap())),
        ),
        (
            "igrad W^T x G",
            rate(flops, || drop(w.t().unwrap().matmul(&g).unwrap())),
        ),
    ];
    let row: Vec<String> = layouts
        .iter()
        .map(|(l, r)| format!("{l} {r:5.0}"))
        .collect();
    println!(
        "conv GEMM M {m:4} K {k:5} N {n:5} GFLOP/s: {}",
        row.join(" | ")
    );
}

fn ceiling() {
    let n = 2048;
    let a = Tensor::rand(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
    let b = Tensor::rand(0f32, 1.0, (n, n), &Device::Cpu).unwrap();
    for _ in 0..2 {
        a.matmul(&b).unwrap();
    }
    let reps = 5;
    let start = Instant::now();
    for _ in 0..reps {
        a.matmul(&b).unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let threads = std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "all".into());
    println!(
        "candle gemm sgemm {n}^3, threads {threads}: {:.1} GFLOP/s",
        2.0 * (n as f64).powi(3) * reps as f64 / secs / 1e9
    );
}

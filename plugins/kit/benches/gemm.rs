//! The fp32 GEMM ceiling through the gemm path candle uses on the CPU (one large
//! `matmul`), printed as GFLOP/s: the limit every convolution of the kit runs against.
//! `RAYON_NUM_THREADS=2 cargo bench -p gantry-kit --bench gemm`

use std::time::Instant;

use candle_core::{Device, Tensor};

fn main() {
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

//! Forward and backward time of each convolution of the reference conv-ae (64x64 gray,
//! batch 32) through the kit's `conv2d`, with the forward's achieved GFLOP/s: where a
//! training step's convolution time goes, layer by layer. Inputs are variables here, so
//! every layer also computes its input gradient (in the model the first layer does not).
//! `RAYON_NUM_THREADS=2 cargo bench -p gantry-kit --bench conv_layers`

use std::time::Instant;

use candle_core::{Device, Tensor, Var};

fn layer(label: &str, n: usize, cin: usize, cout: usize, hw: usize) {
    let rand = |shape: &[usize]| Tensor::rand(0f32, 1.0, shape, &Device::Cpu).unwrap();
    let x = Var::from_tensor(&rand(&[n, cin, hw, hw])).unwrap();
    let w = Var::from_tensor(&rand(&[cout, cin, 3, 3])).unwrap();
    let b = Var::from_tensor(&rand(&[cout])).unwrap();
    let (warmup, reps) = (2, 6);
    let (mut fwd, mut bwd) = (0.0, 0.0);
    for i in 0..warmup + reps {
        let t = Instant::now();
        let y = gantry_kit::ops::conv::conv2d(&x, &w, Some(&b), 1).unwrap();
        let s = y.sum_all().unwrap();
        let t1 = t.elapsed().as_secs_f64();
        let _grads = s.backward().unwrap();
        let t2 = t.elapsed().as_secs_f64();
        if i >= warmup {
            fwd += t1 / reps as f64;
            bwd += (t2 - t1) / reps as f64;
        }
    }
    let flops = 2.0 * (n * cin * cout * 9 * hw * hw) as f64;
    println!(
        "{label:<20} fwd {:6.1} ms  bwd {:6.1} ms  fwd {:5.0} GFLOP/s  bwd {:5.0} GFLOP/s",
        fwd * 1e3,
        bwd * 1e3,
        flops / fwd / 1e9,
        2.0 * flops / bwd / 1e9
    );
}

fn main() {
    layer("enc0 1->32 @64", 32, 1, 32, 64);
    layer("enc1 32->64 @32", 32, 32, 64, 32);
    layer("enc2 64->128 @16", 32, 64, 128, 16);
    layer("dec0 128->64 @16", 32, 128, 64, 16);
    layer("dec1 64->32 @32", 32, 64, 32, 32);
    layer("out 32->1 @64", 32, 32, 1, 64);
}

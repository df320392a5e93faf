//! Adam, written here rather than taken from candle-nn so its state (moments and step) can
//! be checkpointed and restored exactly, and so later work can fuse its per-parameter ops.
//!
//! The update is PyTorch's `torch.optim.Adam` (no weight decay, no amsgrad):
//! `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;`
//! `p -= lr / (1-b1^t) * m / (sqrt(v) / sqrt(1-b2^t) + eps)`.
//!
//! On the CPU the update is fused: two in-place passes per parameter (moments, then the
//! parameter) instead of a dozen allocating tensor ops. Elsewhere (CUDA) it is composed of
//! candle ops, which is also the oracle the fused path is tested against.

use std::collections::HashMap;

use candle_core::{
    CpuStorage, DType, Device, InplaceOp2, InplaceOp3, Layout, Result, Tensor, Var,
    backprop::GradStore,
};
use candle_nn::VarMap;
use rayon::prelude::*;

use crate::ops::simd_kernel;

/// Adam hyper-parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    /// `m` and `v` are buffers of their own that the fused update may write in place.
    private: bool,
}

/// Adam over every variable of a `VarMap`, in sorted name order.
pub struct Adam {
    config: AdamConfig,
    slots: Vec<Slot>,
    step: u64,
    /// Use the fused CPU update (off only to test it against the composed one).
    fused: bool,
}

impl Adam {
    pub fn new(varmap: &VarMap, config: AdamConfig) -> Result<Adam> {
        let data = varmap.data().lock().expect("varmap lock");
        let mut names: Vec<&String> = data.keys().collect();
        names.sort();
        let slots = names
            .into_iter()
            .map(|name| {
                let var = data[name].clone();
                let zeros = var.zeros_like()?;
                Ok(Slot {
                    name: name.clone(),
                    m: zeros.clone(),
                    v: zeros,
                    var,
                    private: false,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Adam {
            config,
            slots,
            step: 0,
            fused: true,
        })
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    pub fn learning_rate(&self) -> f64 {
        self.config.lr
    }

    /// Back-propagates `loss` and applies one update.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Applies one update from precomputed gradients. Variables without a gradient (not
    /// reached by the loss) keep their value and moments.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamConfig {
            lr,
            beta1,
            beta2,
            eps,
        } = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            if slot.var.device().is_cpu() && slot.var.dtype() == DType::F32 && self.fused {
                fused_step(slot, g, &self.config, bias1, bias2_sqrt)?;
                continue;
            }
            slot.m = ((&slot.m * beta1)? + (g * (1.0 - beta1))?)?;
            slot.v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?;
            let denom = ((slot.v.sqrt()? / bias2_sqrt)? + eps)?;
            let update = ((&slot.m / denom)? * (lr / bias1))?;
            slot.var.set(&slot.var.as_tensor().sub(&update)?)?;
        }
        Ok(())
    }

    /// A snapshot of the optimiser state as named tensors: `m.<var>`, `v.<var>` and `step`
    /// (copies: the live moments are updated in place).
    pub fn state(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for slot in &self.slots {
            out.insert(format!("m.{}", slot.name), slot.m.copy()?);
            out.insert(format!("v.{}", slot.name), slot.v.copy()?);
        }
        out.insert(
            "step".into(),
            Tensor::new(&[self.step as i64], &Device::Cpu)?,
        );
        Ok(out)
    }

    /// Restores what [`Adam::state`] returned. Every moment must be present with the shape
    /// of its variable.
    pub fn load_state(&mut self, state: &HashMap<String, Tensor>) -> Result<()> {
        for slot in &mut self.slots {
            for (key, target) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                let name = format!("{key}.{}", slot.name);
                let t = state.get(&name).ok_or_else(|| {
                    candle_core::Error::Msg(format!("optimiser state lacks {name}"))
                })?;
                if t.dims() != slot.var.dims() {
                    candle_core::bail!(
                        "optimiser state {name} has shape {:?}, the model has {:?}",
                        t.dims(),
                        slot.var.dims()
                    );
                }
                *target = t.to_device(slot.var.device())?.to_dtype(slot.var.dtype())?;
            }
            slot.private = false;
        }
        let step = state
            .get("step")
            .ok_or_else(|| candle_core::Error::Msg("optimiser state lacks step".into()))?;
        self.step = step.to_dtype(DType::I64)?.to_vec1::<i64>()?[0].max(0) as u64;
        Ok(())
    }
}

/// One fused update of a slot. The moments are updated in place when they are private
/// contiguous buffers; after a checkpoint load or on the first step they are copied once.
fn fused_step(
    slot: &mut Slot,
    g: &Tensor,
    c: &AdamConfig,
    bias1: f64,
    bias2_sqrt: f64,
) -> Result<()> {
    let g = g.contiguous()?;
    // `zeros_like` and loaded moments may share or alias storage; give each slot its own.
    if !slot.private {
        slot.m = slot.m.copy()?;
        slot.v = slot.v.copy()?;
        slot.private = true;
    }
    slot.m.inplace_op2(
        &g,
        &Moment {
            beta: c.beta1,
            square: false,
        },
    )?;
    slot.v.inplace_op2(
        &g,
        &Moment {
            beta: c.beta2,
            square: true,
        },
    )?;
    slot.var.as_tensor().inplace_op3(
        &slot.m,
        &slot.v,
        &Apply {
            step_size: (c.lr / bias1) as f32,
            bias2_sqrt: bias2_sqrt as f32,
            eps: c.eps as f32,
        },
    )
}

/// Contiguous f32 data of a storage, for the in-place kernels.
fn data<'a>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{op}: needs contiguous f32"),
    }
}

fn data_mut<'a>(s: &'a mut CpuStorage, l: &Layout, op: &str) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{op}: needs contiguous f32"),
    }
}

/// Elements per parallel chunk: below this, threads cost more than they save.
const CHUNK: usize = 1 << 14;

/// `m = beta m + (1-beta) g` (or with `g^2`), in place.
struct Moment {
    beta: f64,
    square: bool,
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "gantry-adam-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        g: &CpuStorage,
        g_l: &Layout,
    ) -> Result<()> {
        let m = data_mut(dst, dst_l, InplaceOp2::name(self))?;
        let g = data(g, g_l, InplaceOp2::name(self))?;
        let (b, a) = (self.beta as f32, (1.0 - self.beta) as f32);
        let square = self.square;
        m.par_chunks_mut(CHUNK)
            .zip(g.par_chunks(CHUNK))
            .for_each(|(m, g)| moment_chunk(m, g, b, a, square));
        Ok(())
    }
}

/// `p -= step_size * m / (sqrt(v) / bias2_sqrt + eps)`, in place.
struct Apply {
    step_size: f32,
    bias2_sqrt: f32,
    eps: f32,
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "gantry-adam-apply"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        m_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> Result<()> {
        let name = InplaceOp3::name(self);
        let p = data_mut(dst, dst_l, name)?;
        let m = data(m, m_l, name)?;
        let v = data(v, v_l, name)?;
        let (s, b2, eps) = (self.step_size, self.bias2_sqrt, self.eps);
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| apply_chunk(p, m, v, s, b2, eps));
        Ok(())
    }
}

simd_kernel! {
    /// `m = b m + a g` (or `a g^2`).
    fn moment_chunk(m: &mut [f32], g: &[f32], b: f32, a: f32, square: bool) {
        for (m, &g) in m.iter_mut().zip(g) {
            *m = b * *m + a * if square { g * g } else { g };
        }
    }
}

simd_kernel! {
    /// `p -= s m / (sqrt(v) / b2 + eps)`.
    fn apply_chunk(p: &mut [f32], m: &[f32], v: &[f32], s: f32, b2: f32, eps: f32) {
        for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
            *p -= s * m / (v.sqrt() / b2 + eps);
        }
    }
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::VarBuilder;

    use super::*;

    /// Two Adam steps on f(p) = sum(p^2) from p = [1, -2], against values worked by hand
    /// with PyTorch's formula: step 1 moves each coordinate by lr * sign(g).
    #[test]
    fn matches_pytorch_adam_on_a_quadratic() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let p = vb
            .get_with_hints(2, "p", candle_nn::Init::Const(0.0))
            .unwrap();
        varmap.data().lock().unwrap()["p"]
            .set(&Tensor::new(&[1.0f32, -2.0], &Device::Cpu).unwrap())
            .unwrap();
        let mut adam = Adam::new(
            &varmap,
            AdamConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..2 {
            let loss = p.sqr().unwrap().sum_all().unwrap();
            adam.backward_step(&loss).unwrap();
        }
        let got: Vec<f32> = p.to_vec1().unwrap();
        // Step 1: g = [2, -4] -> p = [0.9, -1.9]. Step 2: g = [1.8, -3.8];
        // m = 0.9 m1 + 0.1 g, v likewise; mhat/sqrt(vhat) computed below.
        let expect = |p0: f64, g1: f64| {
            let p1 = p0 - 0.1 * g1.signum();
            let g2 = 2.0 * p1;
            let m = 0.9 * 0.1 * g1 + 0.1 * g2;
            let v = 0.999 * 0.001 * g1 * g1 + 0.001 * g2 * g2;
            let mhat = m / (1.0 - 0.81);
            let vhat = v / (1.0 - 0.999f64.powi(2));
            p1 - 0.1 * mhat / (vhat.sqrt() + 1e-8)
        };
        assert!((got[0] as f64 - expect(1.0, 2.0)).abs() < 1e-5, "{got:?}");
        assert!((got[1] as f64 - expect(-2.0, -4.0)).abs() < 1e-5, "{got:?}");
    }

    /// The fused CPU update equals the composed one over several steps.
    #[test]
    fn fused_update_matches_composed_ops() {
        let run = |fused: bool| {
            let varmap = VarMap::new();
            let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
            let p = vb
                .get_with_hints(
                    (40, 50),
                    "p",
                    candle_nn::Init::Randn {
                        mean: 0.0,
                        stdev: 1.0,
                    },
                )
                .unwrap();
            varmap.data().lock().unwrap()["p"]
                .set(
                    &Tensor::arange(0f32, 2000.0, &Device::Cpu)
                        .unwrap()
                        .reshape((40, 50))
                        .unwrap()
                        .affine(1e-3, -1.0)
                        .unwrap(),
                )
                .unwrap();
            let mut adam = Adam::new(&varmap, AdamConfig::default()).unwrap();
            adam.fused = fused;
            for _ in 0..5 {
                let loss = (p.sqr().unwrap().sum_all().unwrap()
                    + p.sin().unwrap().sum_all().unwrap())
                .unwrap();
                adam.backward_step(&loss).unwrap();
            }
            let values: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
            let m: Vec<f32> = adam.state().unwrap()["m.p"]
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            (values, m)
        };
        let (a, am) = run(true);
        let (b, bm) = run(false);
        let diff = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        let mdiff = am
            .iter()
            .zip(&bm)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(
            diff < 1e-5 && mdiff < 1e-5,
            "params differ by {diff}, moments by {mdiff}"
        );
    }

    #[test]
    fn state_round_trips() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let p = vb
            .get_with_hints(3, "p", candle_nn::Init::Const(1.0))
            .unwrap();
        let mut adam = Adam::new(&varmap, AdamConfig::default()).unwrap();
        adam.backward_step(&p.sqr().unwrap().sum_all().unwrap())
            .unwrap();
        let state = adam.state().unwrap();
        let mut other = Adam::new(&varmap, AdamConfig::default()).unwrap();
        other.load_state(&state).unwrap();
        assert_eq!(other.steps(), 1);
        let a: Vec<f32> = adam.state().unwrap()["m.p"].to_vec1().unwrap();
        let b: Vec<f32> = other.state().unwrap()["m.p"].to_vec1().unwrap();
        assert_eq!(a, b);
    }
}

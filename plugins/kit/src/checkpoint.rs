//! Checkpoint files inside a directory the host provides: `model.safetensors` (weights,
//! named as the model's `VarBuilder` paths, readable by PyTorch's safetensors loader) and
//! `optimizer.safetensors` (Adam moments and step). The host makes the directory swap
//! atomic; this module only writes and reads the files.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Result, Tensor};
use candle_nn::VarMap;

use crate::optim::Adam;

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Writes weights and optimiser state into `dir`.
pub fn save(dir: &Path, varmap: &VarMap, optimizer: &Adam) -> Result<()> {
    let model = dir.join(MODEL_FILE);
    varmap
        .save(&model)
        .map_err(|e| e.context(format!("writing {}", model.display())))?;
    let opt = dir.join(OPTIMIZER_FILE);
    let state = optimizer.state()?;
    candle_core::safetensors::save(&state, &opt)
        .map_err(|e| e.context(format!("writing {}", opt.display())))?;
    Ok(())
}

/// Restores weights and optimiser state from `dir`. Every variable of the model must be in
/// the file with its shape; errors name the file.
pub fn load(dir: &Path, varmap: &VarMap, optimizer: &mut Adam) -> Result<()> {
    let model = dir.join(MODEL_FILE);
    let weights = read(&model)?;
    {
        let data = varmap.data().lock().expect("varmap lock");
        for (name, var) in data.iter() {
            let t = weights.get(name).ok_or_else(|| {
                candle_core::Error::Msg(format!("{}: no tensor named {name}", model.display()))
            })?;
            if t.dims() != var.dims() {
                candle_core::bail!(
                    "{}: {name} has shape {:?}, the model has {:?}",
                    model.display(),
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_device(var.device())?.to_dtype(var.dtype())?)?;
        }
    }
    let opt = dir.join(OPTIMIZER_FILE);
    let state = read(&opt)?;
    optimizer
        .load_state(&state)
        .map_err(|e| e.context(format!("reading {}", opt.display())))
}

fn read(path: &Path) -> Result<HashMap<String, Tensor>> {
    candle_core::safetensors::load(path, &candle_core::Device::Cpu)
        .map_err(|e| e.context(format!("reading {}", path.display())))
}

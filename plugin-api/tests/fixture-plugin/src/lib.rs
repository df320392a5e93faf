//! A tiny plugin for plugin-api's host tests. Its runtime misbehaviour is chosen by the
//! `mode` hyper-parameter (`ok`, `panic`, `nan`, `error`, and `diverge`: a NaN loss from
//! the fourth step of an instance whose learning rate is above 0.01, for the runner's
//! rollback); its header misbehaviour by a
//! cargo feature, one library per feature.
//!
//! The "model" is a single scale `w`, trained by gradient descent to reproduce its input,
//! so a good build shows a falling loss.

use std::path::Path;

use gantry_plugin_api::{
    Batch, Context, Description, ImageRef, InputConstraints, Level, Model, PluginError,
    PluginResult, Setup,
};

pub struct Fixture {
    mode: String,
    w: f64,
    lr: f64,
    steps: u64,
}

impl Model for Fixture {
    fn describe() -> Description {
        Description {
            summary: "test fixture".into(),
            families: vec!["fixture".into()],
            default_params: "{\"mode\": \"ok\"}".into(),
            losses: vec!["loss".into()],
            metrics: vec![],
            scores: vec!["err".into()],
            input: InputConstraints {
                channels: vec![1, 3],
                multiple_of: 1,
                min_size: 1,
            },
            name: None,
            version: None,
        }
    }

    fn create(
        params: &str,
        device: &str,
        setup: &Setup,
        ctx: &mut Context<'_>,
    ) -> PluginResult<Self> {
        let map: std::collections::BTreeMap<String, String> =
            ron::from_str(params).map_err(|e| PluginError::new(format!("params: {e}")))?;
        let mode = map.get("mode").cloned().unwrap_or_else(|| "ok".into());
        if mode == "panic-create" {
            panic!("fixture asked to panic in create");
        }
        ctx.info("device", if device == "auto" { "cpu" } else { device });
        ctx.log(Level::Info, &format!("fixture created in mode {mode}"));
        Ok(Fixture {
            mode,
            w: 0.0,
            lr: setup.learning_rate.unwrap_or(0.001),
            steps: 0,
        })
    }

    fn train_step(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        match self.mode.as_str() {
            "panic" => panic!("fixture asked to panic in train_step"),
            "nan" => {
                ctx.scalar("loss", f64::NAN);
                return Ok(());
            }
            "error" => return Err(PluginError::new("fixture asked to fail in train_step")),
            "diverge" if self.lr > 0.01 && self.steps >= 3 => {
                ctx.scalar("loss", f64::NAN);
                return Ok(());
            }
            _ => {}
        }
        self.steps += 1;
        // loss = mean((w x - x)^2), d/dw = mean(2 (w-1) x^2)
        let n = batch.images.len().max(1) as f64;
        let sq: f64 = batch
            .images
            .iter()
            .map(|&x| (x as f64) * (x as f64))
            .sum::<f64>()
            / n;
        let loss = (self.w - 1.0).powi(2) * sq;
        self.w -= 0.5 * 2.0 * (self.w - 1.0) * sq;
        ctx.scalar("loss", loss);
        Ok(())
    }

    fn eval(&mut self, batch: &Batch<'_>, ctx: &mut Context<'_>) -> PluginResult<()> {
        let per_image = batch.shape[1] * batch.shape[2] * batch.shape[3];
        let scores: Vec<f32> = batch
            .images
            .chunks(per_image.max(1))
            .map(|img| {
                img.iter()
                    .map(|&x| ((self.w as f32 - 1.0) * x).powi(2))
                    .sum::<f32>()
                    / per_image.max(1) as f32
            })
            .collect();
        ctx.scores("err", &scores);
        if batch.want_images {
            ctx.image(
                "input",
                ImageRef {
                    data: batch.images,
                    shape: batch.shape,
                    columns: 4,
                },
            );
        }
        Ok(())
    }

    fn save(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        std::fs::write(dir.join("w.txt"), self.w.to_string())?;
        Ok(())
    }

    fn load(&mut self, dir: &Path, _ctx: &mut Context<'_>) -> PluginResult<()> {
        self.w = std::fs::read_to_string(dir.join("w.txt"))?.trim().parse()?;
        Ok(())
    }
}

#[cfg(not(any(
    feature = "bad-magic",
    feature = "future-major",
    feature = "future-major-symbol",
    feature = "small-vtable",
    feature = "missing-function"
)))]
gantry_plugin_api::export_model!(Fixture, name: "fixture", family: "fixture");

/// Hand-built, deliberately broken headers, one per feature.
#[cfg(any(
    feature = "bad-magic",
    feature = "future-major",
    feature = "future-major-symbol",
    feature = "small-vtable",
    feature = "missing-function"
))]
mod broken {
    use gantry_plugin_api::abi::{PluginHeader, PluginVTable};
    use gantry_plugin_api::shim;

    static VTABLE: PluginVTable = {
        #[allow(unused_mut)]
        let mut v = shim::vtable::<super::Fixture>();
        #[cfg(feature = "small-vtable")]
        {
            v.size = 16;
        }
        #[cfg(feature = "missing-function")]
        {
            v.eval = None;
        }
        v
    };

    static HEADER: PluginHeader = {
        #[allow(unused_mut)]
        let mut h = shim::header(
            "fixture",
            "0.0.0",
            "fixture",
            "",
            cfg!(panic = "unwind"),
            &VTABLE,
        );
        #[cfg(feature = "bad-magic")]
        {
            h.magic = 0x0123_4567_89ab_cdef;
        }
        #[cfg(feature = "future-major")]
        {
            h.abi_major = 2;
        }
        #[cfg(feature = "small-vtable")]
        {
            h.vtable_size = 16;
        }
        h
    };

    /// The v1 entry symbol, returning the broken header.
    #[cfg(not(feature = "future-major-symbol"))]
    #[unsafe(no_mangle)]
    pub extern "C" fn gantry_plugin_entry_v1() -> *const PluginHeader {
        &HEADER
    }

    /// A plugin of a future major exports only that major's entry symbol.
    #[cfg(feature = "future-major-symbol")]
    #[unsafe(no_mangle)]
    pub extern "C" fn gantry_plugin_entry_v2() -> *const PluginHeader {
        &HEADER
    }
}

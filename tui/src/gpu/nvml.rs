//! The NVML side: opens `libnvidia-ml.so.1` once (nvml-wrapper loads it with libloading,
//! so a host without the driver only gets an error) and turns every answer into a
//! [`GpuSample`] field, or every refusal into a `None` or a one-line reason. Opening can
//! take hundreds of milliseconds: callers do it off any thread that must stay responsive.

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::TemperatureSensor;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::{GpuSample, GpuStats, one_line};

/// The library NVML is loaded from (nvml-wrapper's default on Linux).
const LIBRARY: &str = "libnvidia-ml.so.1";

/// An initialised NVML; dropping it shuts NVML down.
pub struct NvmlGpus {
    nvml: Nvml,
}

impl NvmlGpus {
    /// Loads and initialises NVML, or says in one line why it cannot
    /// (`NVML not available: libnvidia-ml.so.1 not found`).
    pub fn open() -> Result<NvmlGpus, String> {
        Nvml::init()
            .map(|nvml| NvmlGpus { nvml })
            .map_err(|e| format!("NVML not available: {}", init_reason(&e)))
    }

    /// Every GPU's utilisation, memory, temperature and power now. A device or a field
    /// NVML refuses becomes `None` (or the device's `error`) without hiding the others.
    pub fn sample(&self) -> GpuStats {
        match self.nvml.device_count() {
            Ok(n) => GpuStats::Devices((0..n).map(|i| self.sample_device(i)).collect()),
            Err(e) => GpuStats::Unavailable(format!(
                "NVML cannot count the GPUs: {}",
                one_line(&e.to_string())
            )),
        }
    }

    fn sample_device(&self, index: u32) -> GpuSample {
        let mut sample = GpuSample::unknown(index);
        let device = match self.nvml.device_by_index(index) {
            Ok(d) => d,
            Err(e) => {
                sample.error = Some(one_line(&e.to_string()));
                return sample;
            }
        };
        if let Ok(name) = device.name() {
            sample.name = one_line(&name);
        }
        sample.utilization_pct = device.utilization_rates().ok().map(|u| u.gpu);
        if let Ok(memory) = device.memory_info() {
            sample.memory_used_bytes = Some(memory.used);
            sample.memory_total_bytes = Some(memory.total);
        }
        sample.temperature_c = device.temperature(TemperatureSensor::Gpu).ok();
        // NVML reports milliwatts.
        sample.power_watts = device.power_usage().ok().map(|mw| f64::from(mw) / 1000.0);
        sample
    }

    /// GPU memory held by process `pid`, summed over every GPU it computes on: `None` when
    /// no GPU lists it (it has not touched one yet, or NVML sees the host's pids and this
    /// process lives in another pid namespace). An error only when no GPU could be asked.
    pub fn process_memory(&self, pid: u32) -> Result<Option<u64>, String> {
        let n = self
            .nvml
            .device_count()
            .map_err(|e| format!("NVML cannot count the GPUs: {}", one_line(&e.to_string())))?;
        let mut total: Option<u64> = None;
        let mut first_error = None;
        let mut answered = false;
        for index in 0..n {
            let processes = self
                .nvml
                .device_by_index(index)
                .and_then(|d| d.running_compute_processes());
            match processes {
                Ok(list) => {
                    answered = true;
                    for p in list.iter().filter(|p| p.pid == pid) {
                        if let UsedGpuMemory::Used(bytes) = p.used_gpu_memory {
                            total = Some(total.unwrap_or(0).saturating_add(bytes));
                        }
                    }
                }
                Err(e) => {
                    first_error.get_or_insert_with(|| {
                        format!("GPU {index}: {}", one_line(&e.to_string()))
                    });
                }
            }
        }
        match first_error {
            Some(e) if !answered => Err(e),
            _ => Ok(total),
        }
    }

    /// The NVML indices of the GPUs process `pid` computes on (empty when none lists it:
    /// it has not touched one yet, or it lives in another pid namespace).
    pub fn process_gpus(&self, pid: u32) -> Vec<u32> {
        let n = self.nvml.device_count().unwrap_or(0);
        (0..n)
            .filter(|&index| {
                self.nvml
                    .device_by_index(index)
                    .and_then(|d| d.running_compute_processes())
                    .is_ok_and(|list| list.iter().any(|p| p.pid == pid))
            })
            .collect()
    }
}

/// Looks once: the stats now, or why there are none.
pub fn sample_once() -> GpuStats {
    match NvmlGpus::open() {
        Ok(gpus) => gpus.sample(),
        Err(reason) => GpuStats::Unavailable(reason),
    }
}

/// Why NVML would not start, shortly: the common cases in words, the rest as NVML says.
fn init_reason(e: &NvmlError) -> String {
    let text = match e {
        NvmlError::LibloadingError(inner) => {
            let inner = inner.to_string();
            if inner.contains("No such file") || inner.contains("not found") {
                format!("{LIBRARY} not found")
            } else {
                inner
            }
        }
        NvmlError::LibraryNotFound => format!("{LIBRARY} not found"),
        NvmlError::DriverNotLoaded => "the NVIDIA driver is not loaded".into(),
        NvmlError::NoPermission => "no permission to talk to the NVIDIA driver".into(),
        other => other.to_string(),
    };
    one_line(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This machine has no NVIDIA driver (CI neither): opening fails with a reason, and
    /// nothing panics. On a GPU host the same calls must give one sample per device.
    #[test]
    fn without_a_driver_nvml_is_unavailable_with_a_reason() {
        let stats = sample_once();
        if std::path::Path::new("/proc/driver/nvidia/version").exists() {
            match stats {
                GpuStats::Devices(devices) => {
                    for (i, d) in devices.iter().enumerate() {
                        assert_eq!(d.index as usize, i);
                    }
                }
                GpuStats::Unavailable(reason) => assert!(!reason.is_empty()),
            }
            return;
        }
        let GpuStats::Unavailable(reason) = stats else {
            panic!("NVML answered without a driver: {stats:?}");
        };
        assert!(reason.starts_with("NVML not available: "), "{reason}");
        assert!(reason.len() > "NVML not available: ".len(), "{reason}");
        assert!(!reason.contains('\n'), "{reason}");
        let err = NvmlGpus::open().err().unwrap_or_default();
        assert_eq!(err, reason);
    }

    #[test]
    fn init_errors_read_as_short_reasons() {
        assert_eq!(
            init_reason(&NvmlError::DriverNotLoaded),
            "the NVIDIA driver is not loaded"
        );
        assert_eq!(
            init_reason(&NvmlError::LibraryNotFound),
            "libnvidia-ml.so.1 not found"
        );
        let garbled = NvmlError::FailedToLoadSymbol("nvmlInit_v2\n\u{1b}[2J".into());
        let reason = init_reason(&garbled);
        assert!(
            !reason.contains('\n') && !reason.contains('\u{1b}'),
            "{reason}"
        );
    }
}

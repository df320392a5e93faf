//! `launcher:` in a run config: where `gantry train` runs the runner. `Local` (the
//! default) trains here; `Slurm(..)` writes `slurm.sbatch` into the run folder and submits
//! it (see [`crate::control::slurm`]). Only the format lives here: the values are checked
//! so that each becomes one `#SBATCH` line and nothing else.

use serde::{Deserialize, Serialize};

/// Where a run's runner runs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum Launcher {
    /// On this machine (detached with `--detach`, or in the foreground).
    #[default]
    Local,
    /// As a Slurm batch job: `Slurm(partition: Some("gpu"), gres: Some("gpu:1"),
    /// time: Some("02:00:00"), extra: ["--qos=normal"])`. Every field may be left out;
    /// Slurm's defaults apply to what is.
    Slurm {
        /// `--partition`.
        #[serde(default)]
        partition: Option<String>,
        /// `--gres`, e.g. `gpu:1`.
        #[serde(default)]
        gres: Option<String>,
        /// `--time`, e.g. `02:00:00` or `1-00:00:00`.
        #[serde(default)]
        time: Option<String>,
        /// `--account`.
        #[serde(default)]
        account: Option<String>,
        /// `--cpus-per-task` (data loading threads).
        #[serde(default)]
        cpus_per_task: Option<u32>,
        /// `--mem`, e.g. `16G`.
        #[serde(default)]
        mem: Option<String>,
        /// More sbatch options, one per `#SBATCH` line (`--qos=normal`, `--constraint=a100`).
        #[serde(default)]
        extra: Vec<String>,
    },
}

/// A Slurm launcher's options, borrowed out of [`Launcher::Slurm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlurmOptions<'a> {
    pub partition: Option<&'a str>,
    pub gres: Option<&'a str>,
    pub time: Option<&'a str>,
    pub account: Option<&'a str>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<&'a str>,
    pub extra: &'a [String],
}

impl Launcher {
    /// The Slurm options, when the launcher is Slurm.
    pub fn slurm(&self) -> Option<SlurmOptions<'_>> {
        match self {
            Launcher::Local => None,
            Launcher::Slurm {
                partition,
                gres,
                time,
                account,
                cpus_per_task,
                mem,
                extra,
            } => Some(SlurmOptions {
                partition: partition.as_deref(),
                gres: gres.as_deref(),
                time: time.as_deref(),
                account: account.as_deref(),
                cpus_per_task: *cpus_per_task,
                mem: mem.as_deref(),
                extra,
            }),
        }
    }

    pub fn is_slurm(&self) -> bool {
        matches!(self, Launcher::Slurm { .. })
    }

    /// Checks what serde cannot: each value is one word (it becomes `--name=value` on an
    /// `#SBATCH` line, which sbatch splits at spaces), `extra` entries are options, and no
    /// value holds a control character (a newline would end the `#SBATCH` line and start
    /// a shell command). Messages name the field.
    pub fn validate(&self) -> Result<(), String> {
        let Some(s) = self.slurm() else {
            return Ok(());
        };
        for (name, value) in [
            ("partition", s.partition),
            ("gres", s.gres),
            ("time", s.time),
            ("account", s.account),
            ("mem", s.mem),
        ] {
            let Some(value) = value else { continue };
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "launcher Slurm {name}: {value:?} must be one word, without spaces \
                     (leave it out for Slurm's default)"
                ));
            }
        }
        if s.cpus_per_task == Some(0) {
            return Err("launcher Slurm cpus_per_task must be at least 1".into());
        }
        for option in s.extra {
            if !option.starts_with('-') || option.chars().any(char::is_control) {
                return Err(format!(
                    "launcher Slurm extra: {option:?} is not an sbatch option (like \
                     \"--qos=normal\"; one option per entry, no newlines)"
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Launcher, String> {
        crate::runfs::ron_options()
            .from_str(text)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn slurm_parses_with_any_subset_of_fields_and_bare_options() {
        let l = parse(
            r#"Slurm(partition: Some("gpu"), gres: "gpu:1", time: Some("02:00:00"),
                     account: None, extra: ["--qos=normal"])"#,
        )
        .unwrap();
        let s = l.slurm().unwrap();
        assert_eq!(s.partition, Some("gpu"));
        assert_eq!(s.gres, Some("gpu:1"));
        assert_eq!(s.time, Some("02:00:00"));
        assert_eq!(s.account, None);
        assert_eq!(s.extra, ["--qos=normal".to_string()]);
        assert_eq!(parse("Slurm()").unwrap().slurm().unwrap().partition, None);
        assert_eq!(parse("Local").unwrap(), Launcher::Local);
        assert!(!Launcher::default().is_slurm());
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let err = parse(r#"Slurm(partiton: "gpu")"#).unwrap_err();
        assert!(err.contains("partiton"), "{err}");
        let bad = |text: &str| parse(text).unwrap().validate().unwrap_err();
        assert!(bad(r#"Slurm(partition: "gpu\nrm -rf /")"#).contains("partition"));
        assert!(bad(r#"Slurm(time: "2 hours")"#).contains("time"));
        assert!(bad(r#"Slurm(extra: ["qos=normal"])"#).contains("extra"));
        assert!(bad(r#"Slurm(extra: ["--qos=a\n--x"])"#).contains("extra"));
        assert!(bad(r#"Slurm(cpus_per_task: 0)"#).contains("cpus_per_task"));
        parse(r#"Slurm(partition: "debug", cpus_per_task: 4, mem: "16G")"#)
            .unwrap()
            .validate()
            .unwrap();
    }

    #[test]
    fn round_trips_through_pretty_ron() {
        let l = parse(r#"Slurm(partition: "gpu", extra: ["--qos=normal"])"#).unwrap();
        let text = ron::ser::to_string_pretty(&l, Default::default()).unwrap();
        assert_eq!(parse(&text).unwrap(), l);
    }
}

//! `slurm.sbatch`: the batch script gantry writes into a run folder and submits. It is
//! meant to be read and to be submitted again by hand (`sbatch slurm.sbatch`): on the
//! allocated node it goes on from `checkpoints/last` when the run has one (what a resume
//! resubmits), else trains the run from its submitted `config.ron`, in the same folder.

use std::ffi::OsString;
use std::path::Path;

use super::SlurmError;
use crate::runfs::RunFolder;
use crate::runfs::launcher::SlurmOptions;

/// The script's file name in the run folder.
pub const SCRIPT_FILE: &str = "slurm.sbatch";

/// What the script runs.
#[derive(Debug, Clone)]
pub struct ScriptPlan<'a> {
    /// The run folder (absolute).
    pub folder: &'a RunFolder,
    /// The run root it is in (absolute): the runner's `--runs`.
    pub runs: &'a Path,
    /// The `gantry` binary the node runs (absolute).
    pub gantry: &'a Path,
    pub slurm: SlurmOptions<'a>,
    /// Runner options for both branches: `--device`, `--plugins`,
    /// `--allow-insecure-plugins`.
    pub runner_args: &'a [OsString],
}

/// The script's text.
pub fn render(plan: &ScriptPlan<'_>) -> Result<String, SlurmError> {
    let folder = plan.folder;
    let id = folder.id();
    let dir = utf8(&folder.dir)?;
    let config = folder.dir.join(crate::control::CONFIG_FILE);
    let config = utf8(&config)?;
    let checkpoint = folder.checkpoint_dir("last").join("checkpoint.ron");
    let checkpoint = utf8(&checkpoint)?;
    let runs = utf8(plan.runs)?;
    let gantry = utf8(plan.gantry)?;
    let args = plan
        .runner_args
        .iter()
        .map(|a| {
            a.to_str().map(sh_quote).ok_or_else(|| SlurmError::NotUtf8 {
                what: format!("runner argument {a:?}"),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let args: String = args.iter().map(|a| format!(" {a}")).collect();

    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!("#SBATCH --job-name=gantry-{id}"),
        format!(
            "#SBATCH --output={}",
            sbatch_value(&format!("{}/slurm-%j.out", dir.replace('%', "%%")))
        ),
        format!("#SBATCH --chdir={}", sbatch_value(dir)),
    ];
    let s = &plan.slurm;
    for (name, value) in [
        ("partition", s.partition),
        ("gres", s.gres),
        ("time", s.time),
        ("account", s.account),
        ("mem", s.mem),
    ] {
        if let Some(value) = value {
            lines.push(format!("#SBATCH --{name}={value}"));
        }
    }
    if let Some(n) = s.cpus_per_task {
        lines.push(format!("#SBATCH --cpus-per-task={n}"));
    }
    for option in s.extra {
        lines.push(format!("#SBATCH {}", sbatch_option(option)));
    }
    lines.push(format!(
        "\
#
# Written by gantry for run {id}.
# `gantry train` (launcher: Slurm) and `gantry resume` submit it with
# `sbatch --parsable`; it may be submitted again by hand:
#     sbatch {script}
# Arguments after the script name go to `gantry resume` (e.g. --epochs 50).
# The run folder must be on a filesystem the compute nodes share with this host.
# On scancel Slurm sends SIGTERM: the runner checkpoints and ends `stopped`.
set -eu
gantry={gantry_q}
run={dir_q}
if [ -f {checkpoint_q} ]; then
    # The run has a checkpoint: go on from it.
    exec \"$gantry\" resume \"$run\" --local --quiet{args} \"$@\"
fi
exec \"$gantry\" train {config_q} --runs {runs_q} --name {id_q} --queued --quiet{args}",
        script = folder.dir.join(SCRIPT_FILE).display(),
        gantry_q = sh_quote(gantry),
        dir_q = sh_quote(dir),
        checkpoint_q = sh_quote(checkpoint),
        config_q = sh_quote(config),
        runs_q = sh_quote(runs),
        id_q = sh_quote(&id),
    ));
    let mut text = lines.join("\n");
    text.push('\n');
    Ok(text)
}

fn utf8(path: &Path) -> Result<&str, SlurmError> {
    path.to_str().ok_or_else(|| SlurmError::NotUtf8 {
        what: format!("path {}", path.display()),
    })
}

/// A word for the shell: single-quoted unless it is plainly safe.
pub fn sh_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=+,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// An `extra` option as one `#SBATCH` word: `--comment=two words` has its value quoted.
fn sbatch_option(option: &str) -> String {
    match option.split_once('=') {
        Some((name, value)) if !value.starts_with('"') => {
            format!("{name}={}", sbatch_value(value))
        }
        _ => option.to_string(),
    }
}

/// A value on an `#SBATCH` line: sbatch splits those at spaces unless double-quoted.
fn sbatch_value(s: &str) -> String {
    if s.chars().any(char::is_whitespace) {
        format!("\"{s}\"")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_names_the_job_its_options_and_both_branches() {
        let folder = RunFolder::new("/shared/runs/20270115-ae");
        let extra = vec![
            "--qos=normal".to_string(),
            "--comment=two words".to_string(),
        ];
        let args: Vec<OsString> = vec!["--device".into(), "cuda".into()];
        let text = render(&ScriptPlan {
            folder: &folder,
            runs: Path::new("/shared/runs"),
            gantry: Path::new("/opt/gantry/bin/gantry"),
            slurm: SlurmOptions {
                partition: Some("gpu"),
                gres: Some("gpu:1"),
                time: Some("02:00:00"),
                account: None,
                cpus_per_task: Some(4),
                mem: None,
                extra: &extra,
            },
            runner_args: &args,
        })
        .unwrap();
        let expected = "\
#!/bin/bash
#SBATCH --job-name=gantry-20270115-ae
#SBATCH --output=/shared/runs/20270115-ae/slurm-%j.out
#SBATCH --chdir=/shared/runs/20270115-ae
#SBATCH --partition=gpu
#SBATCH --gres=gpu:1
#SBATCH --time=02:00:00
#SBATCH --cpus-per-task=4
#SBATCH --qos=normal
#SBATCH --comment=\"two words\"
#
# Written by gantry for run 20270115-ae.
# `gantry train` (launcher: Slurm) and `gantry resume` submit it with
# `sbatch --parsable`; it may be submitted again by hand:
#     sbatch /shared/runs/20270115-ae/slurm.sbatch
# Arguments after the script name go to `gantry resume` (e.g. --epochs 50).
# The run folder must be on a filesystem the compute nodes share with this host.
# On scancel Slurm sends SIGTERM: the runner checkpoints and ends `stopped`.
set -eu
gantry=/opt/gantry/bin/gantry
run=/shared/runs/20270115-ae
if [ -f /shared/runs/20270115-ae/checkpoints/last/checkpoint.ron ]; then
    # The run has a checkpoint: go on from it.
    exec \"$gantry\" resume \"$run\" --local --quiet --device cuda \"$@\"
fi
exec \"$gantry\" train /shared/runs/20270115-ae/config.ron --runs /shared/runs --name 20270115-ae --queued --quiet --device cuda
";
        assert_eq!(text, expected);
    }

    #[test]
    fn odd_paths_are_quoted_for_the_shell_and_for_sbatch() {
        assert_eq!(sh_quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(sh_quote("$(reboot)"), "'$(reboot)'");
        assert_eq!(sh_quote(""), "''");
        let folder = RunFolder::new("/my runs/100%-ae");
        let text = render(&ScriptPlan {
            folder: &folder,
            runs: Path::new("/my runs"),
            gantry: Path::new("/bin/gantry"),
            slurm: SlurmOptions {
                partition: None,
                gres: None,
                time: None,
                account: None,
                cpus_per_task: None,
                mem: None,
                extra: &[],
            },
            runner_args: &[],
        })
        .unwrap();
        assert!(
            text.contains("#SBATCH --output=\"/my runs/100%%-ae/slurm-%j.out\"\n"),
            "{text}"
        );
        assert!(text.contains("run='/my runs/100%-ae'\n"), "{text}");
        assert!(!text.contains("--partition"), "{text}");
    }
}

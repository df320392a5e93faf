//! What the dashboard asks of the world beyond its own state: launching, stopping and
//! resuming runs (through [`crate::control`]) and opening `$EDITOR`. Key handlers only
//! record an [`Action`] on the app; the event loop performs it after the key, so key
//! handling stays free of processes and signals and tests can stand a fake in for them.

use std::path::{Path, PathBuf};

use anyhow::Result;

use super::app::{App, Focus, Message};
use crate::control::{self, LaunchOptions, ResumeOptions, StopSent};
use crate::runfs::RunFolder;
use crate::runfs::spec::RunSpec;

/// Something a key asked for that the event loop carries out.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start a detached runner for a validated config.
    Launch {
        /// Where the config counts as written (relative data paths resolve from here).
        config: PathBuf,
        /// Boxed: a spec is large next to the other actions.
        spec: Box<RunSpec>,
        name: Option<String>,
    },
    /// SIGTERM (or SIGKILL when `force`) the run's runner.
    Stop { dir: PathBuf, force: bool },
    /// Resume the run from its last checkpoint, detached.
    Resume { dir: PathBuf },
    /// Open this config text in `$EDITOR` and give the result to the new-run form.
    Edit { text: String },
}

/// Where launches go and which plugins runners may load; set once from the command line.
#[derive(Debug, Clone, Default)]
pub struct LaunchContext {
    /// The run root new runs are created in (the first watched root).
    pub runs: PathBuf,
    /// `--plugins` flags, passed on to runners.
    pub plugin_dirs: Vec<PathBuf>,
    pub allow_insecure_plugins: bool,
    /// What a fresh form's relative paths are relative to.
    pub cwd: PathBuf,
}

/// The control operations the dashboard uses; [`LocalControl`] is the real one.
pub trait RunControl {
    fn launch(&self, config: &Path, spec: &RunSpec, opts: &LaunchOptions) -> Result<RunFolder>;
    fn stop(&self, dir: &Path, force: bool) -> Result<StopSent>;
    fn resume(&self, dir: &Path, opts: &ResumeOptions) -> Result<()>;
}

/// Runners on this machine, through [`crate::control`].
pub struct LocalControl;

impl RunControl for LocalControl {
    fn launch(&self, config: &Path, spec: &RunSpec, opts: &LaunchOptions) -> Result<RunFolder> {
        control::launch(config, spec, opts)
    }

    fn stop(&self, dir: &Path, force: bool) -> Result<StopSent> {
        control::stop(dir, force)
    }

    fn resume(&self, dir: &Path, opts: &ResumeOptions) -> Result<()> {
        control::resume_detached(dir, opts)
    }
}

/// Runs of remote roots through their host's agent, the rest through [`LocalControl`].
pub struct RoutedControl<'a> {
    pub remotes: &'a crate::remote::RemoteRuns,
}

impl RunControl for RoutedControl<'_> {
    fn launch(&self, config: &Path, spec: &RunSpec, opts: &LaunchOptions) -> Result<RunFolder> {
        use crate::remote::protocol::{Outcome, RemoteAction};
        let Some((link, root)) = self.remotes.locate_root(&opts.runs) else {
            return LocalControl.launch(config, spec, opts);
        };
        let config = ron::ser::to_string_pretty(spec, Default::default())?;
        match link.act(
            root,
            RemoteAction::Launch {
                config,
                name: opts.name.clone(),
            },
        ) {
            Ok(Outcome::Launched { run }) => Ok(RunFolder::new(opts.runs.join(run))),
            Ok(other) => anyhow::bail!("the agent answered {other:?} to a launch"),
            Err(e) => anyhow::bail!("{}: {e}", link.remote.label()),
        }
    }

    fn stop(&self, dir: &Path, force: bool) -> Result<StopSent> {
        use crate::remote::protocol::{Outcome, RemoteAction};
        let Some((link, root, run)) = self.remotes.locate(dir) else {
            return LocalControl.stop(dir, force);
        };
        match link.act(root, RemoteAction::Stop { run, force }) {
            Ok(Outcome::Stopped(sent)) => Ok(sent),
            Ok(other) => anyhow::bail!("the agent answered {other:?} to a stop"),
            Err(e) => anyhow::bail!("{}: {e}", link.remote.label()),
        }
    }

    fn resume(&self, dir: &Path, opts: &ResumeOptions) -> Result<()> {
        use crate::remote::protocol::{Outcome, RemoteAction};
        let Some((link, root, run)) = self.remotes.locate(dir) else {
            return LocalControl.resume(dir, opts);
        };
        match link.act(root, RemoteAction::Resume { run }) {
            Ok(Outcome::Resumed) => Ok(()),
            Ok(other) => anyhow::bail!("the agent answered {other:?} to a resume"),
            Err(e) => anyhow::bail!("{}: {e}", link.remote.label()),
        }
    }
}

/// The Slurm job a launch or resume of the run in `dir` just submitted, if its launcher
/// is Slurm.
fn submitted_job(dir: &Path) -> Option<String> {
    if !control::slurm::is_slurm_run(dir) {
        return None;
    }
    RunFolder::new(dir).read_status().ok()?.slurm_job
}

/// Carries out a control action and reports the outcome on the app (message bar, form,
/// selection). Never fails: a refusal is a message. `Edit` needs the terminal and is the
/// event loop's to perform; here it is ignored.
pub fn perform(app: &mut App, action: Action, control: &dyn RunControl) {
    let ctx = app.launch.clone();
    match action {
        Action::Launch { config, spec, name } => {
            let opts = LaunchOptions {
                runs: ctx.runs,
                name,
                device: None,
                plugin_dirs: ctx.plugin_dirs,
                allow_insecure_plugins: ctx.allow_insecure_plugins,
            };
            match control.launch(&config, &spec, &opts) {
                Ok(folder) => {
                    app.message = Some(Message::info(match submitted_job(&folder.dir) {
                        Some(job) => format!(
                            "submitted {} as Slurm job {job}: queued (x cancels it)",
                            folder.id()
                        ),
                        None => format!(
                            "launched {}: queued, its runner is starting (x stops it)",
                            folder.id()
                        ),
                    }));
                    app.selected = Some(folder.dir);
                    app.focus = Focus::Runs;
                    app.form = None;
                }
                Err(e) => {
                    let text = format!("launch failed: {e:#}");
                    if let Some(form) = app.form.as_mut() {
                        form.show_launch_error(&text);
                    }
                    app.message = Some(Message::error(text));
                }
            }
        }
        Action::Stop { dir, force } => {
            let id = RunFolder::new(&dir).id();
            app.message = Some(match control.stop(&dir, force) {
                Ok(StopSent::Term { pid }) => {
                    app.term_sent.insert(dir);
                    Message::info(format!(
                        "SIGTERM sent to {id} (pid {pid}): it stops after its current step \
                         with a checkpoint; x again sends SIGKILL"
                    ))
                }
                Ok(StopSent::Kill { pid }) => {
                    app.term_sent.remove(&dir);
                    Message::info(format!(
                        "SIGKILL sent to {id} (pid {pid}); r resumes it from its last checkpoint"
                    ))
                }
                Ok(StopSent::Scancel { job, force: false }) => {
                    app.term_sent.insert(dir);
                    Message::info(format!(
                        "scancel {job} ({id}): Slurm sends SIGTERM, the runner checkpoints and \
                         ends stopped; x again kills it"
                    ))
                }
                Ok(StopSent::Scancel { job, force: true }) => {
                    app.term_sent.remove(&dir);
                    Message::info(format!(
                        "scancel --signal=KILL {job} ({id}); r resubmits it from its last \
                         checkpoint"
                    ))
                }
                Err(e) => Message::error(format!("stop {id}: {e:#}")),
            });
        }
        Action::Resume { dir } => {
            let id = RunFolder::new(&dir).id();
            let opts = ResumeOptions {
                epochs: None,
                device: None,
                plugin_dirs: ctx.plugin_dirs,
                allow_insecure_plugins: ctx.allow_insecure_plugins,
            };
            app.message = Some(match control.resume(&dir, &opts) {
                Ok(()) => {
                    app.term_sent.remove(&dir);
                    match submitted_job(&dir) {
                        Some(job) => Message::info(format!(
                            "resubmitted {id} to Slurm as job {job}: it goes on from its last \
                             checkpoint"
                        )),
                        None => Message::info(format!("resuming {id} from its last checkpoint")),
                    }
                }
                Err(e) => Message::error(format!("resume {id}: {e:#}")),
            });
        }
        Action::Edit { .. } => {}
    }
}

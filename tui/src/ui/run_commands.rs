//! The keys that act on runs: `n` new, `c` clone, `x` stop, `r` resume. Each opens the
//! new-run form or a confirmation, or says in the message bar why it cannot; nothing
//! happens to a run until the form's `Enter` or the confirmation's `y`.

use super::actions::Action;
use super::app::{App, Message};
use super::popups::confirm::Confirm;
use super::popups::run_form::RunForm;
use super::store::RunStore;
use crate::control;
use crate::runfs::spec::RunSpec;
use crate::runfs::status::{Liveness, State};

impl App {
    /// `n`: a fresh form.
    pub(super) fn open_new_form(&mut self) {
        let config = self.launch.cwd.join("new.ron");
        self.form = Some(RunForm::fresh(config, &self.plugins));
    }

    /// `c`: the form holding the selected run's config (run.ron, or the submitted
    /// config.ron of a run whose runner has not written run.ron yet).
    pub(super) fn open_clone_form(&mut self, store: &RunStore) {
        let Some(run) = self.current(store) else {
            self.message = Some(Message::error("no run selected to clone".into()));
            return;
        };
        let id = run.id();
        let (config, spec) = match &run.record {
            Some(record) => (run.folder.run_file(), record.spec.clone()),
            None => {
                let path = run.folder.dir.join(control::CONFIG_FILE);
                match RunSpec::load(&path) {
                    Ok(spec) => (path, spec),
                    Err(e) => {
                        self.message = Some(Message::error(format!(
                            "clone {id}: its run.ron is not there or does not read, and {e}"
                        )));
                        return;
                    }
                }
            }
        };
        self.form = Some(RunForm::from_spec(
            format!("clone {id}"),
            config,
            spec,
            &self.plugins,
        ));
    }

    /// `x`: confirm a SIGTERM, or a SIGKILL for a run already sent one from here.
    pub(super) fn ask_stop(&mut self, store: &RunStore) {
        let Some(run) = self.current(store) else {
            self.message = Some(Message::error("no run selected to stop".into()));
            return;
        };
        let (dir, id) = (run.folder.dir.clone(), run.id());
        match run.liveness(self.now, &self.host) {
            Some(Liveness::Recorded(state)) if state.is_final() => {
                self.term_sent.remove(&dir);
                self.message = Some(Message::info(format!(
                    "{id} is {}: nothing to stop",
                    state.as_str()
                )));
                return;
            }
            Some(Liveness::Crashed) => {
                self.message = Some(Message::info(format!(
                    "{id} crashed: its runner is gone; r resumes it"
                )));
                return;
            }
            Some(Liveness::External { .. }) => {
                self.message = Some(Message::info(format!(
                    "{id} is written by another program ({}): gantry only shows it",
                    run.plugin()
                )));
                return;
            }
            _ => {}
        }
        if let Some(job) = run.status.as_ref().and_then(|s| s.slurm_job.clone()) {
            let sent = self.term_sent.contains(&dir);
            self.confirm = Some(slurm_stop_confirm(&id, &job, dir, sent));
            return;
        }
        self.confirm = Some(if self.term_sent.contains(&dir) {
            Confirm {
                question: format!("Kill run {id}?"),
                detail: "It was sent SIGTERM already. SIGKILL ends its runner at once, \
                         without a checkpoint; r resumes it from the last one."
                    .into(),
                action: Action::Stop { dir, force: true },
            }
        } else {
            Confirm {
                question: format!("Stop run {id}?"),
                detail: "SIGTERM: the runner finishes its current step, writes a checkpoint \
                         and ends stopped."
                    .into(),
                action: Action::Stop { dir, force: false },
            }
        });
    }

    /// `r`: confirm resuming a stopped, failed or crashed run.
    pub(super) fn ask_resume(&mut self, store: &RunStore) {
        let Some(run) = self.current(store) else {
            self.message = Some(Message::error("no run selected to resume".into()));
            return;
        };
        let (dir, id) = (run.folder.dir.clone(), run.id());
        match run.liveness(self.now, &self.host) {
            Some(Liveness::Recorded(State::Stopped | State::Failed) | Liveness::Crashed) => {
                let detail = if run.status.as_ref().is_some_and(|s| s.slurm_job.is_some()) {
                    "Its slurm.sbatch is submitted again: the new job goes on from the last \
                     checkpoint, appending to the same run folder."
                } else {
                    "A detached runner goes on from its last checkpoint, appending to the \
                     same run folder."
                };
                self.confirm = Some(Confirm {
                    question: format!("Resume run {id}?"),
                    detail: detail.into(),
                    action: Action::Resume { dir },
                });
            }
            other => {
                let label = other.map_or("unreadable", |l| l.label());
                self.message = Some(Message::info(format!(
                    "{id} is {label}: only a stopped, failed or crashed run resumes"
                )));
            }
        }
    }
}

/// The question before `scancel`: the plain one (Slurm sends SIGTERM, then SIGKILL after
/// its grace period), or `--signal=KILL` for a run cancelled from here already.
fn slurm_stop_confirm(id: &str, job: &str, dir: std::path::PathBuf, term_sent: bool) -> Confirm {
    if term_sent {
        Confirm {
            question: format!("Kill run {id} (Slurm job {job})?"),
            detail: "It was cancelled already. scancel --signal=KILL ends its runner at once, \
                     without a checkpoint; r resubmits it from the last one."
                .into(),
            action: Action::Stop { dir, force: true },
        }
    } else {
        Confirm {
            question: format!("Stop run {id} (Slurm job {job})?"),
            detail: "scancel: Slurm sends the runner SIGTERM; it finishes its current step, \
                     writes a checkpoint and ends stopped."
                .into(),
            action: Action::Stop { dir, force: false },
        }
    }
}

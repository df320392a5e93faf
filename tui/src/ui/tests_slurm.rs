//! Runs launched through Slurm in the dashboard: the job state beside the run's own (runs
//! list and Overview), liveness that waits for a pending job, and `x`/`r` mapped to
//! scancel and resubmission. Job states are set in the store as the poller would.

use crossterm::event::KeyCode;

use super::actions::Action;
use super::app::View;
use super::slurm_jobs::SlurmSeen;
use super::store::RunStore;
use super::tests::{app, key, render, select, store};
use crate::control::slurm::{JobState, JobStatus};
use crate::fixtures::{self, FixtureRun};
use crate::runfs::RunFolder;
use crate::runfs::launcher::Launcher;
use crate::runfs::status::{Liveness, State};

/// A root with a local run and three Slurm runs: pending an hour (never started, pid 0),
/// running, and one whose node failed under it (heartbeat ten minutes old).
fn slurm_root(name: &str) -> std::path::PathBuf {
    let root = std::path::PathBuf::from("../target/ui-fixtures").join(name);
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let mut local = FixtureRun::new("ae-local", State::Finished, 6);
    local.age = 7200.0;
    fixtures::write_run(&root, &local).unwrap();
    let runs = [
        ("slurm-pending", State::Queued, 0, 3600.0, "1234"),
        ("slurm-running", State::Running, 2, 1.0, "1230"),
        ("slurm-lost", State::Running, 1, 600.0, "1229"),
    ];
    for (i, (id, state, done, quiet, job)) in runs.into_iter().enumerate() {
        let mut run = FixtureRun::new(id, state, done);
        run.age = 3700.0 + i as f64;
        run.heartbeat_age = quiet;
        let folder = fixtures::write_run(&root, &run).unwrap();
        let mut record = folder.read_record().unwrap();
        record.spec.launcher = Launcher::Slurm {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            time: Some("02:00:00".into()),
            account: None,
            cpus_per_task: None,
            mem: None,
            extra: vec![],
        };
        folder.write_record(&record).unwrap();
        let mut status = folder.read_status().unwrap();
        status.slurm_job = Some(job.into());
        if state == State::Queued {
            status.pid = 0;
            status.started = None;
            status.epochs = 0;
            status.total_steps = 0;
            status.images_per_sec = 0.0;
            status.device = None;
        }
        folder.write_status(&status).unwrap();
    }
    root
}

fn set_job(store: &mut RunStore, root: &std::path::Path, id: &str, state: JobState, why: &str) {
    let run = store.runs.get_mut(&root.join(id)).unwrap();
    run.slurm = Some(SlurmSeen {
        job: run.status.as_ref().unwrap().slurm_job.clone().unwrap(),
        state: Ok(Some(JobStatus {
            state,
            reason: (!why.is_empty()).then(|| why.to_string()),
        })),
    });
}

fn jobs_seen(root: &std::path::Path) -> RunStore {
    let mut store = store(root);
    set_job(
        &mut store,
        root,
        "slurm-pending",
        JobState::Pending,
        "Resources",
    );
    set_job(&mut store, root, "slurm-running", JobState::Running, "");
    set_job(&mut store, root, "slurm-lost", JobState::NodeFail, "");
    store
}

#[test]
fn job_states_show_beside_run_states() {
    let root = slurm_root("slurm-states");
    let jobs = jobs_seen(&root);
    let mut app = app();
    app.view = View::Overview;
    select(&mut app, &root, "slurm-pending");
    let screen = render(&mut app, &jobs, 80, 24);
    assert!(screen.contains("slurm-pending [PD]"), "{screen}");
    assert!(screen.contains("slurm-lost [NF]"), "{screen}");
    assert!(screen.contains("job 1234 PENDING (Resources)"), "{screen}");
    insta::assert_snapshot!("slurm_overview_80x24", screen);

    let liveness = |id: &str| {
        jobs.runs[&root.join(id)]
            .liveness(app.now, &app.host)
            .unwrap()
    };
    // An hour in the queue with no runner is still queued while Slurm says PENDING.
    assert_eq!(liveness("slurm-pending"), Liveness::Recorded(State::Queued));
    assert_eq!(
        liveness("slurm-running"),
        Liveness::Recorded(State::Running)
    );
    // Its job ended (NODE_FAIL) under a quiet runner: crashed, not merely stalled.
    assert_eq!(liveness("slurm-lost"), Liveness::Crashed);
    // Before Slurm has answered, the run shows that it is asking.
    let unasked = store(&root);
    let screen = render(&mut app, &unasked, 80, 24);
    assert!(screen.contains("job 1234 (asking Slurm…)"), "{screen}");
}

#[test]
fn a_pending_job_cancelled_under_a_queued_run_reads_crashed() {
    let root = slurm_root("slurm-cancelled");
    let mut store = jobs_seen(&root);
    set_job(&mut store, &root, "slurm-pending", JobState::Cancelled, "");
    let app = app();
    let run = &store.runs[&root.join("slurm-pending")];
    assert_eq!(run.liveness(app.now, &app.host), Some(Liveness::Crashed));
}

#[test]
fn x_asks_to_scancel_and_r_to_resubmit() {
    let root = slurm_root("slurm-keys");
    let mut store = jobs_seen(&root);
    let mut app = app();
    select(&mut app, &root, "slurm-running");
    key(&mut app, &store, KeyCode::Char('x'));
    let confirm = app.confirm.take().expect("a confirmation");
    assert_eq!(confirm.question, "Stop run slurm-running (Slurm job 1230)?");
    assert!(confirm.detail.contains("scancel"), "{}", confirm.detail);
    assert_eq!(
        confirm.action,
        Action::Stop {
            dir: root.join("slurm-running"),
            force: false
        }
    );
    // Cancelled once from here: x again offers the KILL signal.
    app.term_sent.insert(root.join("slurm-running"));
    key(&mut app, &store, KeyCode::Char('x'));
    let confirm = app.confirm.take().expect("a confirmation");
    assert!(
        confirm.question.starts_with("Kill run"),
        "{}",
        confirm.question
    );
    assert_eq!(
        confirm.action,
        Action::Stop {
            dir: root.join("slurm-running"),
            force: true
        }
    );
    // A stopped Slurm run resumes by resubmission.
    let folder = RunFolder::new(root.join("slurm-running"));
    let mut status = folder.read_status().unwrap();
    status.state = State::Stopped;
    folder.write_status(&status).unwrap();
    store.rescan();
    key(&mut app, &store, KeyCode::Char('r'));
    let confirm = app.confirm.take().expect("a confirmation");
    assert!(
        confirm.detail.contains("slurm.sbatch"),
        "{}",
        confirm.detail
    );
    assert_eq!(
        confirm.action,
        Action::Resume {
            dir: root.join("slurm-running")
        }
    );
}

#[test]
fn a_cloned_slurm_run_keeps_its_launcher_in_the_form_text() {
    use super::popups::run_form::config_text;
    use crate::runfs::spec::RunSpec;
    let root = slurm_root("slurm-clone");
    let record = RunFolder::new(root.join("slurm-running"))
        .read_record()
        .unwrap();
    let values = config_text::field_values(&record.spec);
    let fields: Vec<(&str, &str)> = values
        .iter()
        .map(|(p, v)| (p.as_str(), v.as_str()))
        .collect();
    let text = config_text::write(&record.spec, &fields);
    assert!(text.text.contains("launcher: Slurm("), "{}", text.text);
    let parsed = RunSpec::parse(std::path::Path::new("clone.ron"), &text.text).unwrap();
    assert_eq!(parsed.launcher, record.spec.launcher);
}

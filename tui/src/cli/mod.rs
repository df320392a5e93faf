//! The command line: argument parsing and one function per subcommand. Each command
//! returns `anyhow::Result` with context naming the file or run; `main` prints it.

mod bench;
mod demo;
mod inspect;
mod listing;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::UserConfig;
use crate::data::synth::{self, SynthOptions, SynthTask};
use crate::plugins;
use crate::runfs::status::State;
use crate::trainer::{self, TrainOptions};
use crate::ui::{self, WatchOptions};

/// gantry: a terminal cockpit for training medical-imaging models.
#[derive(Debug, Parser)]
#[command(
    name = "gantry",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = "Examples:\n  gantry demo                           train on synthetic data and watch it\n  gantry --runs runs --runs /data/runs  the dashboard over two run roots\n  gantry train configs/ae.ron --detach  start a run in the background\n\nThe book: docs/ (mdbook build docs); `gantry man` prints the man page."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Plain `gantry` opens the dashboard and takes `gantry watch`'s flags.
    #[command(flatten)]
    pub watch: WatchArgs,
    /// Set by a launcher on the runner it starts in the background: take a new session,
    /// ignore SIGHUP.
    #[arg(long, global = true, hide = true)]
    pub detached: bool,
    /// The gantry that remote roots (HOST:PATH) run on their host (default: `gantry` on
    /// its PATH; or `remote_gantry` in the config).
    #[arg(long, global = true, value_name = "PATH")]
    pub remote_gantry: Option<String>,
}

/// The dashboard's flags, taken by `gantry watch` and by plain `gantry`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct WatchArgs {
    /// A run root to watch (repeatable; default ./runs): a path, or a root on another
    /// machine as HOST:PATH or ssh://[USER@]HOST[:PORT]/PATH, reached with ssh.
    #[arg(long)]
    pub runs: Vec<PathBuf>,
    /// Poll the filesystem every SECONDS instead of inotify (NFS, sshfs).
    #[arg(long, value_name = "SECONDS")]
    pub poll: Option<f64>,
    /// Extra plugin folders for the Plugins view and the runs it launches.
    #[arg(long = "plugins")]
    pub plugins: Vec<PathBuf>,
    /// Describe and run plugins even when other users can write them.
    #[arg(long)]
    pub allow_insecure_plugins: bool,
    /// Leave the mouse to the terminal (its own text selection): no wheel, no clicks.
    #[arg(long)]
    pub no_mouse: bool,
}

impl WatchArgs {
    /// The dashboard's options: these flags over the user's config file.
    fn into_options(
        self,
        config: &UserConfig,
        remote_gantry: Option<String>,
    ) -> Result<WatchOptions> {
        let poll = match self.poll.or(config.poll) {
            Some(s) if !(s.is_finite() && s > 0.0) => {
                anyhow::bail!("--poll {s}: the interval must be a positive number of seconds")
            }
            p => p.map(Duration::from_secs_f64),
        };
        let given = match (self.runs.is_empty(), config.runs.is_empty()) {
            (false, _) => self.runs,
            (true, false) => config.runs.clone(),
            (true, true) => vec![PathBuf::from("runs")],
        };
        let mut roots = Vec::new();
        let mut remotes = Vec::new();
        for root in given {
            match crate::remote::RootAddress::parse(&root.to_string_lossy())? {
                crate::remote::RootAddress::Local(path) => roots.push(path),
                crate::remote::RootAddress::Remote(r) => remotes.push(r),
            }
        }
        let ssh = ssh_options(remote_gantry, config);
        let mut plugin_dirs = self.plugins;
        plugin_dirs.extend(config.plugins.iter().cloned());
        let keymap = ui::keymap::Keymap::from_config(&config.keys)
            .map_err(|(action, why)| anyhow::anyhow!("keys.{action}: {why}"))?;
        Ok(WatchOptions {
            roots,
            remotes,
            ssh,
            poll,
            select: None,
            plugin_dirs,
            allow_insecure_plugins: self.allow_insecure_plugins,
            mouse: config.mouse && !self.no_mouse,
            keymap,
            theme: config.theme.clone(),
        })
    }
}

/// How remote hosts are reached: `GANTRY_SSH`, and the remote gantry from the flag, else
/// the config.
fn ssh_options(remote_gantry: Option<String>, config: &UserConfig) -> crate::remote::SshOptions {
    let mut ssh = crate::remote::SshOptions::default();
    if let Some(g) = remote_gantry.or_else(|| config.remote_gantry.clone()) {
        ssh.remote_gantry = g;
    }
    ssh
}

/// Runs `gantry ARGS` on the remote host of `remote` through ssh, its output on ours.
fn on_remote(
    remote: &crate::remote::RemoteRoot,
    remote_gantry: Option<String>,
    args: &[String],
) -> Result<ExitCode> {
    let opts = ssh_options(remote_gantry, &user_config()?);
    let status = crate::remote::link::ssh_run(remote, &opts, args)
        .status()
        .with_context(|| format!("running {}", opts.ssh[0]))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(127) => {
            eprintln!(
                "{} not found on {}: name it with --remote-gantry PATH or remote_gantry in the config",
                opts.remote_gantry, remote.host
            );
            ExitCode::from(127)
        }
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// `PATH` as a remote address, when it is one.
fn remote_of(path: &std::path::Path) -> Result<Option<crate::remote::RemoteRoot>> {
    Ok(
        match crate::remote::RootAddress::parse(&path.to_string_lossy())? {
            crate::remote::RootAddress::Remote(r) => Some(r),
            crate::remote::RootAddress::Local(_) => None,
        },
    )
}

/// The user's config file, or the defaults; a bad file stops here, naming its line.
fn user_config() -> Result<UserConfig> {
    Ok(crate::config::load()?.0)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The live dashboard over one or more run roots (also what plain `gantry` opens, with
    /// the same flags: `gantry --runs DIR` is `gantry watch --runs DIR`).
    #[command(
        after_help = "Example:\n  gantry watch --runs runs --poll 2   over NFS, where inotify sees nothing"
    )]
    Watch(WatchArgs),
    #[command(
        after_help = "Example:\n  gantry train configs/ae.ron --runs runs --name ae-1 --device cpu"
    )]
    /// Train one model: load its plugin, train, write one run folder. With `launcher:
    /// Slurm(..)` in the config: write the run folder's slurm.sbatch, submit it and return.
    Train {
        /// The run config (RON).
        config: PathBuf,
        /// Run root to write the run folder into.
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        /// Run folder name (default: time and plugin name).
        #[arg(long)]
        name: Option<String>,
        /// auto, cpu, cuda or cuda:N (overrides the config).
        #[arg(long)]
        device: Option<String>,
        /// Extra plugin folders, searched first.
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
        /// Do not echo the log to stderr.
        #[arg(long, short)]
        quiet: bool,
        /// Start the runner in the background (its own session, output to train.log),
        /// print the run folder and return: it survives logging out.
        #[arg(long)]
        detach: bool,
        /// The folder runs/NAME was reserved (state queued) by a launcher.
        #[arg(long, hide = true, requires = "name")]
        queued: bool,
        /// Load plugins even when their file or folder is writable by other users.
        #[arg(long)]
        allow_insecure_plugins: bool,
        /// Write a TensorBoard event file next to scalars.csv (the default), so
        /// `tensorboard --logdir RUNS` shows the run while it trains.
        #[arg(long, overrides_with = "no_tfevents")]
        tfevents: bool,
        /// Write no TensorBoard event file.
        #[arg(long, overrides_with = "tfevents")]
        no_tfevents: bool,
    },
    #[command(after_help = "Example:\n  gantry stop runs/ae-1 --wait 30")]
    /// Stop a running run: SIGTERM, so it finishes its step, checkpoints and ends
    /// `stopped` (what the dashboard's `x` does).
    Stop {
        run_dir: PathBuf,
        /// SIGKILL instead: ends it at once; resume goes back to its last checkpoint.
        #[arg(long)]
        force: bool,
        /// Wait up to SECONDS for the run to end.
        #[arg(long, value_name = "SECONDS")]
        wait: Option<f64>,
    },
    #[command(after_help = "Example:\n  gantry resume runs/ae-1 --epochs 20 --detach")]
    /// Resume a stopped, failed or crashed run from checkpoints/last, appending to the
    /// same folder (what the dashboard's `r` does).
    Resume {
        run_dir: PathBuf,
        /// Train until this many epochs in total (default: the run's train.epochs).
        #[arg(long)]
        epochs: Option<u32>,
        /// auto, cpu, cuda or cuda:N (overrides the run's config).
        #[arg(long)]
        device: Option<String>,
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
        #[arg(long, short)]
        quiet: bool,
        /// Resume in the background, as `train --detach` does.
        #[arg(long)]
        detach: bool,
        #[arg(long)]
        allow_insecure_plugins: bool,
        /// Resume here even when the run's launcher is Slurm (which otherwise submits its
        /// slurm.sbatch again); what that script runs on the node.
        #[arg(long, conflicts_with = "detach")]
        local: bool,
    },
    /// Datasets.
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Run folders.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Model plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Show the user config file in effect (`$XDG_CONFIG_HOME/gantry/config.ron`).
    #[command(after_help = "Example:\n  gantry config --sample > ~/.config/gantry/config.ron")]
    Config {
        /// Print the sample config, every field with its default, instead.
        #[arg(long)]
        sample: bool,
    },
    /// Print a shell completion script.
    ///
    /// Example: `source <(gantry completions bash)`, or for zsh
    /// `gantry completions zsh > ~/.zfunc/_gantry`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), generated from this command line's definition.
    ///
    /// Example: `gantry man > gantry.1 && man -l gantry.1`.
    Man,
    /// The remote end of `gantry watch --runs HOST:PATH`: the dashboard starts it over ssh;
    /// it watches the roots and speaks the agent protocol on stdin and stdout.
    #[command(
        after_help = "Example (what the dashboard runs; not for typing):\n  ssh gpu1 gantry agent --proto 1 --root runs"
    )]
    Agent {
        /// A run root on this host (repeatable).
        #[arg(long, required = true)]
        root: Vec<PathBuf>,
        /// The protocol the client speaks.
        #[arg(long)]
        proto: u32,
    },
    /// Make synthetic data, train the conv-ae plugin on CPU, and show the result.
    #[command(
        after_help = "Example:\n  gantry demo --no-ui   train and print the result, without the dashboard"
    )]
    Demo {
        /// Print the summary instead of opening the dashboard.
        #[arg(long)]
        no_ui: bool,
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Training (or, with --eval, evaluation) throughput of a plugin on random data.
    Train(bench::BenchTrain),
    /// Images per second of reading and shaping PNGs (gray 256x256, RGB 700x460).
    Decode(bench::BenchDecode),
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Per-split class counts, stored image sizes and a leakage check of a config's data.
    #[command(after_help = "Example:\n  gantry data inspect configs/ae.ron")]
    Inspect {
        /// The run config (`data: (...)` is read; the plugin is not loaded).
        config: PathBuf,
    },
    /// Write a synthetic ImageFolder of grayscale "tissue" images.
    #[command(after_help = "Example:\n  gantry data synth --out data/synth --n 600 --size 64")]
    Synth {
        #[arg(long)]
        out: PathBuf,
        /// Images in the train split.
        #[arg(long, default_value_t = 600)]
        n: usize,
        #[arg(long, default_value_t = 64)]
        size: u32,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, value_enum, default_value_t = TaskArg::Anomaly)]
        task: TaskArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum TaskArg {
    Anomaly,
    Classify,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List runs under a run root: gantry's, and TensorBoard logdirs and Keras CSV
    /// histories, as the dashboard shows them.
    #[command(after_help = "Example:\n  gantry runs ls --runs runs --json")]
    Ls {
        #[arg(long, default_value = "runs")]
        runs: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// List every plugin on the search path, refused ones with their reason.
    #[command(after_help = "Example:\n  gantry plugins ls --plugins ~/my-plugins")]
    Ls {
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
        /// List plugins writable by other users as usable instead of refused.
        #[arg(long)]
        allow_insecure_plugins: bool,
    },
    /// Load one plugin and say what it is (used by `ls` in a child process).
    Describe {
        path: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

/// Parses arguments and runs the command.
pub fn run() -> Result<ExitCode> {
    let cli = Cli::parse();
    if cli.detached {
        crate::control::become_detached()?;
    }
    match cli.command {
        None => {
            ui::run(cli.watch.into_options(&user_config()?, cli.remote_gantry)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Watch(args)) => {
            ui::run(args.into_options(&user_config()?, cli.remote_gantry.clone())?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Config { sample }) => {
            if sample {
                print!("{}", crate::config::SAMPLE);
                return Ok(ExitCode::SUCCESS);
            }
            let (config, from) = crate::config::load()?;
            match (from, crate::config::path()) {
                (Some(path), _) => println!("read {}", path.display()),
                (None, Some(path)) => println!("no {} (defaults)", path.display()),
                (None, None) => println!("no config file (defaults)"),
            }
            println!("{config:#?}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Completions { shell }) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "gantry", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Man) => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .context("writing the man page")?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Train {
            config,
            runs,
            name,
            device,
            plugins,
            quiet,
            detach,
            queued,
            allow_insecure_plugins,
            tfevents: _,
            no_tfevents,
        }) => {
            // A Slurm launcher submits the run; `--queued` is its runner on the node.
            let slurm = !queued
                && crate::runfs::spec::RunSpec::load(&config).is_ok_and(|s| s.launcher.is_slurm());
            if detach || slurm {
                if no_tfevents {
                    anyhow::bail!(
                        "--no-tfevents is not passed on to a detached or Slurm runner yet: \
                         train in the foreground, or delete the run's events.out.tfevents.* file"
                    );
                }
                let spec = crate::runfs::spec::RunSpec::load(&config)?;
                let folder = crate::control::launch(
                    &config,
                    &spec,
                    &crate::control::LaunchOptions {
                        runs,
                        name,
                        device,
                        plugin_dirs: plugins,
                        allow_insecure_plugins,
                    },
                )?;
                println!("{}", folder.dir.display());
                report_slurm_job(&folder.dir);
                return Ok(ExitCode::SUCCESS);
            }
            if let Ok(spec) = crate::runfs::spec::RunSpec::load(&config) {
                reexec_for_python(&spec, &config, &plugins)?;
            }
            let stop = stop_on_signals()?;
            let outcome = trainer::train(&TrainOptions {
                config,
                runs,
                name,
                device,
                plugin_dirs: plugins,
                stop,
                echo: !quiet,
                queued,
                allow_insecure_plugins,
                no_tfevents,
            })?;
            Ok(report_outcome(&outcome))
        }
        Some(Command::Agent { root, proto }) => {
            crate::remote::agent::run(root, proto)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Stop {
            run_dir,
            force,
            wait,
        }) => {
            if let Some(remote) = remote_of(&run_dir)? {
                let mut args = vec!["stop".to_string(), remote.path.clone()];
                if force {
                    args.push("--force".into());
                }
                if let Some(w) = wait {
                    args.extend(["--wait".into(), w.to_string()]);
                }
                return on_remote(&remote, cli.remote_gantry.clone(), &args);
            }
            let sent = crate::control::stop(&run_dir, force)?;
            match sent {
                crate::control::StopSent::Term { pid } => eprintln!(
                    "sent SIGTERM to pid {pid}: {} stops after its current step",
                    run_dir.display()
                ),
                crate::control::StopSent::Kill { pid } => {
                    eprintln!("sent SIGKILL to pid {pid} ({})", run_dir.display())
                }
                crate::control::StopSent::Scancel { job, force } => eprintln!(
                    "scancel{} Slurm job {job}: {} {}",
                    if force { " --signal=KILL" } else { "" },
                    run_dir.display(),
                    if force {
                        "ends at once"
                    } else {
                        "gets SIGTERM and stops after its current step"
                    }
                ),
            }
            if let Some(secs) = wait {
                let deadline = std::time::Instant::now() + Duration::from_secs_f64(secs);
                while crate::runfs::lock::RunLock::holder(&run_dir)?.is_some() {
                    if std::time::Instant::now() > deadline {
                        anyhow::bail!("{}: still running after {secs} s", run_dir.display());
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Resume {
            run_dir,
            epochs,
            device,
            plugins,
            quiet,
            detach,
            allow_insecure_plugins,
            local,
        }) => {
            if let Some(remote) = remote_of(&run_dir)? {
                // Detached there: the runner outlives this ssh session.
                let mut args = vec!["resume".to_string(), remote.path.clone(), "--detach".into()];
                if let Some(e) = epochs {
                    args.extend(["--epochs".into(), e.to_string()]);
                }
                if let Some(d) = device {
                    args.extend(["--device".into(), d]);
                }
                if local || quiet || allow_insecure_plugins || !plugins.is_empty() {
                    anyhow::bail!(
                        "{}: --local, --quiet, --plugins and --allow-insecure-plugins are not \
                         passed to a remote host; resume there with ssh",
                        run_dir.display()
                    );
                }
                return on_remote(&remote, cli.remote_gantry.clone(), &args);
            }
            if detach || (!local && crate::control::slurm::is_slurm_run(&run_dir)) {
                crate::control::resume_detached(
                    &run_dir,
                    &crate::control::ResumeOptions {
                        epochs,
                        device,
                        plugin_dirs: plugins,
                        allow_insecure_plugins,
                    },
                )?;
                println!("{}", run_dir.display());
                report_slurm_job(&run_dir);
                return Ok(ExitCode::SUCCESS);
            }
            let record = crate::runfs::RunFolder::new(&run_dir).read_record();
            if let Ok(record) = record {
                let config = crate::runfs::RunFolder::new(&run_dir).run_file();
                reexec_for_python(&record.spec, &config, &plugins)?;
            }
            let outcome = trainer::resume(&trainer::ResumeOptions {
                dir: run_dir,
                epochs,
                device,
                plugin_dirs: plugins,
                stop: stop_on_signals()?,
                echo: !quiet,
                allow_insecure_plugins,
            })?;
            Ok(report_outcome(&outcome))
        }
        Some(Command::Data {
            command: DataCommand::Inspect { config },
        }) => {
            let (report, clean) = inspect::inspect(&config)?;
            print!("{report}");
            Ok(if clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Data {
            command:
                DataCommand::Synth {
                    out,
                    n,
                    size,
                    seed,
                    task,
                },
        }) => {
            let task = match task {
                TaskArg::Anomaly => SynthTask::Anomaly,
                TaskArg::Classify => SynthTask::Classify,
            };
            let summary = synth::write(
                &out,
                &SynthOptions {
                    n,
                    size,
                    seed,
                    task,
                },
            )?;
            for (split, class, count) in &summary.counts {
                println!("{split}/{class}: {count}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Runs {
            command: RunsCommand::Ls { runs, json },
        }) => {
            if let Some(remote) = remote_of(&runs)? {
                let mut args = vec![
                    "runs".to_string(),
                    "ls".into(),
                    "--runs".into(),
                    remote.path.clone(),
                ];
                if json {
                    args.push("--json".into());
                }
                return on_remote(&remote, cli.remote_gantry.clone(), &args);
            }
            listing::runs(&runs, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plugins {
            command:
                PluginsCommand::Ls {
                    plugins,
                    json,
                    allow_insecure_plugins,
                },
        }) => {
            listing::plugins(&plugins, json, allow_insecure_plugins)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plugins {
            command: PluginsCommand::Describe { path, json },
        }) => {
            if plugins::python::is_script(&path) {
                plugins::python::reexec_with_env(&plugins::python::env_for(&path, None))?;
            }
            let entry = plugins::describe_here(&path);
            if json {
                println!("{}", serde_json::to_string(&entry)?);
            } else {
                listing::print_plugin(&entry);
            }
            Ok(if entry.status == "ok" {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some(Command::Bench {
            command: BenchCommand::Train(b),
        }) => bench::run(&b),
        Some(Command::Bench {
            command: BenchCommand::Decode(b),
        }) => bench::run_decode(&b),
        Some(Command::Demo {
            no_ui,
            runs,
            plugins,
        }) => demo::run(&runs, &plugins, no_ui),
    }
}

/// Prints how a run ended; a failed run is a failed command.
fn report_outcome(outcome: &trainer::TrainOutcome) -> ExitCode {
    let dir = outcome.folder.dir.display();
    match outcome.status.state {
        State::Failed => {
            let error = outcome.status.error.as_deref().unwrap_or("unknown error");
            eprintln!(
                "run {dir} failed: {}",
                crate::text::escape_controls_keep_newlines(error)
            );
            ExitCode::FAILURE
        }
        state => {
            eprintln!("run {dir} {}", state.as_str());
            ExitCode::SUCCESS
        }
    }
}

/// Says which Slurm job a launch or resume submitted, if it did (on stderr: stdout is the
/// run folder alone, for scripts).
fn report_slurm_job(dir: &std::path::Path) {
    let folder = crate::runfs::RunFolder::new(dir);
    if let Some(job) = folder.read_status().ok().and_then(|s| s.slurm_job) {
        eprintln!(
            "submitted Slurm job {job} ({}); `gantry stop {}` cancels it",
            folder
                .dir
                .join(crate::control::slurm::SCRIPT_FILE)
                .display(),
            dir.display()
        );
    }
}

/// A `.py` plugin is driven by the bridge, which reads the script and virtualenv from the
/// environment: re-run this process with them (before anything is written), unless it has
/// them already. Anything that does not resolve is left to the normal path to report.
fn reexec_for_python(
    spec: &crate::runfs::spec::RunSpec,
    config: &std::path::Path,
    flags: &[PathBuf],
) -> Result<()> {
    let dirs = plugins::search_path(flags);
    let Ok(path) = plugins::resolve(&spec.plugin, &dirs) else {
        return Ok(());
    };
    if !plugins::python::is_script(&path) {
        return Ok(());
    }
    let venv = spec.python.as_ref().map(|v| {
        if v.is_absolute() {
            v.clone()
        } else {
            config.parent().map_or_else(|| v.clone(), |dir| dir.join(v))
        }
    });
    plugins::python::reexec_with_env(&plugins::python::env_for(&path, venv.as_deref()))
}

/// SIGTERM and SIGINT ask the runner to stop after the current step.
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// Plain `gantry` takes every flag `gantry watch` takes, as `tensorboard --logdir`
    /// users type it.
    #[test]
    fn plain_gantry_takes_the_dashboard_flags() {
        let args = [
            "gantry",
            "--runs",
            "a",
            "--runs",
            "b",
            "--poll",
            "2",
            "--plugins",
            "p",
            "--allow-insecure-plugins",
        ];
        let plain = Cli::try_parse_from(args).unwrap();
        assert!(plain.command.is_none());
        let mut watch = args.to_vec();
        watch.insert(1, "watch");
        let Some(Command::Watch(sub)) = Cli::try_parse_from(watch).unwrap().command else {
            panic!("not the watch subcommand");
        };
        for w in [plain.watch, sub] {
            let opts = w.into_options(&UserConfig::default(), None).unwrap();
            assert_eq!(opts.roots, [PathBuf::from("a"), PathBuf::from("b")]);
            assert_eq!(opts.poll, Some(Duration::from_secs(2)));
            assert_eq!(opts.plugin_dirs, [PathBuf::from("p")]);
            assert!(opts.allow_insecure_plugins);
        }
        // Subcommands keep their own flags: `--runs` before one is refused, not mixed.
        assert!(Cli::try_parse_from(["gantry", "--runs", "a", "runs", "ls"]).is_err());
        let bad = WatchArgs {
            poll: Some(0.0),
            ..Default::default()
        };
        let err = bad.into_options(&UserConfig::default(), None).unwrap_err();
        assert!(err.to_string().contains("--poll"));
        // The config file fills in what the flags leave out; flags win.
        let config = UserConfig {
            runs: vec![PathBuf::from("/data/runs")],
            plugins: vec![PathBuf::from("/opt/plugins")],
            poll: Some(5.0),
            mouse: false,
            ..UserConfig::default()
        };
        let from_config = WatchArgs::default().into_options(&config, None).unwrap();
        assert_eq!(from_config.roots, [PathBuf::from("/data/runs")]);
        assert_eq!(from_config.poll, Some(Duration::from_secs(5)));
        assert_eq!(from_config.plugin_dirs, [PathBuf::from("/opt/plugins")]);
        assert!(!from_config.mouse);
        let flags = WatchArgs {
            runs: vec![PathBuf::from("mine")],
            poll: Some(1.0),
            plugins: vec![PathBuf::from("p")],
            ..WatchArgs::default()
        };
        let both = flags.into_options(&config, None).unwrap();
        assert_eq!(both.roots, [PathBuf::from("mine")]);
        assert_eq!(both.poll, Some(Duration::from_secs(1)));
        assert_eq!(
            both.plugin_dirs,
            [PathBuf::from("p"), PathBuf::from("/opt/plugins")]
        );
    }

    /// The command line definition is sound (clap's own checks), and every subcommand
    /// that a user meets first says how to use it by example.
    #[test]
    fn cli_definition_checks_and_helps_by_example() {
        use clap::CommandFactory as _;
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let mut missing = Vec::new();
        for path in [
            vec![],
            vec!["watch"],
            vec!["train"],
            vec!["stop"],
            vec!["resume"],
            vec!["demo"],
            vec!["config"],
            vec!["runs", "ls"],
            vec!["plugins", "ls"],
            vec!["data", "inspect"],
        ] {
            let mut sub = cmd.clone();
            for name in &path {
                sub = sub.find_subcommand(name).expect("subcommand").clone();
            }
            if !sub.render_long_help().to_string().contains("Example") {
                missing.push(path.join(" "));
            }
        }
        assert!(missing.is_empty(), "no example in --help of: {missing:?}");
    }
}

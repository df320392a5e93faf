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

use crate::data::synth::{self, SynthOptions, SynthTask};
use crate::plugins;
use crate::runfs::status::State;
use crate::trainer::{self, TrainOptions};
use crate::ui::{self, WatchOptions};

/// gantry: a terminal cockpit for training medical-imaging models.
#[derive(Debug, Parser)]
#[command(name = "gantry", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The live dashboard over one or more run roots (also what plain `gantry` opens).
    Watch {
        /// A run root to watch (repeatable; default ./runs).
        #[arg(long)]
        runs: Vec<PathBuf>,
        /// Poll the filesystem every SECONDS instead of inotify (NFS, sshfs).
        #[arg(long, value_name = "SECONDS")]
        poll: Option<f64>,
    },
    /// Train one model: load its plugin, train, write one run folder.
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
    /// Make synthetic data, train the conv-ae plugin on CPU, and show the result.
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
    Inspect {
        /// The run config (`data: (...)` is read; the plugin is not loaded).
        config: PathBuf,
    },
    /// Write a synthetic ImageFolder of grayscale "tissue" images.
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
    /// List runs under a run root.
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
    Ls {
        #[arg(long = "plugins")]
        plugins: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
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
    match cli.command {
        None => {
            ui::run(WatchOptions {
                roots: vec![PathBuf::from("runs")],
                poll: None,
                select: None,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Watch { runs, poll }) => {
            ui::run(WatchOptions {
                roots: if runs.is_empty() {
                    vec![PathBuf::from("runs")]
                } else {
                    runs
                },
                poll: poll.map(Duration::from_secs_f64),
                select: None,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Train {
            config,
            runs,
            name,
            device,
            plugins,
            quiet,
        }) => {
            let stop = stop_on_signals()?;
            let outcome = trainer::train(&TrainOptions {
                config,
                runs,
                name,
                device,
                plugin_dirs: plugins,
                stop,
                echo: !quiet,
            })?;
            let dir = outcome.folder.dir.display();
            match outcome.status.state {
                State::Failed => {
                    eprintln!(
                        "run {dir} failed: {}",
                        outcome.status.error.as_deref().unwrap_or("unknown error")
                    );
                    Ok(ExitCode::FAILURE)
                }
                state => {
                    eprintln!("run {dir} {}", state.as_str());
                    Ok(ExitCode::SUCCESS)
                }
            }
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
            listing::runs(&runs, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plugins {
            command: PluginsCommand::Ls { plugins, json },
        }) => {
            listing::plugins(&plugins, json)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Plugins {
            command: PluginsCommand::Describe { path, json },
        }) => {
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

/// SIGTERM and SIGINT ask the runner to stop after the current step.
pub(crate) fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    Ok(stop)
}

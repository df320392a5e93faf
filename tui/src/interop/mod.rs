//! Other tools' files: reading the runs PyTorch, Keras and TensorFlow trainers log
//! (TensorBoard event files, Keras CSVLogger histories) so the dashboard shows them beside
//! gantry's runs, and writing a TensorBoard event file next to `scalars.csv` so
//! `tensorboard --logdir RUNS` shows gantry's runs.
//!
//! [`tfevents`] owns the event-file format, [`keras_csv`] the CSV histories,
//! [`foreign`] finds and follows foreign runs under a run root, and [`scalar_log`] is the
//! runner's scalar output (scalars.csv through [`crate::runfs`], plus the event file).
//! Nothing here knows about the dashboard's types or the plugin ABI.

pub mod foreign;
pub mod keras_csv;
pub mod scalar_log;
pub mod tfevents;

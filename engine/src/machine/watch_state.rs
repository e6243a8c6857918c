//! A watch's state: its recent samples, the breach clock and missing data.

use serde::{Deserialize, Serialize};

use super::Timestamp;

/// A watch of a running phase: its recent samples and where its condition stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WatchState {
    /// The watch's id.
    pub id: String,
    /// Samples taken in this phase attempt.
    #[serde(default)]
    pub taken: u64,
    /// The most recent samples, oldest first (at most [`WATCH_WINDOW`]).
    #[serde(default)]
    pub samples: Vec<Sample>,
    /// When the current run of breaching samples began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaching_since: Option<Timestamp>,
    /// Breaching samples in a row.
    #[serde(default)]
    pub breaching_run: u32,
    /// When the current run of samples without data began (no_data = inconclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_since: Option<Timestamp>,
    /// Samples without data in a row.
    #[serde(default)]
    pub no_data_run: u32,
    /// Whether it fired and has not seen a healthy sample since.
    #[serde(default)]
    pub firing: bool,
    /// Whether missing data lasted the watch's `for` and no data has come since.
    #[serde(default)]
    pub inconclusive: bool,
    /// Why a person must decide, until the instance halts for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_data_reason: Option<String>,
}

/// How many samples a watch keeps in state; the log keeps them all.
pub const WATCH_WINDOW: usize = 20;

/// One sample of a watch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When it was taken.
    pub at: Timestamp,
    /// The value, if the agent returned one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// What it meant.
    pub verdict: SampleVerdict,
}

/// What one sample meant for a watch's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SampleVerdict {
    /// The breach condition held.
    Breach,
    /// It did not.
    Ok,
    /// No value (or the condition could not be applied to it).
    NoData,
}

impl SampleVerdict {
    /// The verdict's name.
    pub fn name(self) -> &'static str {
        match self {
            SampleVerdict::Breach => "breach",
            SampleVerdict::Ok => "ok",
            SampleVerdict::NoData => "no_data",
        }
    }
}

impl WatchState {
    /// A watch with no samples.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            taken: 0,
            samples: Vec::new(),
            breaching_since: None,
            breaching_run: 0,
            no_data_since: None,
            no_data_run: 0,
            firing: false,
            inconclusive: false,
            no_data_reason: None,
        }
    }

    /// When the latest sample was taken.
    pub fn last_at(&self) -> Option<Timestamp> {
        self.samples.last().map(|s| s.at)
    }
}

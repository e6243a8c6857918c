//! What listings, the API and reports call an instance's status.

use serde::{Deserialize, Serialize};

/// What listings, the API and reports call an instance's status: the
/// instance's own status refined by its phases (a running instance whose
/// phases all wait at gates is `awaiting_approval`), plus `quarantined` for
/// an instance whose records do not decode. One enum, so a misspelt status
/// is a compile error and the CLI's `--status` values come from here.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
    strum::VariantArray,
    strum::Display,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[cfg_attr(feature = "cli", clap(rename_all = "snake_case"))]
pub enum EffectiveStatus {
    /// Work is under way (or about to be: a trigger occurrence waits to be acted on).
    Running,
    /// Every phase passed and a scheduled phase will run again.
    Scheduled,
    /// Waiting for people: at a gate, or at a trigger's halt.
    AwaitingApproval,
    /// A gate was put on hold for remediation.
    OnHold,
    /// An operator (or missing watch data) halted it.
    Halted,
    /// Compensations are running.
    RollingBack,
    /// Every phase passed.
    Completed,
    /// A phase failed.
    Failed,
    /// An operator cancelled it.
    Cancelled,
    /// Its rollback finished.
    RolledBack,
    /// Its records do not decode: nothing runs until an operator looks.
    Quarantined,
}

impl EffectiveStatus {
    /// The name listings and the API use (`awaiting_approval`).
    pub fn as_str(self) -> &'static str {
        self.into()
    }

    /// True for the statuses an instance does not leave on its own.
    pub fn is_final(self) -> bool {
        match self {
            EffectiveStatus::Completed | EffectiveStatus::Cancelled | EffectiveStatus::RolledBack => true,
            EffectiveStatus::Running
            | EffectiveStatus::Scheduled
            | EffectiveStatus::AwaitingApproval
            | EffectiveStatus::OnHold
            | EffectiveStatus::Halted
            | EffectiveStatus::RollingBack
            | EffectiveStatus::Failed
            | EffectiveStatus::Quarantined => false,
        }
    }
}

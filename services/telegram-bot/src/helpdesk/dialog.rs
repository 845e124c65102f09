//! Where a person is in a helpdesk dialog: one [`Step`] with its data, stored in
//! `telegram.helpdesk_dialogs` as the step's name and its data (JSONB).
//!
//! A dialog left alone ends by itself: a step older than [`Step::lasts`] counts as idle, so
//! a person who started something and went away is not caught in it the next time they
//! write (their message goes to the operators, as any message outside a dialog).

use std::time::Duration;

use domain::Company;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::store::DialogRow;

/// How long a step waits for the person's next message.
pub const STEP_LASTS: Duration = Duration::from_secs(60 * 60);

/// How long the comment step waits for more (photos of an album come as several messages).
pub const COMMENT_LASTS: Duration = Duration::from_secs(10 * 60);

/// A step of a dialog and what it has collected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", content = "data", rename_all = "snake_case")]
pub enum Step {
    /// No dialog: free text goes to the operators.
    Idle,
    /// Registration: private person or company employee?
    RegisterKind,
    /// Registration: the company's INN.
    RegisterInn,
    /// Registration: is the company found by the INN theirs?
    RegisterCompany {
        /// The company found.
        company: Company,
    },
    /// Registration: the full name.
    RegisterName {
        /// The confirmed company, for an employee.
        company: Option<Company>,
    },
    /// Registration: the phone number.
    RegisterPhone {
        /// The confirmed company, for an employee.
        company: Option<Company>,
        /// As typed.
        full_name: String,
    },
    /// The next message is the description of a new issue.
    IssueDescription,
    /// Waiting for the press of an issue to comment on.
    CommentPick,
    /// The next messages are comments on this issue.
    CommentText {
        /// The issue.
        issue_id: i64,
    },
}

impl Step {
    /// The step's name as stored (`idle`, `register_inn` …).
    pub fn name(&self) -> &'static str {
        match self {
            Step::Idle => "idle",
            Step::RegisterKind => "register_kind",
            Step::RegisterInn => "register_inn",
            Step::RegisterCompany { .. } => "register_company",
            Step::RegisterName { .. } => "register_name",
            Step::RegisterPhone { .. } => "register_phone",
            Step::IssueDescription => "issue_description",
            Step::CommentPick => "comment_pick",
            Step::CommentText { .. } => "comment_text",
        }
    }

    /// The step's data as stored; `None` for a step without any.
    pub fn data(&self) -> Option<Value> {
        serde_json::to_value(self)
            .ok()
            .and_then(|mut v| v.get_mut("data").map(Value::take))
    }

    /// How long the step waits; `None`: forever (idle).
    pub fn lasts(&self) -> Option<Duration> {
        match self {
            Step::Idle => None,
            Step::CommentText { .. } => Some(COMMENT_LASTS),
            _ => Some(STEP_LASTS),
        }
    }

    /// A stored step as of `now`: idle when it has expired, or is not one this build knows
    /// (a newer build's, kept in the database across a roll-back).
    pub fn of(row: &DialogRow, now: OffsetDateTime) -> Self {
        let mut v = json!({ "step": row.step });
        if let Some(data) = &row.data {
            v["data"] = data.clone();
        }
        let step: Step = match serde_json::from_value(v) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(step = %row.step, error = %e, "unknown dialog step; treated as idle");
                return Step::Idle;
            }
        };
        match step.lasts() {
            Some(lasts) if now - row.updated_at > lasts => Step::Idle,
            _ => step,
        }
    }

    /// `true` outside a dialog.
    pub fn is_idle(&self) -> bool {
        matches!(self, Step::Idle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(step: &Step, age: Duration) -> DialogRow {
        DialogRow {
            step: step.name().to_owned(),
            data: step.data(),
            registrations: 0,
            updated_at: OffsetDateTime::now_utc() - age,
        }
    }

    #[test]
    fn steps_round_trip_through_name_and_data() {
        let now = OffsetDateTime::now_utc();
        for step in [
            Step::Idle,
            Step::RegisterKind,
            Step::RegisterCompany {
                company: Company {
                    id: 3,
                    name: "ООО «Ромашка»".into(),
                },
            },
            Step::RegisterPhone {
                company: None,
                full_name: "Иванов Иван".into(),
            },
            Step::CommentText { issue_id: 12 },
        ] {
            assert_eq!(Step::of(&row(&step, Duration::ZERO), now), step);
        }
        assert_eq!(Step::RegisterKind.data(), None);
        assert_eq!(
            Step::CommentText { issue_id: 12 }.data(),
            Some(json!({"issue_id": 12}))
        );
    }

    #[test]
    fn a_step_left_alone_or_unknown_is_idle() {
        let now = OffsetDateTime::now_utc();
        let old = row(&Step::RegisterInn, STEP_LASTS + Duration::from_secs(1));
        assert_eq!(Step::of(&old, now), Step::Idle);
        let comment = Step::CommentText { issue_id: 1 };
        assert_eq!(
            Step::of(&row(&comment, Duration::from_secs(60)), now),
            comment
        );
        assert_eq!(
            Step::of(&row(&comment, COMMENT_LASTS + Duration::from_secs(1)), now),
            Step::Idle
        );
        let mut unknown = row(&Step::RegisterInn, Duration::ZERO);
        unknown.step = "register_telepathy".into();
        assert_eq!(Step::of(&unknown, now), Step::Idle);
    }
}

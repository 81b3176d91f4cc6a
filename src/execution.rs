//! The vocabulary of executions and messages: every state restop stores, serves and counts,
//! each with its one text table. Depends on nothing else in the crate, so every layer can
//! use it without importing another.

use chrono::{DateTime, Utc};

/// An enum stored and served as fixed texts: gives it `ALL`, `as_str`, `FromStr`, `Display`
/// and `Serialize`. Variants are written `Variant = "text"`; the text table is the only one.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $text:expr ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

        }

        impl $crate::execution::TextEnum for $name {
            fn all() -> &'static [Self] {
                Self::ALL
            }

            fn text(self) -> &'static str {
                self.as_str()
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::execution::UnknownText;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == s)
                    .ok_or_else(|| $crate::execution::UnknownText {
                        kind: stringify!($name),
                        text: s.to_owned(),
                    })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

pub(crate) use text_enum;

/// What [`text_enum!`] gives an enum, for code that works with any of them (filters that
/// accept one value of a list, tests that compare the lists with `openapi.yaml`).
pub trait TextEnum:
    Copy + Eq + std::str::FromStr<Err = UnknownText> + std::fmt::Display + 'static
{
    fn all() -> &'static [Self];
    fn text(self) -> &'static str;

    /// Every value's text, in declaration order.
    fn texts() -> Vec<&'static str> {
        Self::all().iter().map(|value| value.text()).collect()
    }
}

/// A text that names no value of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{text}' is not a known {kind}")]
pub struct UnknownText {
    pub kind: &'static str,
    pub text: String,
}

/// The text of both an execution status and a notification state.
const PENDING: &str = "pending";
/// The text of both an execution status and a notification state.
const FAILED: &str = "failed";

text_enum! {
    /// Where an execution stands. `pending` and `running` are active; the rest are final.
    pub enum Status {
        Pending = PENDING,
        Running = "running",
        Succeeded = "succeeded",
        Failed = FAILED,
        Cancelled = "cancelled",
        Skipped = "skipped",
    }
}

impl Status {
    /// The statuses of an execution that still has work to do.
    pub const ACTIVE: [Status; 2] = [Status::Pending, Status::Running];

    pub fn is_active(self) -> bool {
        Self::ACTIVE.contains(&self)
    }
}

text_enum! {
    /// Why an execution ended.
    pub enum Outcome {
        Stopped = "stopped",
        AlreadyStopped = "already_stopped",
        Gone = "gone",
        NotProtected = "not_protected",
        NotStoppable = "not_stoppable",
        DryRun = "dry_run",
        Timeout = "timeout",
        AccessDenied = "access_denied",
        Cancelled = "cancelled",
        /// Step Functions mode cannot reach a resource outside the state machine's region.
        Unsupported = "unsupported",
        /// A forced start found too late: older than RESTOP_MAX_DURATION.
        Expired = "expired",
        /// A forced start found in RDS's event log after the resource was stopped again:
        /// whatever runs now was started deliberately.
        Superseded = "superseded",
        Error = "error",
        /// Protected, but its owner's hold tag lets forced starts run until a date.
        Held = "held",
    }
}

impl Outcome {
    /// The status an execution that ends this way has.
    pub fn status(self) -> Status {
        match self {
            Self::Stopped | Self::AlreadyStopped | Self::Gone | Self::DryRun => Status::Succeeded,
            Self::NotProtected
            | Self::NotStoppable
            | Self::Unsupported
            | Self::Expired
            | Self::Superseded
            | Self::Held => Status::Skipped,
            Self::Cancelled => Status::Cancelled,
            Self::Timeout | Self::AccessDenied | Self::Error => Status::Failed,
        }
    }
}

text_enum! {
    /// Where an execution is in its work.
    pub enum Phase {
        /// Read the resource's tags.
        CheckProtection = "check_protection",
        /// Poll until the resource is `available`.
        WaitAvailable = "wait_available",
        /// Read the tags again right before the stop: the wait may have lasted hours.
        RecheckProtection = "recheck_protection",
        /// Call StopDBInstance / StopDBCluster.
        Stop = "stop",
        /// Poll until the resource is `stopped`.
        WaitStopped = "wait_stopped",
        /// Step Functions mode: StartExecution.
        StartStateMachine = "start_state_machine",
        /// Step Functions mode: DescribeExecution until it ends.
        FollowStateMachine = "follow_state_machine",
        /// Step Functions mode, after a cancel: StopExecution on its run.
        AbortStateMachine = "abort_state_machine",
        /// Finished; only a pending notification may remain.
        Done = "done",
    }
}

text_enum! {
    /// Who carries out an execution's steps.
    pub enum Mode {
        /// restop's own engine.
        Internal = "internal",
        /// An AWS Step Functions state machine, followed by restop.
        StepFunctions = "step_functions",
    }
}

text_enum! {
    /// What started an execution.
    pub enum TriggerKind {
        /// An RDS event delivered by SNS.
        Sns = "sns",
        /// An operator's `POST /v1/executions`.
        Manual = "manual",
        /// A forced start found in RDS's event log (`DescribeEvents`) that SNS had not
        /// delivered.
        Catchup = "catchup",
    }
}

text_enum! {
    /// The end-of-execution notification to `RESTOP_NOTIFY_URL`.
    pub enum NotifyState {
        Pending = PENDING,
        Sent = "sent",
        Failed = FAILED,
    }
}

text_enum! {
    /// What restop did with an SNS message.
    pub enum Disposition {
        /// An RDS event restop acts on.
        Accepted = "accepted",
        /// Authentic, but nothing to do (other events, non-RDS messages).
        Ignored = "ignored",
        /// A "started" event that made a waiting execution look at its database now.
        Wakeup = "wakeup",
        /// A confirmation is being attempted.
        Confirming = "confirming",
        Confirmed = "confirmed",
        ConfirmationFailed = "confirmation_failed",
        /// Auto-confirm is off: an operator confirms.
        PendingConfirmation = "pending_confirmation",
        Unsubscribed = "unsubscribed",
    }
}

text_enum! {
    /// What restop knows of its subscription to a topic.
    pub enum SubscriptionStatus {
        PendingConfirmation = "pending_confirmation",
        Confirmed = "confirmed",
        ConfirmationFailed = "confirmation_failed",
        Unsubscribed = "unsubscribed",
    }
}

text_enum! {
    /// How a subscription was confirmed: decides who can unsubscribe it.
    pub enum ConfirmedWith {
        /// The SNS API with `AuthenticateOnUnsubscribe`: only the topic's owner can
        /// unsubscribe it.
        SnsApi = "sns_api",
        /// A visit of its SubscribeURL: anyone holding the subscription's ARN can
        /// unsubscribe it.
        SubscribeUrl = "subscribe_url",
    }
}

text_enum! {
    /// The `Type` of an SNS message.
    pub enum MessageType {
        Notification = "Notification",
        SubscriptionConfirmation = "SubscriptionConfirmation",
        UnsubscribeConfirmation = "UnsubscribeConfirmation",
    }
}

/// Counts for /metrics, read from the database so every replica reports the same.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecutionStats {
    /// Executions by status and outcome (`None` while active).
    pub by_status: Vec<(Status, Option<Outcome>, i64)>,
    /// How late the most overdue job is.
    pub oldest_due: Option<DateTime<Utc>>,
    /// Active executions past their deadline: a forced start not undone in time.
    pub overdue: i64,
}

impl ExecutionStats {
    /// Pending or running executions.
    pub fn active(&self) -> i64 {
        self.by_status
            .iter()
            .filter(|(status, _, _)| status.is_active())
            .map(|(_, _, count)| count)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_round_trip() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(*status));
        }
        for outcome in Outcome::ALL {
            assert_eq!(outcome.to_string().parse::<Outcome>(), Ok(*outcome));
        }
        assert_eq!(
            "paused".parse::<Status>(),
            Err(UnknownText {
                kind: "Status",
                text: "paused".into()
            })
        );
        assert_eq!(
            serde_json::to_string(&Phase::WaitAvailable).unwrap(),
            "\"wait_available\""
        );
    }

    #[test]
    fn outcomes_end_in_final_statuses() {
        for outcome in Outcome::ALL {
            assert!(!outcome.status().is_active(), "{outcome}");
        }
    }

    #[test]
    fn active_counts_pending_and_running() {
        let stats = ExecutionStats {
            by_status: vec![
                (Status::Pending, None, 2),
                (Status::Running, None, 3),
                (Status::Succeeded, Some(Outcome::Stopped), 7),
            ],
            oldest_due: None,
            overdue: 0,
        };
        assert_eq!(stats.active(), 5);
    }
}

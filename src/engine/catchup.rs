//! Catch-up from RDS's own event log. SNS gives an HTTP(S) endpoint about a minute of
//! retries (an hour at most with a custom delivery policy): a restop that is down longer
//! would lose every forced start announced meanwhile, and those databases would run, and
//! bill, for another week. So every `RESTOP_CATCHUP_INTERVAL`, for each account and region
//! it watches, restop reads the events RDS keeps for 14 days (`DescribeEvents`) and starts
//! an execution for each forced start no execution knows yet.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::decide::{Policy, backoff};
use super::{Launcher, Trigger};
use crate::aws::arn::{ResourceArn, ResourceKind};
use crate::aws::{Aws, AwsFailure, LoggedEvent};
use crate::clock::Clock;
use crate::execution::{Outcome, TriggerKind};
use crate::metrics::Metrics;
use crate::rds::messages::{forced_start, stopped};
use crate::store::{ForcedStart, Store, Sweep};

/// Each sweep starts this much before the previous one ended: RDS may log an event a
/// little after its time.
const OVERLAP: Duration = Duration::from_secs(5 * 60);
/// Sweeps claimed at once.
const SWEEPS_PER_ROUND: u32 = 16;
/// How often due sweeps are looked for.
const TICK: Duration = Duration::from_secs(1);

/// What the sweeper needs to know.
pub struct CatchupSettings {
    pub interval: Duration,
    pub lookback: Duration,
    pub max_duration: Duration,
    pub lease: Duration,
    pub owner: String,
    /// For the backoff of failed sweeps.
    pub policy: Policy,
    /// RESTOP_EVENT_IDS: the forced starts acted on (0154 instances, 0153 clusters).
    pub event_ids: Vec<String>,
}

pub struct Catchup {
    store: Arc<dyn Store>,
    aws: Arc<dyn Aws>,
    launcher: Launcher,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    settings: CatchupSettings,
}

impl Catchup {
    pub fn new(
        store: Arc<dyn Store>,
        aws: Arc<dyn Aws>,
        launcher: Launcher,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        settings: CatchupSettings,
    ) -> Self {
        Self {
            store,
            aws,
            launcher,
            clock,
            metrics,
            settings,
        }
    }

    /// Sweeps `places` (account, region) at once, then once per interval each, until
    /// `stop` fires; forgets the sweeps of places no longer in the settings. Replicas
    /// share the sweeps the way they share jobs.
    pub async fn run(self, places: Vec<(String, String)>, stop: CancellationToken) {
        if let Err(e) = self.store.ensure_sweeps(&places, self.clock.now()).await {
            tracing::error!(error = %e, "could not record the accounts and regions to sweep");
        }
        match self.store.retire_sweeps(&places).await {
            Ok(retired) if retired.is_empty() => {}
            Ok(retired) => {
                let names: Vec<String> = retired
                    .iter()
                    .map(|(account, region)| format!("{account}/{region}"))
                    .collect();
                tracing::warn!(
                    places = %names.join(", "),
                    "catch-up no longer sweeps these accounts and regions: they are not in \
                     RESTOP_TOPIC_ARNS / RESTOP_ACCOUNTS"
                );
            }
            Err(e) => tracing::warn!(error = %e, "could not forget the sweeps of removed places"),
        }
        loop {
            // Sweeps read (and record what they find, each forced start on its own): one
            // cut short by shutdown is given back, and the next restop repeats it at once.
            let swept = tokio::select! {
                swept = self.round(&places) => swept,
                _ = stop.cancelled() => {
                    self.release().await;
                    return;
                }
            };
            match swept {
                // A full round: more may be due (after a start, every place is), so the
                // next round follows at once rather than a tick later.
                Ok(count) if count == SWEEPS_PER_ROUND as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not claim catch-up sweeps"),
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Claims the due sweeps of `places` and runs them; returns how many.
    pub async fn round(
        &self,
        places: &[(String, String)],
    ) -> Result<usize, crate::store::StoreError> {
        let s = &self.settings;
        let sweeps = self
            .store
            .claim_sweeps(
                &s.owner,
                places,
                self.clock.now(),
                s.lease,
                SWEEPS_PER_ROUND,
            )
            .await?;
        let count = sweeps.len();
        // Each sweep reads another account and region, paced by that place's own RDS
        // budget: one after the other, 8,500 places would take longer than an interval.
        futures::stream::iter(sweeps)
            .for_each_concurrent(None, |sweep| self.sweep(sweep))
            .await;
        Ok(count)
    }

    /// Reads one account and region's event log since the last sweep and records every
    /// forced start in it; a failure is retried with backoff and never blocks anything else.
    async fn sweep(&self, sweep: Sweep) {
        let now = self.clock.now();
        let start = match sweep.swept_until {
            Some(until) => until - OVERLAP,
            None => now - self.settings.lookback,
        };
        let (result, next) = match self.read_and_record(&sweep, start, now).await {
            Ok(()) => {
                self.metrics.catchup_sweep("ok");
                // Places swept together (all of them, after a start) part: each keeps to
                // its own moment of the interval, so the sweeps run evenly, not in waves.
                let next = super::on_own_grid(
                    now + self.settings.interval,
                    self.settings.interval,
                    &[&sweep.account, &sweep.region],
                );
                (Ok(now), next)
            }
            Err(failure) => {
                self.metrics.catchup_sweep("failed");
                let wait = backoff(sweep.failures, &self.settings.policy, rand::random())
                    .min(self.settings.interval);
                tracing::warn!(
                    account = %sweep.account,
                    region = %sweep.region,
                    error = %failure,
                    "catch-up sweep failed; trying again in {}s",
                    wait.as_secs()
                );
                (Err(failure.to_string()), now + wait)
            }
        };
        match self.store.complete_sweep(&sweep, result, next, now).await {
            Ok(true) => {}
            Ok(false) => tracing::info!("catch-up sweep taken over; result discarded"),
            Err(e) => tracing::warn!(error = %e, "could not record the catch-up sweep"),
        }
    }

    async fn read_and_record(
        &self,
        sweep: &Sweep,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<(), AwsFailure> {
        // The whole window first: whether a forced start still matters depends on what
        // the log says happened to the resource after it.
        let mut events = Vec::new();
        let mut marker = None;
        loop {
            let page = self
                .aws
                .describe_events(&sweep.account, &sweep.region, start, end, marker)
                .await?;
            // The log may answer a wider window than asked (and emulators do).
            events.extend(
                page.events
                    .into_iter()
                    .filter(|event| event.date >= start && event.date <= end),
            );
            marker = page.marker;
            if marker.is_none() {
                break;
            }
        }
        let stops = last_stops(&events);
        for event in &events {
            let Some(kind) = forced_start(&event.source_type, &event.message) else {
                continue;
            };
            let event_id = forced_start_id(kind);
            if !self.settings.event_ids.iter().any(|id| id == event_id) {
                continue; // RESTOP_EVENT_IDS leaves these alone, on SNS and here alike
            }
            let resource = match resource_of(sweep, kind, event) {
                Ok(resource) => resource,
                Err(e) => {
                    tracing::warn!(error = %e, "a forced start in the event log names no resource restop knows how to stop");
                    continue;
                }
            };
            let stopped_since = stops
                .get(&(event.source_type.as_str(), event.source_identifier.as_str()))
                .copied()
                .filter(|stopped| *stopped > event.date);
            self.record(resource, kind, event.date, end, stopped_since)
                .await?;
        }
        Ok(())
    }

    /// Gives back the sweeps of a round cut short, within [`RELEASE_TIMEOUT`]: at worst
    /// their leases run out.
    async fn release(&self) {
        let released = self.store.release_sweeps(&self.settings.owner);
        match tokio::time::timeout(RELEASE_TIMEOUT, released).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not give back the sweeps cut short"),
            Err(_) => tracing::warn!("giving back the sweeps cut short took too long"),
        }
    }

    async fn record(
        &self,
        resource: ResourceArn,
        kind: ResourceKind,
        event_at: DateTime<Utc>,
        now: DateTime<Utc>,
        stopped_since: Option<DateTime<Utc>>,
    ) -> Result<(), AwsFailure> {
        let event_id = forced_start_id(kind);
        let execution = self.launcher.execution(
            &resource,
            Trigger {
                kind: TriggerKind::Catchup,
                message_id: None,
                event_id: Some(event_id.into()),
                event_at,
                dry_run: false,
                skip_tag_check: false,
            },
            now,
        );
        let expired = (now - event_at)
            .to_std()
            .is_ok_and(|age| age > self.settings.max_duration);
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let superseded;
        let ended = match stopped_since {
            // Stopped after the forced start (by a person, a script, restop): the forced
            // start is over, and whatever runs now was started deliberately since.
            Some(stopped) => {
                superseded = format!(
                    "stopped at {} after this forced start (RDS's event log): nothing left to \
                     stop; a later start is deliberate",
                    at(stopped)
                );
                Some((Outcome::Superseded, superseded.as_str()))
            }
            None if expired => Some((Outcome::Expired, TOO_LATE)),
            None => None,
        };
        let note = format!(
            "forced start ({event_id} at {}) found in RDS's event log: no SNS message had \
             announced it",
            at(event_at)
        );
        let found = self
            .store
            .record_forced_start(&execution, ended, &note, self.launcher.notify)
            .await
            .map_err(|e| AwsFailure::Transient(format!("could not record a forced start: {e}")))?;
        match found {
            ForcedStart::New(id) => {
                tracing::warn!(execution_id = %id, resource = %resource.arn, "forced start found in RDS's event log; execution started");
                self.metrics.catchup_forced_start("new");
                self.launcher.wake();
            }
            ForcedStart::Known(_) => self.metrics.catchup_forced_start("known"),
            ForcedStart::Ended(id, outcome) => {
                tracing::warn!(execution_id = %id, resource = %resource.arn, %outcome, "forced start found in RDS's event log, over already");
                self.metrics.catchup_forced_start(outcome.as_str());
                self.metrics.execution_finished(outcome);
            }
        }
        Ok(())
    }
}

/// At shutdown, how long giving back a sweep cut short may take.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(1);

const TOO_LATE: &str = "found in RDS's event log after RESTOP_MAX_DURATION: too late to act on";

/// The event id of a forced start of `kind` (the log gives messages, not ids).
fn forced_start_id(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::DbInstance => "RDS-EVENT-0154",
        ResourceKind::DbCluster => "RDS-EVENT-0153",
    }
}

/// When each resource (source type, identifier) was last stopped, per the events read
/// (RDS-EVENT-0087 / 0150). "Started" events (0088 / 0151) end every start, forced ones
/// too, so they say nothing about whether a forced start still matters.
fn last_stops(events: &[LoggedEvent]) -> HashMap<(&str, &str), DateTime<Utc>> {
    let mut stops: HashMap<(&str, &str), DateTime<Utc>> = HashMap::new();
    for event in events {
        if stopped(&event.source_type, &event.message).is_some() {
            let last = stops
                .entry((&event.source_type, &event.source_identifier))
                .or_insert(event.date);
            *last = (*last).max(event.date);
        }
    }
    stops
}

/// The DB instance or cluster a logged forced start is about, in the swept account and
/// region (whatever the event's ARN says, the log is that account's and region's).
fn resource_of(
    sweep: &Sweep,
    kind: ResourceKind,
    event: &LoggedEvent,
) -> Result<ResourceArn, String> {
    let partition = crate::aws::arn::partition_of(&sweep.region).unwrap_or("aws");
    let arn = format!(
        "arn:{partition}:rds:{}:{}:{}:{}",
        sweep.region,
        sweep.account,
        kind.arn_segment(),
        event.source_identifier
    );
    arn.parse()
}

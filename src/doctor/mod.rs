//! `restop doctor`: checks, without changing anything, that the whole chain from RDS to
//! restop works: the database, restop's credentials and member roles, each allowed topic
//! and its subscription to restop, the RDS event subscriptions of every watched account
//! and region, the permissions restop needs, and which protected databases RDS can never
//! stop. A mistake anywhere in that chain fails silently at run time (no event arrives), so
//! each check says what is wrong and what to do.
//!
//! Each file holds one group of checks, each a function that returns its check lines;
//! [`examine`] runs them in the order the report lists them.

mod credentials;
mod database;
mod databases;
mod delivery;
mod event_subscriptions;
pub mod filter_policy;
mod permissions;
mod settings;
mod simulation;
mod state_machine;
mod topics;

use std::collections::BTreeSet;
use std::fmt;

use aws_config::SdkConfig;
use aws_sdk_rds::config::Region;
use serde::Serialize;

use crate::aws::arn::Arn;
use crate::aws::{Accounts, AwsFailure, SdkAws};
use crate::config::{DoctorConfig, ServeConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Ok,
    Warn,
    Fail,
}

impl fmt::Display for CheckStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that `{:<4}` lines the checks up.
        f.pad(match self {
            Self::Ok => "ok",
            Self::Warn => "warn",
            Self::Fail => "fail",
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: CheckStatus,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, status: CheckStatus, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            status,
            detail: detail.into(),
        }
    }
}

/// Every check, in the order they ran; `ok` is false when any failed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check: status, name, what was found and what to do.
    pub fn text(&self) -> String {
        self.checks
            .iter()
            .map(|c| format!("{:<4} {}: {}\n", c.status, c.name, c.detail))
            .collect()
    }
}

/// Runs every check with `base` as restop's own AWS settings (credentials, endpoint).
pub async fn examine(config: &DoctorConfig, base: SdkConfig) -> Report {
    let serve = &config.serve;
    let topics = &serve.sns.topic_arns.0;
    let accounts = Accounts::from(&serve.accounts);
    let mut reach = Reach {
        sdk: SdkAws::new(base.clone(), accounts.clone()),
        base,
        unusable_accounts: BTreeSet::new(),
    };
    let mut checks = vec![database::check(&serve.database).await];
    checks.extend(settings::checks(config));
    let (credentials, own) = credentials::own(&reach.base).await;
    checks.push(credentials);
    if let Some((own, caller)) = own {
        for account in accounts.members() {
            let role = credentials::role(&reach.sdk, &account).await;
            if role.status == CheckStatus::Fail {
                reach.unusable_accounts.insert(account);
            }
            checks.push(role);
        }
        for topic in topics {
            checks.extend(topics::checks(&reach, config, topic, &own, &accounts).await);
        }
        for (account, region) in accounts.watched(topics) {
            if reach.unusable_accounts.contains(&account) {
                continue;
            }
            checks.push(event_subscriptions::check(&reach, serve, &account, &region).await);
            checks.push(permissions::check(&reach, serve, &account, &region).await);
            checks.push(databases::protected(&reach, &serve.engine, &account, &region).await);
        }
        checks.extend(simulations(&reach, serve, &accounts, &own, &caller).await);
        checks.extend(state_machine::check(&reach.base, serve, &accounts).await);
    }
    let ok = !checks.iter().any(|c| c.status == CheckStatus::Fail);
    Report { ok, checks }
}

/// The `simulation` checks: restop's own identity, then each member role restop can
/// assume (IAM answers for the principals of the account it is called in).
async fn simulations(
    reach: &Reach,
    serve: &ServeConfig,
    accounts: &Accounts,
    own: &str,
    caller: &str,
) -> Vec<Check> {
    let partition = Arn::parse(caller).map_or("aws", |arn| arn.partition);
    let own_check = match simulation::Principal::of_caller(caller) {
        Ok(principal) => {
            let grant = if serve.engine.state_machine_arn.is_some() {
                "deploy/iam/restop-step-functions-policy.json (deploy/cloudformation/restop.yaml)"
            } else {
                "deploy/iam/restop-internal-policy.json (deploy/cloudformation/restop.yaml)"
            };
            let iam = simulation::iam_client(&reach.base, partition);
            let probes = simulation::probes(serve, accounts, &principal, true);
            simulation::check(&iam, &principal, &probes, grant).await
        }
        Err(why) => {
            let detail = format!("could not check the permissions of {caller}: {why}");
            Check::new(format!("simulation {own}"), CheckStatus::Warn, detail)
        }
    };
    let mut checks = vec![own_check];
    for account in accounts.members() {
        let Some(role) = accounts.role(&account, partition) else {
            continue;
        };
        if reach.unusable_accounts.contains(&account) {
            continue;
        }
        let member = simulation::Principal::member(&account, partition, role);
        let name = format!("simulation {account}");
        let config = match reach.config_in(&account).await {
            Ok(config) => config,
            Err(why) => {
                let detail = format!("could not check the permissions of {}: {why}", member.arn);
                checks.push(Check::new(name, CheckStatus::Warn, detail));
                continue;
            }
        };
        let iam = simulation::iam_client(&config, &member.partition);
        let probes = simulation::probes(serve, accounts, &member, false);
        let grant = "deploy/iam/member-role-policy.json (deploy/cloudformation/member-role.yaml)";
        checks.push(simulation::check(&iam, &member, &probes, grant).await);
    }
    checks
}

/// How the checks reach AWS: restop's own settings, and per account the credentials the
/// engine would use there.
struct Reach {
    base: SdkConfig,
    sdk: SdkAws,
    /// Member accounts whose role could not be assumed: their checks are not attempted.
    unusable_accounts: BTreeSet<String>,
}

impl Reach {
    /// The settings for calls in `account`, or why there are none.
    async fn config_in(&self, account: &str) -> Result<SdkConfig, String> {
        if self.unusable_accounts.contains(account) {
            return Err(format!(
                "cannot act in account {account} (see its role check)"
            ));
        }
        self.sdk.config_in(account).await.map_err(|e| unusable(&e))
    }

    async fn rds(&self, account: &str, region: &str) -> Result<aws_sdk_rds::Client, String> {
        let config = self.config_in(account).await?;
        Ok(aws_sdk_rds::Client::from_conf(
            aws_sdk_rds::config::Builder::from(&config)
                .region(Region::new(region.to_owned()))
                .build(),
        ))
    }

    async fn sns(&self, account: &str, region: &str) -> Result<aws_sdk_sns::Client, String> {
        let config = self.config_in(account).await?;
        Ok(aws_sdk_sns::Client::from_conf(
            aws_sdk_sns::config::Builder::from(&config)
                .region(Region::new(region.to_owned()))
                .build(),
        ))
    }
}

/// Why restop has no credentials for an account.
fn unusable(failure: &AwsFailure) -> String {
    match failure {
        AwsFailure::AccessDenied { action, message } => format!("{action}: {message}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_report_fails_as_text_one_line_per_check() {
        let report = Report {
            ok: false,
            checks: vec![
                Check::new("database", CheckStatus::Ok, "fine"),
                Check::new("topics", CheckStatus::Fail, "empty"),
            ],
        };
        assert_eq!(report.text(), "ok   database: fine\nfail topics: empty\n");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json["checks"][1],
            json!({"name": "topics", "status": "fail", "detail": "empty"})
        );
    }
}

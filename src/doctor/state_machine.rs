//! Step Functions mode: the state machine restop starts executions of.

use std::collections::BTreeSet;

use aws_config::SdkConfig;
use aws_sdk_sfn::config::Region;

use super::{Check, CheckStatus};
use crate::aws::Accounts;
use crate::aws::explain;
use crate::config::ServeConfig;

/// The state machine exists, and in the region of every watched database (its tasks call
/// RDS in their own region). No check in internal mode.
pub(super) async fn check(
    base: &SdkConfig,
    serve: &ServeConfig,
    accounts: &Accounts,
) -> Option<Check> {
    let arn = serve.engine.state_machine_arn.as_ref()?;
    let region = arn.region();
    let sfn = aws_sdk_sfn::Client::from_conf(
        aws_sdk_sfn::config::Builder::from(base)
            .region(Region::new(region.to_owned()))
            .build(),
    );
    if let Err(e) = sfn
        .describe_state_machine()
        .state_machine_arn(arn.as_str())
        .send()
        .await
    {
        let detail = format!(
            "states:DescribeStateMachine failed for {arn}: {}; deploy it \
             (deploy/cloudformation/restop.yaml) or correct RESTOP_STATE_MACHINE_ARN",
            explain(&e)
        );
        return Some(Check::new("state_machine", CheckStatus::Fail, detail));
    }
    let elsewhere: BTreeSet<String> = accounts
        .watched(&serve.sns.topic_arns.0)
        .into_iter()
        .map(|(_, r)| r)
        .filter(|r| r != region)
        .collect();
    if elsewhere.is_empty() {
        return Some(Check::new(
            "state_machine",
            CheckStatus::Ok,
            format!("{arn} in {region}"),
        ));
    }
    let detail = format!(
        "{arn} runs in {region} and cannot stop databases in {}: run restop in internal \
         mode, or one restop with a state machine per region",
        elsewhere.into_iter().collect::<Vec<_>>().join(", ")
    );
    Some(Check::new("state_machine", CheckStatus::Fail, detail))
}

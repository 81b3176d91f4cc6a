//! restop's own credentials, and the role it assumes in each member account.

use aws_config::SdkConfig;

use super::{Check, CheckStatus, unusable};
use crate::aws::SdkAws;
use crate::aws::explain;

/// The `credentials` check, and restop's own account and identity's ARN when its
/// credentials work (no AWS check can run without them).
pub(super) async fn own(base: &SdkConfig) -> (Check, Option<(String, String)>) {
    match aws_sdk_sts::Client::new(base)
        .get_caller_identity()
        .send()
        .await
    {
        Ok(identity) => {
            let account = identity.account().unwrap_or_default().to_owned();
            let arn = identity.arn().unwrap_or_default().to_owned();
            let detail = format!("account {account} as {arn}");
            (
                Check::new("credentials", CheckStatus::Ok, detail),
                Some((account, arn)),
            )
        }
        Err(e) => {
            let detail = format!(
                "sts:GetCallerIdentity failed: {}; no AWS check can run",
                explain(&e)
            );
            (Check::new("credentials", CheckStatus::Fail, detail), None)
        }
    }
}

/// The `role` check of a member account: it fails when restop cannot act there.
pub(super) async fn role(sdk: &SdkAws, account: &str) -> Check {
    let name = format!("role {account}");
    let result = async {
        let config = sdk.config_in(account).await.map_err(|e| unusable(&e))?;
        aws_sdk_sts::Client::new(&config)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| explain(&e))
    }
    .await;
    match result {
        Ok(identity) => Check::new(
            name,
            CheckStatus::Ok,
            format!("assumed as {}", identity.arn().unwrap_or_default()),
        ),
        Err(e) => Check::new(
            name,
            CheckStatus::Fail,
            format!(
                "cannot assume restop's role there: {e}; deploy \
                 deploy/cloudformation/member-role.yaml in {account} trusting restop's \
                 role (and RESTOP_EXTERNAL_ID, if set); the account's other checks \
                 are skipped"
            ),
        ),
    }
}

//! The accounts restop may act in besides its own (`RESTOP_ACCOUNTS`), and how.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::Aws;
use super::arn::TopicArn;

#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// Member account -> the role named for it, if one was.
    members: BTreeMap<String, Option<String>>,
    role_name: String,
    pub(super) external_id: Option<String>,
}

impl Accounts {
    /// `members`: each member account and the role named for it, if one was; the others'
    /// role is `role_name`. `external_id` goes with every AssumeRole.
    pub fn new(
        members: impl IntoIterator<Item = (String, Option<String>)>,
        role_name: String,
        external_id: Option<String>,
    ) -> Self {
        Self {
            members: members.into_iter().collect(),
            role_name,
            external_id,
        }
    }

    /// The account-regions restop watches (whose event log the catch-up reads): those of
    /// the allowed topics, and the member accounts in the topics' regions.
    pub fn watched(&self, topics: &[TopicArn]) -> Vec<(String, String)> {
        let mut places: Vec<(String, String)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for topic in topics {
            let accounts = std::iter::once(topic.account().to_owned()).chain(self.members());
            for account in accounts {
                let place = (account, topic.region().to_owned());
                if seen.insert(place.clone()) {
                    places.push(place);
                }
            }
        }
        places
    }

    /// The member accounts' ids.
    pub fn members(&self) -> Vec<String> {
        self.members.keys().cloned().collect()
    }

    /// The role assumed in a member account: the one named for it, else
    /// `arn:<partition>:iam::<account>:role/<RESTOP_ROLE_NAME>`.
    pub fn role(&self, account: &str, partition: &str) -> Option<String> {
        self.members.get(account).map(|named| {
            named.clone().unwrap_or_else(|| {
                format!("arn:{partition}:iam::{account}:role/{}", self.role_name)
            })
        })
    }
}

/// The account of restop's own credentials, once STS has named it. Until then it is
/// unknown, and nothing is waited for: callers treat the unknown account as nobody's.
#[derive(Debug, Clone, Default)]
pub struct OwnAccount(Arc<OnceLock<String>>);

impl OwnAccount {
    /// Already known, for tests and callers that named it themselves.
    pub fn known(account: &str) -> Self {
        let own = Self::default();
        let _ = own.0.set(account.to_owned());
        own
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }

    /// Asks STS until it answers, pausing longer after each failure.
    pub async fn resolve(self, aws: Arc<dyn Aws>) {
        let mut pause = Duration::from_secs(1);
        loop {
            match aws.own_account().await {
                Ok(account) => {
                    let _ = self.0.set(account);
                    return;
                }
                Err(error) => tracing::warn!(
                    error = %error,
                    retry_in = ?pause,
                    "own account unknown: until it is, a topic speaks only for its own account"
                ),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(60));
        }
    }
}

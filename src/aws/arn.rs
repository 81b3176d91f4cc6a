//! The ARNs restop reads, each parsed in one place: the parts every ARN has ([`Arn`]), the
//! three kinds restop names things by ([`ResourceArn`], [`TopicArn`], [`StateMachineArn`]),
//! and the AWS partitions with the region names each one uses, as in the SDK's partition
//! data (`aws`: `^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$`, `aws-cn`: `^cn-\w+-\d+$`, ...).
//! Region names are checked against these shapes rather than a list of regions, so new
//! regions work without a new restop, while names no partition could have are refused
//! before any AWS call.

use std::fmt;
use std::str::FromStr;

use crate::execution::text_enum;

/// Partition name and the prefixes of its regions.
const PARTITIONS: &[(&str, &[&str])] = &[
    (
        "aws",
        &["us", "eu", "ap", "sa", "ca", "me", "af", "il", "mx"],
    ),
    ("aws-cn", &["cn"]),
    ("aws-us-gov", &["us-gov"]),
    ("aws-iso", &["us-iso"]),
    ("aws-iso-b", &["us-isob"]),
    ("aws-iso-e", &["eu-isoe"]),
    ("aws-iso-f", &["us-isof"]),
    ("aws-eusc", &["eusc-de"]),
];

/// True for a partition's name (`aws`, `aws-cn`, ...).
pub fn is_partition(name: &str) -> bool {
    PARTITIONS.iter().any(|(partition, _)| *partition == name)
}

/// The partition a region belongs to: `PREFIX-NAME-N` with a known prefix, a lowercase
/// name and a one- or two-digit number.
pub fn partition_of(region: &str) -> Option<&'static str> {
    PARTITIONS.iter().find_map(|(partition, prefixes)| {
        prefixes
            .iter()
            .any(|prefix| {
                region
                    .strip_prefix(prefix)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|rest| rest.split_once('-'))
                    .is_some_and(|(name, number)| {
                        !name.is_empty()
                            && name.bytes().all(|b| b.is_ascii_lowercase())
                            && (1..=2).contains(&number.len())
                            && number.bytes().all(|b| b.is_ascii_digit())
                    })
            })
            .then_some(*partition)
    })
}

pub fn is_region(region: &str) -> bool {
    partition_of(region).is_some()
}

/// True when an ARN's partition and region belong together.
pub fn is_partition_of(partition: &str, region: &str) -> bool {
    partition_of(region) == Some(partition)
}

/// The parts every ARN has: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, unchecked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the account, colons and all.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    pub fn parse(s: &'a str) -> Option<Self> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        Some(Self {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        })
    }
}

/// A 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// An IAM role ARN, `arn:PARTITION:iam::ACCOUNT:role/NAME`.
pub fn is_role_arn(s: &str) -> bool {
    Arn::parse(s).is_some_and(|arn| {
        is_partition(arn.partition)
            && arn.service == "iam"
            && arn.region.is_empty()
            && arn.account.len() == 12
            && arn
                .resource
                .strip_prefix("role/")
                .is_some_and(|name| !name.is_empty() && !name.contains(':'))
    })
}

text_enum! {
    /// The two kinds of RDS resource restop protects.
    pub enum ResourceKind {
        DbInstance = "db-instance",
        DbCluster = "db-cluster",
    }
}

impl ResourceKind {
    /// The resource-type part of its ARN: `arn:aws:rds:REGION:ACCOUNT:db:NAME`.
    pub fn arn_segment(self) -> &'static str {
        match self {
            Self::DbInstance => "db",
            Self::DbCluster => "cluster",
        }
    }
}

/// A DB instance or cluster, named by its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceArn {
    pub arn: String,
    pub partition: String,
    pub region: String,
    pub account: String,
    pub kind: ResourceKind,
    pub identifier: String,
}

impl FromStr for ResourceArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("'{s}' is not an RDS DB instance or cluster ARN");
        let arn = Arn::parse(s)
            .filter(|arn| arn.service == "rds")
            .ok_or_else(err)?;
        let (segment, identifier) = arn.resource.split_once(':').ok_or_else(err)?;
        let kind = match segment {
            "db" => ResourceKind::DbInstance,
            "cluster" => ResourceKind::DbCluster,
            _ => return Err(err()),
        };
        if identifier.contains(':')
            || !is_partition_of(arn.partition, arn.region)
            || !is_account_id(arn.account)
        {
            return Err(err());
        }
        validate_identifier(identifier)?;
        // RDS identifiers are case-insensitive (RDS keeps them in lower case): `db:Orders`
        // and `db:orders` are one resource.
        let identifier = identifier.to_ascii_lowercase();
        let Arn {
            partition,
            region,
            account,
            ..
        } = arn;
        Ok(Self {
            arn: format!("arn:{partition}:rds:{region}:{account}:{segment}:{identifier}"),
            partition: partition.to_owned(),
            region: region.to_owned(),
            account: account.to_owned(),
            kind,
            identifier,
        })
    }
}

/// RDS naming rules for DB instance and cluster identifiers: 1 to 63 letters, digits or
/// hyphens; a letter first; no hyphen at the end and no two in a row.
pub fn validate_identifier(id: &str) -> Result<(), String> {
    let problem = if id.is_empty() || id.len() > 63 {
        Some("must be 1 to 63 characters")
    } else if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Some("may contain only ASCII letters, digits and hyphens")
    } else if !id.as_bytes()[0].is_ascii_alphabetic() {
        Some("must begin with a letter")
    } else if id.ends_with('-') || id.contains("--") {
        Some("must not end with a hyphen or contain two consecutive hyphens")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(format!("identifier '{id}' {problem}")),
        None => Ok(()),
    }
}

/// `arn:<partition>:sns:<region>:<account>:<topic>`, checked part by part.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicArn {
    arn: String,
    partition: String,
    region: String,
    account: String,
}

impl TopicArn {
    pub fn as_str(&self) -> &str {
        &self.arn
    }
    pub fn partition(&self) -> &str {
        &self.partition
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn account(&self) -> &str {
        &self.account
    }
}

impl FromStr for TopicArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || {
            // Topic ARNs come from outside: quote at most 64 characters of one.
            let quoted = match s.char_indices().nth(64) {
                Some((cut, _)) => format!("{}…", &s[..cut]),
                None => s.to_owned(),
            };
            format!("'{quoted}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)")
        };
        let arn = Arn::parse(s).ok_or_else(err)?;
        let name = arn.resource;
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if arn.service != "sns"
            || !is_partition_of(arn.partition, arn.region)
            || !is_account_id(arn.account)
            || !name_ok
        {
            return Err(err());
        }
        Ok(Self {
            arn: s.to_owned(),
            partition: arn.partition.to_owned(),
            region: arn.region.to_owned(),
            account: arn.account.to_owned(),
        })
    }
}

impl fmt::Display for TopicArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

/// `arn:<partition>:states:<region>:<account>:stateMachine:<name>` (`RESTOP_STATE_MACHINE_ARN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateMachineArn {
    arn: String,
    partition: String,
    region: String,
    account: String,
    name: String,
}

impl StateMachineArn {
    pub fn as_str(&self) -> &str {
        &self.arn
    }
    pub fn region(&self) -> &str {
        &self.region
    }
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The ARN of this state machine's execution called `name`.
    pub fn execution(&self, name: &str) -> String {
        let Self {
            partition,
            region,
            account,
            name: machine,
            ..
        } = self;
        format!("arn:{partition}:states:{region}:{account}:execution:{machine}:{name}")
    }
}

impl FromStr for StateMachineArn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = Arn::parse(s).and_then(|arn| {
            let name = arn.resource.strip_prefix("stateMachine:")?;
            let valid = arn.service == "states"
                && is_partition_of(arn.partition, arn.region)
                && arn.account.len() == 12
                && !name.is_empty()
                && !name.contains(':');
            valid.then(|| Self {
                arn: s.to_owned(),
                partition: arn.partition.to_owned(),
                region: arn.region.to_owned(),
                account: arn.account.to_owned(),
                name: name.to_owned(),
            })
        });
        parsed.ok_or_else(|| {
            format!(
                "'{s}' is not a state machine ARN (arn:aws:states:REGION:ACCOUNT:stateMachine:NAME)"
            )
        })
    }
}

impl fmt::Display for StateMachineArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_and_their_partitions() {
        for (region, partition) in [
            ("us-east-1", "aws"),
            ("eu-central-2", "aws"),
            ("ap-southeast-5", "aws"),
            ("mx-central-1", "aws"),
            ("cn-northwest-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("eusc-de-east-1", "aws-eusc"),
        ] {
            assert_eq!(partition_of(region), Some(partition), "{region}");
        }
        for bad in [
            "",
            "us",
            "us-east",
            "aa-a-0",
            "US-east-1",
            "us-east-1a",
            "us--1",
            "us-east-123",
            "evil.com",
            "xx-east-1",
            "us-east-1\u{fa}",
        ] {
            assert_eq!(partition_of(bad), None, "{bad}");
        }
        assert!(is_partition_of("aws-cn", "cn-north-1"));
        assert!(!is_partition_of("aws", "cn-north-1"));
        assert!(!is_partition_of("aws\u{90}", "us-east-1"));
    }

    #[test]
    fn arns() {
        let arn: ResourceArn = "arn:aws:rds:eu-west-1:123456789012:cluster:aurora-1"
            .parse()
            .unwrap();
        assert_eq!(arn.kind, ResourceKind::DbCluster);
        assert_eq!(
            (arn.region.as_str(), arn.identifier.as_str()),
            ("eu-west-1", "aurora-1")
        );
        for bad in [
            "arn:aws:rds:eu-west-1:123456789012:snapshot:s1",
            "arn:aws:ec2:eu-west-1:123456789012:db:x",
            "arn:aws:rds:eu-west-1:1234:db:x",
            "arn:aws:rds:eu-west-1:123456789012:db:1x",
            "arn:aws:rds:eu-west-1:123456789012:db:x:y",
        ] {
            assert!(bad.parse::<ResourceArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn identifiers_are_case_insensitive() {
        let mixed: ResourceArn = "arn:aws:rds:eu-west-1:123456789012:db:Orders-DB"
            .parse()
            .unwrap();
        assert_eq!(mixed.identifier, "orders-db");
        assert_eq!(mixed.arn, "arn:aws:rds:eu-west-1:123456789012:db:orders-db");
        assert_eq!(
            mixed,
            "arn:aws:rds:eu-west-1:123456789012:db:orders-db"
                .parse()
                .unwrap()
        );
    }

    #[test]
    fn identifiers() {
        assert!(validate_identifier("orders-db-1").is_ok());
        assert!(validate_identifier(&"a".repeat(63)).is_ok());
        for bad in ["", "1db", "db-", "d--b", "d_b", "dé", &"a".repeat(64)] {
            assert!(validate_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn topic_arns_are_checked() {
        assert!(
            "arn:aws:sns:us-east-1:123456789012:t"
                .parse::<TopicArn>()
                .is_ok()
        );
        assert!(
            "arn:aws-cn:sns:cn-north-1:123456789012:t"
                .parse::<TopicArn>()
                .is_ok()
        );
        assert!(
            "arn:aws:sqs:us-east-1:123456789012:t"
                .parse::<TopicArn>()
                .is_err()
        );
        assert!("arn:aws:sns:us-east-1:1234:t".parse::<TopicArn>().is_err());
        assert!(
            "arn:aws:sns:useast1:123456789012:t"
                .parse::<TopicArn>()
                .is_err()
        );
        assert!(
            "arn:aws:sns:us-east-1:123456789012:t:extra"
                .parse::<TopicArn>()
                .is_err()
        );
    }

    #[test]
    fn state_machine_arns_name_their_executions() {
        let machine: StateMachineArn = "arn:aws:states:eu-west-1:123456789012:stateMachine:restop"
            .parse()
            .unwrap();
        assert_eq!(machine.region(), "eu-west-1");
        assert_eq!(
            machine.execution("m-1"),
            "arn:aws:states:eu-west-1:123456789012:execution:restop:m-1"
        );
        for bad in [
            "arn:aws:states:eu-west-1:123456789012:stateMachine:",
            "arn:aws:states:eu-west-1:123456789012:activity:x",
            "arn:aws:states:cn-north-1:123456789012:stateMachine:x",
            "arn:aws:states:eu-west-1:123456789012:stateMachine:x:y",
        ] {
            assert!(bad.parse::<StateMachineArn>().is_err(), "{bad}");
        }
    }

    #[test]
    fn role_arns() {
        assert!(is_role_arn("arn:aws:iam::123456789012:role/restop"));
        assert!(is_role_arn("arn:aws-cn:iam::123456789012:role/path/restop"));
        for bad in [
            "arn:aws:iam::123456789012:user/restop",
            "arn:aws:iam::123456789012:role/",
            "arn:aws:iam:us-east-1:123456789012:role/restop",
            "arn:nope:iam::123456789012:role/restop",
        ] {
            assert!(!is_role_arn(bad), "{bad}");
        }
    }

    #[test]
    fn the_parts_of_an_arn() {
        let arn = Arn::parse("arn:aws:states:eu-west-1:123456789012:execution:m:n").unwrap();
        assert_eq!(
            (
                arn.partition,
                arn.service,
                arn.region,
                arn.account,
                arn.resource
            ),
            (
                "aws",
                "states",
                "eu-west-1",
                "123456789012",
                "execution:m:n"
            )
        );
        assert_eq!(Arn::parse("arn:aws:sns:us-east-1"), None);
        assert_eq!(Arn::parse("urn:aws:sns:us-east-1:123456789012:t"), None);
    }
}

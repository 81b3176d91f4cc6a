//! AWS partitions and the region names each one uses, as in the SDK's partition data
//! (`aws`: `^(us|eu|ap|sa|ca|me|af|il|mx)-\w+-\d+$`, `aws-cn`: `^cn-\w+-\d+$`, ...).
//! Region names are checked against these shapes rather than a list of regions, so new
//! regions work without a new restop, while names no partition could have are refused
//! before any AWS call.

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
}

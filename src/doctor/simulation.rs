//! What IAM lets restop do, asked without doing it: `iam:SimulatePrincipalPolicy`
//! (read-only) for restop's own identity and for each member account's role, on the calls
//! restop makes there: the stops with the protection tag in the resource context, the
//! reads, `sns:ConfirmSubscription` on the allowed topics and, in Step Functions mode, the
//! state machine calls. The probes elsewhere in the doctor cannot try a stop or a
//! confirmation without making one.

use aws_config::SdkConfig;
use aws_sdk_iam::config::Region;
use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_sdk_iam::types::{ContextEntry, ContextKeyTypeEnum, PolicyEvaluationDecisionType};

use super::{Check, CheckStatus};
use crate::aws::arn::Arn;
use crate::aws::{Accounts, explain};
use crate::config::ServeConfig;

/// The identifier of the sample databases and state machine run the simulation names.
const PROBE: &str = "restop-doctor-probe";

/// The IAM principal whose policies decide what a caller may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Principal {
    pub account: String,
    pub partition: String,
    /// The ARN simulated: a user or a role.
    pub arn: String,
    /// Said with the result: how the ARN was found when it is not the caller's own.
    pub note: Option<String>,
}

impl Principal {
    /// The principal behind `sts:GetCallerIdentity`'s ARN: a user or role as it is, an
    /// assumed-role session as its role (whose path the session ARN does not carry).
    pub fn of_caller(caller: &str) -> Result<Self, String> {
        let arn = Arn::parse(caller).ok_or_else(|| format!("{caller} is not an ARN"))?;
        let principal = |iam_arn: String, note: Option<String>| Self {
            account: arn.account.to_owned(),
            partition: arn.partition.to_owned(),
            arn: iam_arn,
            note,
        };
        match (arn.service, arn.resource.split_once('/')) {
            ("iam", Some(("user" | "role", _))) => Ok(principal(caller.to_owned(), None)),
            ("sts", Some(("assumed-role", session))) => {
                let role = session.split_once('/').map_or(session, |(role, _)| role);
                let iam_arn = format!("arn:{}:iam::{}:role/{role}", arn.partition, arn.account);
                let note = format!(
                    "simulated as {iam_arn}, the role of the session {caller} (a session ARN \
                     has no role path: a role with a path is not found)"
                );
                Ok(principal(iam_arn, Some(note)))
            }
            ("iam", None) if arn.resource == "root" => Err(format!(
                "{caller} is the account's root user, which IAM cannot simulate (and which may \
                 do everything): run restop with a role"
            )),
            _ => Err(format!(
                "{caller} is neither an IAM user nor a role session, which IAM cannot simulate"
            )),
        }
    }

    /// A member account's role, as restop assumes it.
    pub fn member(account: &str, partition: &str, role: String) -> Self {
        Self {
            account: account.to_owned(),
            partition: partition.to_owned(),
            arn: role,
            note: None,
        }
    }
}

/// One simulation: actions on one resource (none: `*`), with the protection tag in the
/// resource's context when the actions are stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Probe {
    pub actions: Vec<&'static str>,
    pub resource: Option<String>,
    /// The context keys of the resource's tag (`aws:ResourceTag/KEY` and RDS's own) with
    /// the tag's value.
    pub context: Vec<(String, String)>,
}

/// Where restop acts as `principal` and how: its own identity reads (and, in internal
/// mode, stops) in its own account, confirms its own account's topics and drives the state
/// machine; a member role reads and stops in its account (the state machine stops with it
/// too) and confirms that account's topics.
pub(super) fn probes(
    serve: &ServeConfig,
    accounts: &Accounts,
    principal: &Principal,
    own: bool,
) -> Vec<Probe> {
    let account = principal.account.as_str();
    let partition = principal.partition.as_str();
    let topics = &serve.sns.topic_arns.0;
    let state_machine = serve.engine.state_machine_arn.as_ref();
    let stops = !own || state_machine.is_none();
    let (key, value) = (&serve.engine.tag_key, &serve.engine.tag_value);
    let mut probes = Vec::new();
    for (_, region) in accounts
        .watched(topics)
        .into_iter()
        .filter(|(a, _)| a == account)
    {
        for (kind, describe, stop, rds_key) in [
            (
                "db",
                "rds:DescribeDBInstances",
                "rds:StopDBInstance",
                "db-tag",
            ),
            (
                "cluster",
                "rds:DescribeDBClusters",
                "rds:StopDBCluster",
                "cluster-tag",
            ),
        ] {
            let mut actions = vec![describe, "rds:ListTagsForResource"];
            let mut context = Vec::new();
            if stops {
                actions.push(stop);
                context = vec![
                    (format!("aws:ResourceTag/{key}"), value.clone()),
                    (format!("rds:{rds_key}/{key}"), value.clone()),
                ];
            }
            probes.push(Probe {
                actions,
                resource: Some(format!(
                    "arn:{partition}:rds:{region}:{account}:{kind}:{PROBE}"
                )),
                context,
            });
        }
        probes.push(Probe {
            actions: vec!["rds:DescribeEvents"],
            resource: None,
            context: Vec::new(),
        });
    }
    for topic in topics.iter().filter(|t| t.account() == account) {
        probes.push(Probe {
            actions: vec!["sns:ConfirmSubscription"],
            resource: Some(topic.as_str().to_owned()),
            context: Vec::new(),
        });
    }
    if let Some(machine) = state_machine.filter(|_| own) {
        probes.push(Probe {
            actions: vec!["states:StartExecution"],
            resource: Some(machine.as_str().to_owned()),
            context: Vec::new(),
        });
        probes.push(Probe {
            actions: vec!["states:DescribeExecution", "states:StopExecution"],
            resource: Some(machine.execution(PROBE)),
            context: Vec::new(),
        });
    }
    probes
}

/// IAM of `partition`: a global service, with its endpoint in one region of each.
pub(super) fn iam_client(config: &SdkConfig, partition: &str) -> aws_sdk_iam::Client {
    let region = match partition {
        "aws-cn" => "cn-north-1",
        "aws-us-gov" => "us-gov-west-1",
        "aws-iso" => "us-iso-east-1",
        "aws-iso-b" => "us-isob-east-1",
        "aws-iso-e" => "eu-isoe-west-1",
        "aws-iso-f" => "us-isof-south-1",
        "aws-eusc" => "eusc-de-east-1",
        _ => "us-east-1",
    };
    aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(config)
            .region(Region::new(region))
            .build(),
    )
}

/// The `simulation ACCOUNT` check: fails naming each denied action with IAM's answer
/// (`implicitDeny`: no statement allows it, `explicitDeny`: one denies it); warns when
/// IAM could not be asked. `grant` names the policy that allows what restop needs.
pub(super) async fn check(
    iam: &aws_sdk_iam::Client,
    principal: &Principal,
    probes: &[Probe],
    grant: &str,
) -> Check {
    let name = format!("simulation {}", principal.account);
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for probe in probes {
        let results = match simulate(iam, &principal.arn, probe).await {
            Ok(results) => results,
            Err(why) => {
                let detail = format!(
                    "could not check the permissions of {}: {why}",
                    principal.arn
                );
                return Check::new(name, CheckStatus::Warn, detail);
            }
        };
        for (action, decision) in results {
            if decision == PolicyEvaluationDecisionType::Allowed {
                if !allowed.contains(&action) {
                    allowed.push(action);
                }
            } else {
                let on = probe.resource.as_deref().unwrap_or("*");
                denied.push(format!("{action} on {on}: {}", decision.as_str()));
            }
        }
    }
    let note = principal
        .note
        .as_deref()
        .map(|n| format!(" ({n})"))
        .unwrap_or_default();
    if denied.is_empty() {
        let detail = format!("{} allowed for {}{note}", allowed.join(", "), principal.arn);
        return Check::new(name, CheckStatus::Ok, detail);
    }
    let detail = format!(
        "IAM denies {}: {}; grant {grant}{note}",
        principal.arn,
        denied.join("; ")
    );
    Check::new(name, CheckStatus::Fail, detail)
}

/// IAM's decision for each action of `probe`, or why there is none.
async fn simulate(
    iam: &aws_sdk_iam::Client,
    arn: &str,
    probe: &Probe,
) -> Result<Vec<(String, PolicyEvaluationDecisionType)>, String> {
    let mut decisions = Vec::new();
    let mut marker = None;
    loop {
        let mut request = iam
            .simulate_principal_policy()
            .policy_source_arn(arn)
            .set_action_names(Some(
                probe.actions.iter().map(|a| (*a).to_owned()).collect(),
            ))
            .set_resource_arns(probe.resource.clone().map(|r| vec![r]))
            .set_marker(marker)
            .max_items(1000);
        for (key, value) in &probe.context {
            request = request.context_entries(
                ContextEntry::builder()
                    .context_key_name(key)
                    .context_key_type(ContextKeyTypeEnum::String)
                    .context_key_values(value)
                    .build(),
            );
        }
        let page = request.send().await.map_err(|e| match e.code() {
            Some("AccessDenied" | "AccessDeniedException") => format!(
                "iam:SimulatePrincipalPolicy was refused ({}): allow it on the role itself \
                 to have this checked",
                explain(&e)
            ),
            Some("NoSuchEntity") => format!("IAM does not know it ({})", explain(&e)),
            _ => format!("iam:SimulatePrincipalPolicy failed: {}", explain(&e)),
        })?;
        for result in page.evaluation_results() {
            // With a resource, the decision on that resource is the one that counts.
            let decision = result
                .resource_specific_results()
                .iter()
                .map(|r| r.eval_resource_decision())
                .find(|d| **d != PolicyEvaluationDecisionType::Allowed)
                .unwrap_or(result.eval_decision());
            decisions.push((result.eval_action_name().to_owned(), decision.clone()));
        }
        match page.marker() {
            Some(next) if page.is_truncated() => marker = Some(next.to_owned()),
            _ => return Ok(decisions),
        }
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_iam::Client;
    use aws_sdk_iam::error::ErrorMetadata;
    use aws_sdk_iam::operation::simulate_principal_policy::{
        SimulatePrincipalPolicyError, SimulatePrincipalPolicyOutput,
    };
    use aws_sdk_iam::types::EvaluationResult;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, mock};

    use super::*;

    const ROLE: &str = "arn:aws:iam::111111111111:role/restop";
    const TOPIC: &str = "arn:aws:sns:eu-west-1:111111111111:restop-rds-events";

    fn serve(state_machine: Option<&str>) -> ServeConfig {
        let mut serve = ServeConfig::defaults();
        serve.sns.topic_arns.0 = vec![TOPIC.parse().unwrap()];
        serve.engine.state_machine_arn = state_machine.map(|s| s.parse().unwrap());
        serve
    }

    fn principal() -> Principal {
        Principal::of_caller(ROLE).unwrap()
    }

    fn client(rules: &[&Rule]) -> Client {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in rules {
            interceptor = interceptor.with_rule(rule);
        }
        Client::from_conf(
            aws_sdk_iam::Config::builder()
                .behavior_version_latest()
                .region(Region::new("us-east-1"))
                .credentials_provider(aws_sdk_iam::config::Credentials::new(
                    "test", "test", None, None, "test",
                ))
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }

    /// IAM's answer for every action asked, `decide` choosing the decision.
    fn answering(decide: fn(&str) -> PolicyEvaluationDecisionType) -> Rule {
        mock!(Client::simulate_principal_policy).then_compute_output(move |input| {
            let results = input
                .action_names()
                .iter()
                .map(|action| {
                    EvaluationResult::builder()
                        .eval_action_name(action)
                        .eval_resource_name(input.resource_arns().first().map_or("*", |r| r))
                        .eval_decision(decide(action))
                        .build()
                        .unwrap()
                })
                .collect();
            SimulatePrincipalPolicyOutput::builder()
                .set_evaluation_results(Some(results))
                .is_truncated(false)
                .build()
        })
    }

    async fn run(serve: &ServeConfig, rule: &Rule) -> Check {
        let principal = principal();
        let probes = probes(serve, &Accounts::from(&serve.accounts), &principal, true);
        check(&client(&[rule]), &principal, &probes, "deploy/iam/x.json").await
    }

    #[tokio::test]
    async fn everything_allowed_passes_and_the_stops_carry_the_protection_tag() {
        let serve = serve(None);
        let rule = answering(|_| PolicyEvaluationDecisionType::Allowed);
        let check = run(&serve, &rule).await;
        assert_eq!(check.status, CheckStatus::Ok, "{}", check.detail);
        assert_eq!(check.name, "simulation 111111111111");
        for action in [
            "rds:DescribeDBInstances",
            "rds:ListTagsForResource",
            "rds:StopDBInstance",
            "rds:StopDBCluster",
            "rds:DescribeEvents",
            "sns:ConfirmSubscription",
        ] {
            assert!(check.detail.contains(action), "{action}: {}", check.detail);
        }
        // Instances, clusters, events and the topic: one simulation each.
        assert_eq!(rule.num_calls(), 4);
        let stops = probes(&serve, &Accounts::from(&serve.accounts), &principal(), true);
        let instance = stops
            .iter()
            .find(|p| p.actions.contains(&"rds:StopDBInstance"))
            .unwrap();
        assert_eq!(
            instance.resource.as_deref(),
            Some("arn:aws:rds:eu-west-1:111111111111:db:restop-doctor-probe")
        );
        assert!(instance.context.contains(&(
            "aws:ResourceTag/auto-restart-protection".into(),
            "yes".into()
        )));
    }

    #[tokio::test]
    async fn an_implicit_deny_fails_naming_the_action_and_the_answer() {
        let rule = answering(|action| match action {
            "rds:StopDBCluster" => PolicyEvaluationDecisionType::ImplicitDeny,
            _ => PolicyEvaluationDecisionType::Allowed,
        });
        let check = run(&serve(None), &rule).await;
        assert_eq!(check.status, CheckStatus::Fail);
        assert!(
            check.detail.contains(
                "rds:StopDBCluster on arn:aws:rds:eu-west-1:111111111111:cluster:restop-doctor-probe: implicitDeny"
            ),
            "{}",
            check.detail
        );
        assert!(
            !check.detail.contains("StopDBInstance on"),
            "{}",
            check.detail
        );
        assert!(check.detail.contains("grant deploy/iam/x.json"));
    }

    #[tokio::test]
    async fn an_explicit_deny_of_a_state_machine_call_fails() {
        let machine = "arn:aws:states:eu-west-1:111111111111:stateMachine:restop";
        let rule = answering(|action| match action {
            "states:StopExecution" => PolicyEvaluationDecisionType::ExplicitDeny,
            _ => PolicyEvaluationDecisionType::Allowed,
        });
        let check = run(&serve(Some(machine)), &rule).await;
        assert_eq!(check.status, CheckStatus::Fail);
        assert!(
            check.detail.contains(
                "states:StopExecution on arn:aws:states:eu-west-1:111111111111:execution:restop:restop-doctor-probe: explicitDeny"
            ),
            "{}",
            check.detail
        );
        // In Step Functions mode restop's own role does not stop: the state machine does.
        assert!(!check.detail.contains("rds:StopDB"), "{}", check.detail);
    }

    #[tokio::test]
    async fn a_refused_simulation_only_warns() {
        let rule = mock!(Client::simulate_principal_policy).then_error(|| {
            SimulatePrincipalPolicyError::generic(
                ErrorMetadata::builder()
                    .code("AccessDenied")
                    .message("not authorized to perform: iam:SimulatePrincipalPolicy")
                    .build(),
            )
        });
        let check = run(&serve(None), &rule).await;
        assert_eq!(check.status, CheckStatus::Warn, "{}", check.detail);
        assert!(
            check
                .detail
                .starts_with(&format!("could not check the permissions of {ROLE}")),
            "{}",
            check.detail
        );
        assert!(
            check
                .detail
                .contains("iam:SimulatePrincipalPolicy was refused")
        );
        // Asked once: the other probes would be refused alike.
        assert_eq!(rule.num_calls(), 1);
    }

    #[test]
    fn a_session_is_simulated_as_its_role_and_root_not_at_all() {
        let session =
            Principal::of_caller("arn:aws-cn:sts::111111111111:assumed-role/restop/i-0abc")
                .unwrap();
        assert_eq!(session.arn, "arn:aws-cn:iam::111111111111:role/restop");
        assert_eq!(session.partition, "aws-cn");
        assert!(session.note.unwrap().contains("no role path"));
        let user = Principal::of_caller("arn:aws:iam::111111111111:user/ops/restop").unwrap();
        assert_eq!(user.arn, "arn:aws:iam::111111111111:user/ops/restop");
        assert_eq!(user.note, None);
        let root = Principal::of_caller("arn:aws:iam::111111111111:root").unwrap_err();
        assert!(root.contains("root user"), "{root}");
    }
}

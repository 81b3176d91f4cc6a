//! The project's shape, checked: the vocabulary and `openapi.yaml` list the same values,
//! the two backends' migrations make the same tables, modules depend one way, and README
//! documents every setting.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use clap::CommandFactory;
use restop::api::ErrorCode;
use restop::aws::arn::ResourceKind;
use restop::config::Cli;
use restop::execution::{
    ConfirmedWith, Disposition, MessageType, Mode, NotifyState, Outcome, Phase, Status,
    SubscriptionStatus, TextEnum, TriggerKind,
};
use restop::store::connect_and_migrate;
use serde_json::Value;

use crate::support::db::{Backend, TestDb};
use crate::support::openapi::spec;

/// The `enum` of a schema in openapi.yaml, without `null`.
fn documented(pointer: &str) -> Vec<String> {
    let schema = spec()
        .pointer(pointer)
        .unwrap_or_else(|| panic!("openapi.yaml has no {pointer}"));
    schema["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{pointer} has no enum"))
        .iter()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

fn assert_same<T: TextEnum>(pointer: &str) {
    let ours: Vec<String> = T::texts().into_iter().map(str::to_owned).collect();
    assert_eq!(
        ours,
        documented(pointer),
        "{} and openapi.yaml {pointer} list different values",
        std::any::type_name::<T>()
    );
}

#[test]
fn the_vocabulary_and_openapi_list_the_same_values() {
    const S: &str = "/components/schemas";
    assert_same::<Status>(&format!("{S}/ExecutionStatus"));
    assert_same::<Outcome>(&format!("{S}/FinalOutcome"));
    assert_same::<Phase>(&format!("{S}/Phase"));
    assert_same::<Mode>(&format!("{S}/Mode"));
    assert_same::<TriggerKind>(&format!("{S}/Trigger"));
    assert_same::<ResourceKind>(&format!("{S}/ResourceType"));
    assert_same::<NotifyState>(&format!("{S}/Notification/properties/state"));
    assert_same::<MessageType>(&format!("{S}/MessageType"));
    assert_same::<Disposition>(&format!("{S}/Disposition"));
    assert_same::<SubscriptionStatus>(&format!("{S}/Subscription/properties/status"));
    assert_same::<ConfirmedWith>(&format!("{S}/Subscription/properties/confirmed_with"));
    assert_same::<ErrorCode>(&format!("{S}/ErrorCode"));
}

/// The values of a `const NAME = [...]` list in ui/console.js, in order.
fn console_list(name: &str) -> Vec<String> {
    let script = include_str!("../../ui/console.js");
    let start = script
        .find(&format!("const {name} = ["))
        .unwrap_or_else(|| panic!("console.js has no {name}"));
    let list = &script[start..];
    let list = &list[list.find('[').unwrap() + 1..list.find(']').unwrap()];
    list.split(',')
        .map(|item| item.trim().trim_matches('\'').to_owned())
        .filter(|item| !item.is_empty())
        .collect()
}

/// The console's filters offer exactly the values the API takes.
#[test]
fn the_console_offers_the_vocabulary() {
    fn texts<T: TextEnum>() -> Vec<String> {
        T::texts().into_iter().map(str::to_owned).collect()
    }
    assert_eq!(console_list("STATUSES"), texts::<Status>());
    assert_eq!(console_list("OUTCOMES"), texts::<Outcome>());
    assert_eq!(console_list("TRIGGERS"), texts::<TriggerKind>());
    assert_eq!(console_list("MESSAGE_TYPES"), texts::<MessageType>());
    assert_eq!(console_list("DISPOSITIONS"), texts::<Disposition>());
    assert_eq!(
        console_list("SUBSCRIPTION_STATUSES"),
        texts::<SubscriptionStatus>()
    );
}

/// The summary lists every status and outcome by name, so the console needs no defaults.
#[test]
fn the_summary_documents_every_status_and_outcome() {
    let window = &spec()["components"]["schemas"]["SummaryWindow"]["properties"];
    for (key, texts) in [
        ("by_status", Status::texts()),
        ("by_outcome", Outcome::texts()),
    ] {
        let required: Vec<&str> = window[key]["required"]
            .as_array()
            .unwrap_or_else(|| panic!("SummaryWindow.{key} lists no keys"))
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, texts, "SummaryWindow.{key}");
    }
}

/// Every table and column, with the kind of value it holds, as one backend's migrations
/// made them.
async fn schema(db: &TestDb) -> BTreeMap<String, BTreeSet<(String, &'static str)>> {
    connect_and_migrate(&restop::config::DatabaseConfig {
        database_url: db.url.parse().unwrap(),
        db_max_connections: 2,
    })
    .await
    .unwrap();
    let rows: Vec<(String, String, String)> = match db.backend {
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            sqlx::query_as(
                "SELECT table_name::text, column_name::text, data_type::text
                 FROM information_schema.columns
                 WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations'",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
        Backend::Sqlite => sqlx::query_as(
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE '\\_sqlx%' ESCAPE '\\'
               AND m.name NOT LIKE 'sqlite%'",
        )
        .fetch_all(db.sqlite_pool())
        .await
        .unwrap(),
    };
    let mut tables: BTreeMap<String, BTreeSet<(String, &'static str)>> = BTreeMap::new();
    for (table, column, kind) in rows {
        // SQLite has no timestamp type: restop stores RFC 3339 text there.
        let kind = match kind.to_ascii_lowercase().as_str() {
            "text" | "timestamp with time zone" => "text or time",
            "integer" | "bigint" => "integer",
            "boolean" => "boolean",
            "bytea" | "blob" => "bytes",
            other => panic!("{table}.{column}: unexpected type {other}"),
        };
        tables.entry(table).or_default().insert((column, kind));
    }
    tables
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_and_sqlite_migrations_make_the_same_tables() {
    let Some(postgres) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let sqlite = TestDb::create(Backend::Sqlite).await.unwrap();
    let (postgres, sqlite) = (schema(&postgres).await, schema(&sqlite).await);
    assert!(postgres.contains_key("executions"), "{postgres:?}");
    assert_eq!(postgres, sqlite);
}

/// Top-level modules and the top-level modules each one names with `crate::`.
fn module_imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let first = relative.iter().next().unwrap().to_string_lossy();
        let module = first.trim_end_matches(".rs").to_owned();
        if module == "lib" || module == "main" {
            continue; // the crate root declares every module
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let names = graph.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                names.insert(name);
            }
        }
    }
    graph
}

#[test]
fn modules_depend_one_way() {
    let graph = module_imports();
    // Depth-first search for a path from each module back to itself.
    for start in graph.keys() {
        let mut stack: Vec<Vec<&str>> = vec![vec![start]];
        while let Some(path) = stack.pop() {
            let last = *path.last().unwrap();
            for next in graph.get(last).into_iter().flatten() {
                assert!(
                    next != start,
                    "import circle: {} -> {next}",
                    path.join(" -> ")
                );
                if !path.contains(&next.as_str()) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push(longer);
                }
            }
        }
    }
    // The layers of the issue that set this shape.
    let imports = |module: &str| graph[module].clone();
    assert!(
        imports("execution").is_empty(),
        "{:?}",
        imports("execution")
    );
    assert!(!imports("store").contains("engine"));
    assert!(!imports("engine").contains("api"));
    assert!(!imports("metrics").contains("store"));
    // AWS lies below everything that calls it: ARNs, the client, its failures.
    for caller in ["api", "engine", "doctor", "store", "config", "sns", "rds"] {
        assert!(!imports("aws").contains(caller), "aws imports {caller}");
    }
}

#[test]
fn readme_documents_every_setting() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let table: BTreeSet<&str> = readme
        .lines()
        .filter(|line| line.starts_with("| `"))
        .filter_map(|line| line.split('`').nth(1))
        .collect();
    let mut settings = BTreeSet::new();
    let mut commands = vec![Cli::command()];
    while let Some(command) = commands.pop() {
        for arg in command.get_arguments() {
            if let Some(env) = arg.get_env() {
                settings.insert(env.to_string_lossy().into_owned());
            }
        }
        commands.extend(command.get_subcommands().cloned());
    }
    assert!(settings.contains("RESTOP_TOPIC_ARNS"), "{settings:?}");
    let missing: Vec<&String> = settings
        .iter()
        .filter(|s| !table.contains(s.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "README's configuration table lacks {missing:?}"
    );
}

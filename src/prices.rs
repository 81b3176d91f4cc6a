//! `RESTOP_PRICES`: On-Demand prices of RDS instances, USD per hour, that `/v1/savings`
//! estimates with. Read once at start-up (a file that does not parse stops it); depends on
//! nothing else in the crate, so the settings can hold it.

use std::collections::HashMap;
use std::path::Path;

/// The key of one hourly price: region, instance class, engine (as RDS's API names it:
/// `postgres`, `aurora-postgresql`, ...) and deployment (`single-az` or `multi-az`).
pub type PriceKey = (String, String, String, String);

/// `RESTOP_PRICES`: USD per instance-hour, On-Demand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Prices(HashMap<PriceKey, f64>);

impl Prices {
    /// Reads a JSON (`[{"region", "instance_class", "engine", "deployment",
    /// "usd_per_hour"}, ...]`) or CSV (the same columns, a header line first) file.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read '{}': {e}", path.display()))?;
        let rows = if text.trim_start().starts_with('[') {
            parse_json(&text)?
        } else {
            parse_csv(&text)?
        };
        let mut prices = HashMap::new();
        for (n, (key, price)) in rows.into_iter().enumerate() {
            let key = normalize(key).map_err(|e| format!("entry {}: {e}", n + 1))?;
            if !price.is_finite() || price < 0.0 {
                return Err(format!("entry {}: usd_per_hour must be a price", n + 1));
            }
            if let Some(before) = prices.insert(key.clone(), price)
                && before != price
            {
                return Err(format!(
                    "entry {}: {} {} {} {} has two prices ({before} and {price})",
                    n + 1,
                    key.0,
                    key.1,
                    key.2,
                    key.3
                ));
            }
        }
        if prices.is_empty() {
            return Err(format!("'{}' holds no prices", path.display()));
        }
        Ok(Self(prices))
    }

    #[cfg(test)]
    pub(crate) fn from_entries(entries: impl IntoIterator<Item = (PriceKey, f64)>) -> Self {
        Self(entries.into_iter().collect())
    }

    /// The hourly price of one instance of `class` running `engine` in `region`;
    /// `deployment` is `single-az` or `multi-az`.
    pub fn hourly(&self, region: &str, class: &str, engine: &str, deployment: &str) -> Option<f64> {
        self.0
            .get(&(
                region.to_owned(),
                class.to_owned(),
                engine.to_ascii_lowercase(),
                deployment.to_owned(),
            ))
            .copied()
    }
}

/// Accepts the API's names and the price list's (`PostgreSQL`, `Single-AZ`).
fn normalize((region, class, engine, deployment): PriceKey) -> Result<PriceKey, String> {
    let region = region.trim().to_owned();
    let class = class.trim().to_owned();
    if !looks_like_region(&region) {
        return Err(format!("'{region}' is not a region"));
    }
    if !class.starts_with("db.") {
        return Err(format!("'{class}' is not an instance class (db.*)"));
    }
    let engine = match engine.trim().to_ascii_lowercase().as_str() {
        "postgresql" => "postgres".to_owned(),
        "aurora postgresql" => "aurora-postgresql".to_owned(),
        "aurora mysql" => "aurora-mysql".to_owned(),
        "" => return Err("the engine is empty".into()),
        other => other.replace(' ', "-"),
    };
    let deployment = match deployment.trim().to_ascii_lowercase().as_str() {
        "single-az" => "single-az",
        "multi-az" => "multi-az",
        other => return Err(format!("deployment '{other}' is not single-az or multi-az")),
    };
    Ok((region, class, engine, deployment.to_owned()))
}

fn parse_json(text: &str) -> Result<Vec<(PriceKey, f64)>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        region: String,
        instance_class: String,
        engine: String,
        deployment: String,
        usd_per_hour: f64,
    }
    let entries: Vec<Entry> =
        serde_json::from_str(text).map_err(|e| format!("not a JSON list of prices: {e}"))?;
    Ok(entries
        .into_iter()
        .map(|e| {
            (
                (e.region, e.instance_class, e.engine, e.deployment),
                e.usd_per_hour,
            )
        })
        .collect())
}

const CSV_HEADER: [&str; 5] = [
    "region",
    "instance_class",
    "engine",
    "deployment",
    "usd_per_hour",
];

fn parse_csv(text: &str) -> Result<Vec<(PriceKey, f64)>, String> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty());
    let fields = |line: &str| -> Vec<String> {
        line.split(',')
            .map(|f| f.trim().trim_matches('"').to_owned())
            .collect()
    };
    match lines.next() {
        Some((_, header)) if fields(header) == CSV_HEADER => {}
        _ => {
            return Err(format!(
                "neither a JSON list nor a CSV file whose first line is {}",
                CSV_HEADER.join(",")
            ));
        }
    }
    lines
        .map(|(n, line)| {
            let f = fields(line);
            let [region, class, engine, deployment, price] = <[String; 5]>::try_from(f)
                .map_err(|_| format!("line {}: expected 5 fields", n + 1))?;
            let price = price
                .parse::<f64>()
                .map_err(|_| format!("line {}: '{price}' is not a price", n + 1))?;
            Ok(((region, class, engine, deployment), price))
        })
        .collect()
}

/// `eu-west-1`, `us-gov-west-1`: lower-case words and a number, joined by dashes.
fn looks_like_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn large_postgres(price: f64) -> Prices {
        Prices::from_entries([(
            (
                "eu-west-1".into(),
                "db.r6g.large".into(),
                "postgres".into(),
                "single-az".into(),
            ),
            price,
        )])
    }

    /// A file of its own under the temporary directory, removed when dropped.
    struct PriceFile(std::path::PathBuf);

    impl PriceFile {
        fn new(name: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("restop-prices-{}-{name}", std::process::id()));
            Self(path)
        }

        fn load(&self, text: &str) -> Result<Prices, String> {
            std::fs::write(&self.0, text).unwrap();
            Prices::load(&self.0)
        }
    }

    impl Drop for PriceFile {
        fn drop(&mut self) {
            std::fs::remove_file(&self.0).ok();
        }
    }

    const HEADER: &str = "region,instance_class,engine,deployment,usd_per_hour\n";

    #[test]
    fn csv_and_json_files_give_the_same_prices_in_the_api_s_names() {
        let file = PriceFile::new("formats");
        // The price list's names (PostgreSQL, Single-AZ) and quoted fields are accepted.
        let csv = format!("{HEADER}eu-west-1,db.r6g.large,PostgreSQL,Single-AZ,0.5\n");
        assert_eq!(file.load(&csv).unwrap(), large_postgres(0.5));
        let quoted =
            format!("{HEADER}\"eu-west-1\",\"db.r6g.large\",\"postgres\",\"single-az\",\"0.5\"\n");
        assert_eq!(file.load(&quoted).unwrap(), large_postgres(0.5));
        let json = r#"[{"region": "eu-west-1", "instance_class": "db.r6g.large",
            "engine": "postgres", "deployment": "single-az", "usd_per_hour": 0.5}]"#;
        let prices = file.load(json).unwrap();
        assert_eq!(prices, large_postgres(0.5));
        assert_eq!(
            prices.hourly("eu-west-1", "db.r6g.large", "postgres", "single-az"),
            Some(0.5)
        );
        assert_eq!(
            prices.hourly("eu-west-1", "db.r6g.large", "postgres", "multi-az"),
            None
        );
    }

    #[test]
    fn two_prices_for_one_key_are_refused_and_the_same_price_twice_is_not() {
        let file = PriceFile::new("duplicates");
        let error = file
            .load(&format!(
                "{HEADER}eu-west-1,db.r6g.large,postgres,single-az,0.5\n\
                 eu-west-1,db.r6g.large,PostgreSQL,Single-AZ,0.6\n"
            ))
            .unwrap_err();
        assert_eq!(
            error,
            "entry 2: eu-west-1 db.r6g.large postgres single-az has two prices (0.5 and 0.6)"
        );
        let twice = format!(
            "{HEADER}eu-west-1,db.r6g.large,postgres,single-az,0.5\n\
             eu-west-1,db.r6g.large,PostgreSQL,Single-AZ,0.5\n"
        );
        assert_eq!(file.load(&twice).unwrap(), large_postgres(0.5));
    }

    #[test]
    fn a_file_that_is_not_a_price_list_is_refused_with_the_reason() {
        let file = PriceFile::new("mistakes");
        for (bad, says) in [
            ("region,class\n".to_owned(), "first line"),
            (
                format!("{HEADER}eu-west-1,r6g,postgres,single-az,1\n"),
                "not an instance class",
            ),
            (
                format!("{HEADER}moon,db.r6g.large,postgres,single-az,1\n"),
                "not a region",
            ),
            (
                format!("{HEADER}eu-west-1,db.r6g.large,postgres,single-az,-1\n"),
                "must be a price",
            ),
            (
                format!("{HEADER}eu-west-1,db.r6g.large,postgres,three-az,1\n"),
                "not single-az or multi-az",
            ),
            (
                format!("{HEADER}eu-west-1,db.r6g.large,postgres,single-az\n"),
                "expected 5 fields",
            ),
            (HEADER.to_owned(), "holds no prices"),
            ("[]".to_owned(), "holds no prices"),
            (
                r#"[{"region": "eu-west-1"}]"#.to_owned(),
                "not a JSON list of prices",
            ),
        ] {
            let error = file.load(&bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
        let missing = Prices::load(Path::new("/nonexistent/prices.csv")).unwrap_err();
        assert!(
            missing.starts_with("cannot read '/nonexistent/prices.csv'"),
            "{missing}"
        );
    }
}

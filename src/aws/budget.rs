//! The RDS request budget. RDS allows each account and region 12 requests per second
//! (300 in a burst), shared with the console, the CLI and every other tool there; restop
//! keeps to `RESTOP_RDS_MAX_RPS` per account and region, never more than twice that in any
//! one second, halves it for a while when RDS throttles anyway, and lets stop calls go
//! before polls when the bucket runs short. Each request takes a token, a retry's as
//! much as the first's (the guard makes RDS retries, not the SDK). The budget is this
//! process's: replicas each keep their own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How long a throttling answer halves the rate.
const SLOW_DOWN_FOR: Duration = Duration::from_secs(60);
/// The rate never drops below this share of the configured one, however often RDS throttles.
const SLOWEST: f64 = 1.0 / 8.0;

/// Which calls go first when tokens are short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A stop: a database that runs costs money every minute.
    Stop,
    /// Everything else: polls, tag checks, event log reads.
    Other,
}

/// One token bucket per account and region.
pub struct Budget {
    rate: f64,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

struct Bucket {
    tokens: f64,
    refilled: Instant,
    /// The share of the rate in force: halved by each throttling answer.
    share: f64,
    slowed_until: Instant,
    /// Stop calls waiting for a token: other calls wait behind them.
    stops_waiting: usize,
}

impl Budget {
    /// `rate` requests per second, at most twice that in any one second.
    pub fn new(rate: f64) -> Self {
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// A full bucket holds one second of calls: a second that starts with a full bucket
    /// holds it and a second of refill, twice the rate, and no second holds more.
    fn capacity(&self) -> f64 {
        self.rate
    }

    /// Waits until a call in `account` and `region` fits the budget, but no longer than
    /// `max_wait`. Returns whether it had to wait, or [`Exhausted`] at once when the call
    /// would not fit in `max_wait`.
    pub async fn acquire(
        &self,
        account: &str,
        region: &str,
        priority: Priority,
        max_wait: Duration,
    ) -> Result<bool, Exhausted> {
        let key = (account.to_owned(), region.to_owned());
        let give_up_at = Instant::now() + max_wait;
        let mut waited = false;
        // A stop in the queue, counted in `stops_waiting` until it takes its token or is
        // dropped (the caller gave up): a dropped stop must never hold back other calls.
        let mut queued: Option<QueuedStop> = None;
        loop {
            let wait = {
                let mut buckets = self.buckets.lock().expect("budget lock");
                let now = Instant::now();
                let bucket = buckets.entry(key.clone()).or_insert_with(|| Bucket {
                    tokens: self.capacity(),
                    refilled: now,
                    share: 1.0,
                    slowed_until: now,
                    stops_waiting: 0,
                });
                if now >= bucket.slowed_until {
                    bucket.share = 1.0;
                }
                let rate = self.rate * bucket.share;
                let elapsed = now.duration_since(bucket.refilled).as_secs_f64();
                bucket.tokens =
                    (bucket.tokens + elapsed * rate).min(self.capacity() * bucket.share);
                bucket.refilled = now;
                let ahead = bucket.stops_waiting - usize::from(queued.is_some());
                let may_take = priority == Priority::Stop || ahead == 0;
                if bucket.tokens >= 1.0 && may_take {
                    bucket.tokens -= 1.0;
                    if let Some(stop) = queued.take() {
                        stop.leave(bucket);
                    }
                    return Ok(waited);
                }
                // Until the next token; behind queued stops, one token later per stop.
                let missing =
                    (1.0 - bucket.tokens).max(0.0) + if may_take { 0.0 } else { ahead as f64 };
                let wait = Duration::from_secs_f64((missing / rate).max(0.001));
                if now + wait > give_up_at {
                    if let Some(stop) = queued.take() {
                        stop.leave(bucket);
                    }
                    return Err(Exhausted);
                }
                if priority == Priority::Stop && queued.is_none() {
                    bucket.stops_waiting += 1;
                    queued = Some(QueuedStop {
                        budget: self,
                        key: key.clone(),
                        done: false,
                    });
                }
                wait
            };
            waited = true;
            tokio::time::sleep(wait).await;
        }
    }

    /// The smallest share of the rate in force in any account and region (1 unless RDS
    /// throttled lately): batches of work are sized by it.
    pub fn slowest_share(&self) -> f64 {
        let buckets = self.buckets.lock().expect("budget lock");
        let now = Instant::now();
        buckets
            .values()
            .filter(|bucket| now < bucket.slowed_until)
            .map(|bucket| bucket.share)
            .fold(1.0, f64::min)
    }

    /// RDS throttled a call anyway (other tools share the limit): halve the rate in this
    /// account and region for a while.
    pub fn throttled(&self, account: &str, region: &str) {
        let mut buckets = self.buckets.lock().expect("budget lock");
        if let Some(bucket) = buckets.get_mut(&(account.to_owned(), region.to_owned())) {
            bucket.share = (bucket.share / 2.0).max(SLOWEST);
            bucket.tokens = bucket.tokens.min(self.capacity() * bucket.share);
            bucket.slowed_until = Instant::now() + SLOW_DOWN_FOR;
        }
    }
}

/// A call that would wait past its limit for the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exhausted;

/// A stop counted in its bucket's `stops_waiting`; uncounted when it leaves, even by drop.
struct QueuedStop<'a> {
    budget: &'a Budget,
    key: (String, String),
    done: bool,
}

impl QueuedStop<'_> {
    /// Leaves the queue, the bucket already locked.
    fn leave(mut self, bucket: &mut Bucket) {
        bucket.stops_waiting -= 1;
        self.done = true;
    }
}

impl Drop for QueuedStop<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut buckets = match self.budget.buckets.lock() {
            Ok(buckets) => buckets,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(bucket) = buckets.get_mut(&self.key) {
            bucket.stops_waiting -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOREVER: Duration = Duration::from_secs(3600);

    /// Calls made in each whole second since `start`.
    fn per_second(start: Instant, calls: &[Instant]) -> Vec<usize> {
        let mut seconds = vec![0; 64];
        for at in calls {
            seconds[at.duration_since(start).as_secs() as usize] += 1;
        }
        seconds
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let budget = Budget::new(4.0);
        let start = Instant::now();
        let mut calls = Vec::new();
        for _ in 0..48 {
            budget
                .acquire("111111111111", "us-east-1", Priority::Other, FOREVER)
                .await
                .unwrap();
            calls.push(Instant::now());
        }
        let seconds = per_second(start, &calls);
        // Four at once (the full bucket) and three more as it refills, then four a second.
        assert_eq!(seconds[0], 4 + 3, "{seconds:?}");
        assert!(seconds[1..10].iter().all(|&n| n == 4), "{seconds:?}");
        // Another account or region has a budget of its own.
        let before = Instant::now();
        budget
            .acquire("222222222222", "us-east-1", Priority::Other, FOREVER)
            .await
            .unwrap();
        budget
            .acquire("111111111111", "eu-west-1", Priority::Other, FOREVER)
            .await
            .unwrap();
        assert_eq!(Instant::now(), before);
    }

    /// What RDS would count: the most calls in any one second, wherever it starts.
    fn busiest_second(calls: &[Instant]) -> usize {
        calls
            .iter()
            .map(|&from| {
                calls
                    .iter()
                    .filter(|&&at| at >= from && at < from + Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn no_second_holds_more_than_twice_the_rate() {
        // A quiet spell fills the bucket; then 200 calls arrive at once, as when a replica
        // takes over the jobs of one that died, with stops among them.
        let budget = std::sync::Arc::new(Budget::new(10.0));
        tokio::time::sleep(Duration::from_secs(600)).await;
        let calls = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..200 {
            let (budget, calls) = (budget.clone(), calls.clone());
            let priority = if i % 5 == 0 {
                Priority::Stop
            } else {
                Priority::Other
            };
            tasks.push(tokio::spawn(async move {
                budget.acquire("a", "r", priority, FOREVER).await.unwrap();
                calls.lock().unwrap().push(Instant::now());
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 200);
        assert!(busiest_second(&calls) <= 20, "{}", busiest_second(&calls));
        // And the budget is used: 200 calls at 10 a second, the first 10 at once.
        let span = *calls.iter().max().unwrap() - *calls.iter().min().unwrap();
        assert!(span <= Duration::from_millis(19_100), "{span:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_for_a_while() {
        let budget = Budget::new(4.0);
        for _ in 0..4 {
            budget
                .acquire("a", "r", Priority::Other, FOREVER)
                .await
                .unwrap();
        }
        budget.throttled("a", "r");
        let start = Instant::now();
        let mut calls = Vec::new();
        for _ in 0..20 {
            budget
                .acquire("a", "r", Priority::Other, FOREVER)
                .await
                .unwrap();
            calls.push(Instant::now());
        }
        assert!(per_second(start, &calls)[..9].iter().all(|&n| n <= 2));
        // A minute later the full rate is back.
        tokio::time::sleep(SLOW_DOWN_FOR).await;
        let start = Instant::now();
        let mut calls = Vec::new();
        for _ in 0..20 {
            budget
                .acquire("a", "r", Priority::Other, FOREVER)
                .await
                .unwrap();
            calls.push(Instant::now());
        }
        assert!(per_second(start, &calls)[1] >= 4);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_go_before_other_calls() {
        let budget = std::sync::Arc::new(Budget::new(1.0));
        // Empty the bucket.
        budget
            .acquire("a", "r", Priority::Other, FOREVER)
            .await
            .unwrap();
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (i, priority) in [Priority::Other, Priority::Other, Priority::Stop]
            .into_iter()
            .enumerate()
        {
            let (budget, order) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                // Let the two polls queue first.
                tokio::time::sleep(Duration::from_millis(10 * i as u64)).await;
                budget.acquire("a", "r", priority, FOREVER).await.unwrap();
                order.lock().unwrap().push(priority);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(order.lock().unwrap()[0], Priority::Stop);
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_longer_than_allowed_gives_up_at_once() {
        let budget = Budget::new(1.0);
        budget
            .acquire("a", "r", Priority::Other, FOREVER)
            .await
            .unwrap();
        // The next token comes in a second: not within half a second.
        let before = Instant::now();
        let limit = Duration::from_millis(500);
        assert_eq!(
            budget.acquire("a", "r", Priority::Stop, limit).await,
            Err(Exhausted)
        );
        assert_eq!(
            budget.acquire("a", "r", Priority::Other, limit).await,
            Err(Exhausted)
        );
        assert_eq!(Instant::now(), before, "gave up without waiting");
        // Within two seconds it is served.
        let limit = Duration::from_secs(2);
        assert_eq!(
            budget.acquire("a", "r", Priority::Other, limit).await,
            Ok(true)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_stop_does_not_hold_back_other_calls() {
        let budget = std::sync::Arc::new(Budget::new(1.0));
        budget
            .acquire("a", "r", Priority::Other, FOREVER)
            .await
            .unwrap();
        // A stop starts waiting for its token, and its caller gives up on it.
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.acquire("a", "r", Priority::Stop, FOREVER).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiting.abort();
        let _ = waiting.await;
        // Other calls are served at the rate, not held behind a stop that is gone.
        let before = Instant::now();
        for _ in 0..3 {
            budget
                .acquire("a", "r", Priority::Other, Duration::from_secs(5))
                .await
                .unwrap();
        }
        assert!(Instant::now() - before <= Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_slowest_share_follows_throttling() {
        let budget = Budget::new(4.0);
        assert_eq!(budget.slowest_share(), 1.0);
        budget
            .acquire("a", "r", Priority::Other, FOREVER)
            .await
            .unwrap();
        budget
            .acquire("b", "r", Priority::Other, FOREVER)
            .await
            .unwrap();
        budget.throttled("a", "r");
        budget.throttled("a", "r");
        assert_eq!(budget.slowest_share(), 0.25);
        tokio::time::sleep(SLOW_DOWN_FOR).await;
        assert_eq!(budget.slowest_share(), 1.0);
    }
}

//! Skip-and-count for bad data: a corrupt image, a malformed line or a
//! truncated shard costs one sample, not the run, until too many were
//! skipped (issue 15's budget: by default 1% of the samples met).

use std::sync::{Arc, Mutex, MutexGuard};

use crate::DataError;

/// How many skip reasons a budget keeps (the first ones).
const KEPT_REASONS: usize = 5;

/// How many skipped samples a budget allows: at any point, at most
/// `max(grace, floor(max_share * seen))`, where `seen` counts the samples
/// read and skipped so far. The grace keeps the first bad samples of a run
/// from exceeding a share of a handful.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkipLimit {
    /// Largest share of skipped samples (0.01 by default).
    pub max_share: f64,
    /// Skips always allowed (10 by default).
    pub grace: usize,
}

impl Default for SkipLimit {
    fn default() -> Self {
        Self {
            max_share: 0.01,
            grace: 10,
        }
    }
}

impl SkipLimit {
    /// At most `count` skipped samples, whatever the share.
    pub fn count(count: usize) -> Self {
        Self {
            max_share: 0.0,
            grace: count,
        }
    }

    /// The skips allowed once `seen` samples were met.
    pub fn allowed(&self, seen: usize) -> usize {
        self.grace
            .max((self.max_share.clamp(0.0, 1.0) * seen as f64).floor() as usize)
    }
}

/// What a budget has counted (a run's `eval.json` carries it as `data`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SkipReport {
    /// Samples read.
    pub read: usize,
    /// Samples skipped.
    pub skipped: usize,
    /// The first skip reasons, each naming the file and line, key or member.
    pub reasons: Vec<String>,
}

/// Counts read and skipped samples against a [`SkipLimit`]. Clones share
/// one count (loader threads and readers of one run report to one budget).
#[derive(Debug, Clone)]
pub struct CorruptBudget {
    limit: SkipLimit,
    keep: usize,
    state: Arc<Mutex<SkipReport>>,
}

impl Default for CorruptBudget {
    /// [`SkipLimit::default`]: 1% of the samples met, at least 10.
    fn default() -> Self {
        Self::new(SkipLimit::default())
    }
}

impl CorruptBudget {
    /// A budget of `limit`.
    pub fn new(limit: SkipLimit) -> Self {
        Self {
            limit,
            keep: KEPT_REASONS,
            state: Arc::default(),
        }
    }

    /// A budget that never stops reading and keeps every reason (`data
    /// check` lists every problem).
    pub fn unlimited() -> Self {
        Self {
            keep: usize::MAX,
            ..Self::new(SkipLimit::count(usize::MAX))
        }
    }

    /// The limit.
    pub fn limit(&self) -> SkipLimit {
        self.limit
    }

    fn state(&self) -> MutexGuard<'_, SkipReport> {
        // A reader that panicked elsewhere leaves valid counts behind.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts one sample read.
    pub fn read(&self) {
        self.state().read += 1;
    }

    /// Counts one sample skipped for `reason` (which names the file and the
    /// line, key or member); an error naming the count once more were
    /// skipped than the limit allows.
    pub fn skip(&self, reason: impl Into<String>) -> Result<(), DataError> {
        let mut state = self.state();
        state.skipped += 1;
        if state.reasons.len() < self.keep {
            state.reasons.push(reason.into());
        }
        let seen = state.read + state.skipped;
        let allowed = self.limit.allowed(seen);
        if state.skipped > allowed {
            return Err(DataError::TooManySkipped {
                skipped: state.skipped,
                seen,
                allowed,
                first: state.reasons.join("; "),
            });
        }
        Ok(())
    }

    /// The counts so far.
    pub fn report(&self) -> SkipReport {
        self.state().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_larger_of_grace_and_share() {
        let limit = SkipLimit::default();
        assert_eq!(limit.allowed(0), 10);
        assert_eq!(limit.allowed(1999), 19);
        assert_eq!(SkipLimit::count(3).allowed(1_000_000), 3);
    }

    #[test]
    fn exceeding_the_budget_names_the_count_and_the_first_reasons() {
        let budget = CorruptBudget::new(SkipLimit::count(2));
        let shared = budget.clone();
        budget.read();
        budget.skip("a.jsonl line 3: bad").unwrap();
        shared.skip("a.jsonl line 5: bad").unwrap();
        let error = budget.skip("a.jsonl line 9: bad").unwrap_err().to_string();
        assert!(error.starts_with("3 of 4 samples skipped"), "{error}");
        assert!(
            error.contains("line 3") && error.contains("line 9"),
            "{error}"
        );
        let report = shared.report();
        assert_eq!(
            (report.read, report.skipped, report.reasons.len()),
            (1, 3, 3)
        );
    }
}

//! A metrics recorder for tests: every counter and gauge by name and labels, read back as
//! numbers. Install it for one test's thread ([`Recorded::run_local`], so tests running beside it
//! cannot move its numbers) or once for a whole test binary ([`Recorded::global`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// The counters and gauges recorded so far, each under `name{label=value,…}` (labels in the
/// order the code gives them; `name{}` without labels). Clones share the numbers.
#[derive(Clone, Default)]
pub struct Recorded {
    counters: Cells,
    gauges: Cells,
}

/// Metric cells by key: a counter's count, or a gauge's `f64` as its bits (what `metrics`
/// implements for `AtomicU64`).
type Cells = Arc<Mutex<HashMap<String, Arc<AtomicU64>>>>;

impl Recorded {
    /// The count of counter `key` (`name{labels}`); 0 if it was never registered.
    pub fn counter(&self, key: &str) -> u64 {
        cell(&self.counters, key).map_or(0, |count| count.load(Ordering::SeqCst))
    }

    /// The sum of every counter named `name`, whatever its labels.
    pub fn counter_total(&self, name: &str) -> u64 {
        let prefix = format!("{name}{{");
        let counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        counters
            .iter()
            .filter(|(key, _)| key.starts_with(&prefix))
            .map(|(_, count)| count.load(Ordering::SeqCst))
            .sum()
    }

    /// The value of gauge `key` (`name{labels}`), if it was ever registered.
    pub fn gauge(&self, key: &str) -> Option<f64> {
        cell(&self.gauges, key).map(|bits| f64::from_bits(bits.load(Ordering::SeqCst)))
    }

    /// Runs `test` on a current-thread runtime with this recorder installed for this thread only.
    ///
    /// # Panics
    ///
    /// If the runtime cannot be built.
    #[allow(clippy::expect_used, reason = "test support: a test that cannot set up must fail")]
    pub fn run_local<F: Future>(&self, test: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime");
        metrics::with_local_recorder(self, || runtime.block_on(test))
    }

    /// The recorder of this whole test binary, installed as the global recorder on first use.
    ///
    /// # Panics
    ///
    /// If another global recorder was installed first.
    #[allow(clippy::expect_used, reason = "test support: a test that cannot set up must fail")]
    pub fn global() -> &'static Recorded {
        static GLOBAL: OnceLock<&'static Recorded> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let recorded: &'static Recorded = Box::leak(Box::default());
            metrics::set_global_recorder(recorded).expect("the only recorder of this test binary");
            recorded
        })
    }
}

fn cell(cells: &Cells, key: &str) -> Option<Arc<AtomicU64>> {
    cells.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
}

/// `name{label=value,…}`.
fn key_of(key: &Key) -> String {
    let labels: Vec<String> =
        key.labels().map(|label| format!("{}={}", label.key(), label.value())).collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

fn register(cells: &Cells, key: &Key, initial: u64) -> Arc<AtomicU64> {
    let mut cells = cells.lock().unwrap_or_else(PoisonError::into_inner);
    cells.entry(key_of(key)).or_insert_with(|| Arc::new(AtomicU64::new(initial))).clone()
}

impl Recorder for Recorded {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(register(&self.counters, key, 0))
    }

    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(register(&self.gauges, key, 0f64.to_bits()))
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_gauges_read_back_by_name_and_labels() {
        let recorded = Recorded::default();
        recorded.run_local(async {
            metrics::counter!("hits", "page" => "a").increment(2);
            metrics::counter!("hits", "page" => "b").increment(3);
            metrics::gauge!("lag", "projection" => "p").set(7.5);
            metrics::gauge!("lag", "projection" => "p").decrement(2.0);
        });
        assert_eq!(recorded.counter("hits{page=a}"), 2);
        assert_eq!(recorded.counter("hits{page=c}"), 0);
        assert_eq!(recorded.counter_total("hits"), 5);
        assert_eq!(recorded.gauge("lag{projection=p}"), Some(5.5));
        assert_eq!(recorded.gauge("lag{projection=q}"), None);
    }
}

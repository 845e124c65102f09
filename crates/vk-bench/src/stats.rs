//! Percentiles of latency samples.

use serde_json::{Value, json};

/// Latency samples in microseconds; summarised in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<i64>);

impl Samples {
    /// No samples yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample (µs).
    pub fn push(&mut self, us: i64) {
        self.0.push(us);
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No samples.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `p`-quantile (0.0–1.0, nearest rank) in milliseconds; 0 without samples.
    pub fn quantile_ms(&mut self, p: f64) -> f64 {
        if self.0.is_empty() {
            return 0.0;
        }
        self.0.sort_unstable();
        let rank = ((self.0.len() as f64) * p).ceil() as usize;
        let i = rank.clamp(1, self.0.len()) - 1;
        round3(self.0[i] as f64 / 1000.0)
    }

    /// `{"count","min","p50","p90","p99","p999","max","mean"}`, milliseconds.
    pub fn summary(&mut self) -> Value {
        let mean = if self.0.is_empty() {
            0.0
        } else {
            self.0.iter().sum::<i64>() as f64 / self.0.len() as f64 / 1000.0
        };
        json!({
            "count": self.0.len(),
            "min": self.quantile_ms(0.0),
            "p50": self.quantile_ms(0.50),
            "p90": self.quantile_ms(0.90),
            "p99": self.quantile_ms(0.99),
            "p999": self.quantile_ms(0.999),
            "max": self.quantile_ms(1.0),
            "mean": round3(mean),
        })
    }
}

/// Rounded to three decimals (µs resolution for milliseconds).
pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let mut s = Samples::new();
        for us in (1..=100).rev() {
            s.push(us * 1000);
        }
        assert_eq!(s.quantile_ms(0.5), 50.0);
        assert_eq!(s.quantile_ms(0.99), 99.0);
        assert_eq!(s.quantile_ms(1.0), 100.0);
        assert_eq!(s.quantile_ms(0.0), 1.0);
        assert_eq!(Samples::new().quantile_ms(0.5), 0.0);
    }
}

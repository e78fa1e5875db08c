//! Learning rate per epoch (the schedule is stepped once per epoch, as in the CIFAR recipes).

use crate::config::{ScheduleKind, TrainConfig};

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    kind: ScheduleKind,
    base: f64,
    min: f64,
    milestones: Vec<usize>,
    gamma: f64,
    warmup: usize,
    epochs: usize,
}

impl Schedule {
    pub fn new(t: &TrainConfig) -> Self {
        Self {
            kind: t.schedule,
            base: t.lr,
            min: t.min_lr.unwrap_or(0.0),
            milestones: t.milestones.clone().unwrap_or_default(),
            gamma: t.gamma.unwrap_or(0.1),
            warmup: t.warmup_epochs,
            epochs: t.epochs,
        }
    }

    /// The rate used throughout epoch `epoch` (0-based).
    ///
    /// Warm-up: `base · (epoch + 1) / warmup`. Cosine, PyTorch's `CosineAnnealingLR` with
    /// `T_max` = the epochs after warm-up: `min + (base − min)(1 + cos(π e / T_max)) / 2`.
    /// Step: `base · gamma^(milestones ≤ epoch)`. Every factor is in [0, 1] and multiplies a
    /// finite rate last, so no finite setting overflows.
    pub fn lr(&self, epoch: usize) -> f64 {
        if epoch < self.warmup {
            return self.base * ((epoch + 1) as f64 / self.warmup as f64);
        }
        match self.kind {
            ScheduleKind::Constant => self.base,
            ScheduleKind::Step => {
                let passed = self.milestones.iter().filter(|&&m| m <= epoch).count();
                self.base * self.gamma.powi(passed as i32)
            }
            ScheduleKind::Cosine => {
                let t_max = (self.epochs - self.warmup).max(1) as f64;
                let e = (epoch - self.warmup) as f64;
                let fraction = (1.0 + (std::f64::consts::PI * e / t_max).cos()) / 2.0;
                // Weighted as base·f + min·(1 − f): no difference of two large rates.
                self.base * fraction + self.min * (1.0 - fraction)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> TrainConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn cosine_matches_the_closed_form() {
        let s = Schedule::new(&config("epochs = 200\nlr = 0.1"));
        assert_eq!(s.lr(0), 0.1);
        assert!((s.lr(100) - 0.05).abs() < 1e-15);
        assert!((s.lr(50) - 0.1 * (1.0 + (std::f64::consts::PI / 4.0).cos()) / 2.0).abs() < 1e-15);
        assert!(s.lr(199) > 0.0 && s.lr(199) < 1e-4);
    }

    #[test]
    fn cosine_with_floor_and_warmup() {
        let s = Schedule::new(&config(
            "epochs = 12\nlr = 0.4\nmin_lr = 0.01\nwarmup_epochs = 2",
        ));
        assert!((s.lr(0) - 0.2).abs() < 1e-15);
        assert!((s.lr(1) - 0.4).abs() < 1e-15);
        assert!((s.lr(2) - 0.4).abs() < 1e-15);
        assert!((s.lr(7) - (0.01 + 0.39 * 0.5)).abs() < 1e-12);
    }

    #[test]
    fn the_largest_finite_rates_stay_finite() {
        for text in [
            "epochs = 9\nlr = 1e308",
            "epochs = 9\nlr = 1.7e308\nmin_lr = 1.6e308",
            "epochs = 9\nlr = 1.7e308\nwarmup_epochs = 3",
            "epochs = 9\nlr = 1.7e308\nschedule = \"step\"\nmilestones = [2]",
        ] {
            let s = Schedule::new(&config(text));
            for e in 0..9 {
                assert!(
                    s.lr(e).is_finite() && s.lr(e) >= 0.0,
                    "{text}: epoch {e}: {}",
                    s.lr(e)
                );
            }
        }
    }

    #[test]
    fn step_multiplies_at_each_milestone() {
        let s = Schedule::new(&config(
            "schedule = \"step\"\nmilestones = [3, 5]\ngamma = 0.5\nlr = 1.0",
        ));
        let rates: Vec<f64> = (0..7).map(|e| s.lr(e)).collect();
        assert_eq!(rates, [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]);
    }
}

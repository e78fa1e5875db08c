//! Progress of the epoch loop: a live bar on a terminal, plain log lines otherwise.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use super::EpochMetrics;

pub struct Progress {
    bar: Option<ProgressBar>,
    epochs: usize,
    /// The evaluated split's name.
    evaluated_on: &'static str,
    epoch: usize,
    steps: usize,
}

impl Progress {
    /// A bar when stdout is a terminal, log lines on stderr otherwise.
    pub fn new(epochs: usize, evaluated_on: &'static str) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = ProgressBar::new(0);
            let style =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
                    .expect("a valid template")
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            epochs,
            evaluated_on,
            epoch: 0,
            steps: 0,
        }
    }

    pub fn start_epoch(&mut self, epoch: usize, steps: usize) {
        self.epoch = epoch;
        self.steps = steps;
        if let Some(bar) = &self.bar {
            bar.reset();
            bar.set_length(steps as u64);
            bar.set_prefix(format!("epoch {}/{}", epoch + 1, self.epochs));
        }
    }

    /// After step `step` (0-based) with running means of loss and accuracy.
    pub fn step(&self, step: usize, loss: f64, accuracy: f64, lr: f64, images_per_second: f64) {
        let message = format!(
            "loss {loss:.4} acc {:.2}% lr {lr:.4} {images_per_second:.0} img/s",
            100.0 * accuracy
        );
        match &self.bar {
            Some(bar) => {
                bar.set_position(step as u64 + 1);
                bar.set_message(message);
            }
            None => {
                let tenth = (self.steps / 10).max(1);
                if (step + 1) % tenth == 0 && step + 1 != self.steps {
                    eprintln!(
                        "epoch {}/{} step {}/{}: {message}",
                        self.epoch + 1,
                        self.epochs,
                        step + 1,
                        self.steps
                    );
                }
            }
        }
    }

    pub fn finish_epoch(&self, m: &EpochMetrics) {
        let line = format!(
            "epoch {}/{}: train loss {:.4} acc {:.2}% | {} loss {:.4} acc {:.2}% | lr {:.5} | {:.0} img/s | {:.1}s",
            m.epoch,
            self.epochs,
            m.train_loss,
            100.0 * m.train_accuracy,
            self.evaluated_on,
            m.test_loss,
            100.0 * m.test_accuracy,
            m.lr,
            m.images_per_second,
            m.seconds
        );
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! The learning-rate schedule (linear warm-up, then linear decay to zero, as
//! BERT and UNITER) and the per-step random generators, which make a step's
//! draws a function of the seed and the step alone, so a run draws the same
//! whatever came before it (and a resumed run draws what it would have).

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// The learning rate of step `step` (0-based) of `steps`: linear warm-up
/// over `warmup_steps` to `peak`, then linear decay to zero at `steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearSchedule {
    /// Peak learning rate, reached at the end of the warm-up.
    pub peak: f64,
    /// Warm-up steps (at most `steps - 1`).
    pub warmup_steps: usize,
    /// Steps of the whole run.
    pub steps: usize,
}

impl LinearSchedule {
    /// The learning rate of step `step`.
    pub fn learning_rate(&self, step: usize) -> f64 {
        let warmup = self.warmup_steps.min(self.steps.saturating_sub(1));
        if step < warmup {
            self.peak * (step + 1) as f64 / warmup as f64
        } else {
            let remaining = (self.steps - step) as f64 / (self.steps - warmup) as f64;
            self.peak * remaining
        }
    }
}

/// What a training step draws at random, each from a generator of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDraw {
    /// The step's examples, masks and negatives.
    Batch,
    /// The step's objectives under per-step task sampling.
    Objectives,
}

/// The generator of one of step `step`'s draws: it depends only on the seed,
/// the step and the draw.
pub fn step_rng(seed: u64, step: usize, draw: StepDraw) -> ChaCha8Rng {
    let seed = match draw {
        StepDraw::Batch => seed,
        StepDraw::Objectives => !seed,
    };
    ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let schedule = LinearSchedule {
            peak: 1.0,
            warmup_steps: 10,
            steps: 100,
        };
        assert!((schedule.learning_rate(0) - 0.1).abs() < 1e-12);
        assert!((schedule.learning_rate(9) - 1.0).abs() < 1e-12);
        assert!((schedule.learning_rate(10) - 1.0).abs() < 1e-12);
        assert!((schedule.learning_rate(55) - 0.5).abs() < 1e-12);
        let last = schedule.learning_rate(99);
        assert!(last > 0.0 && last < 0.02);
    }

    #[test]
    fn step_generators_depend_on_seed_step_and_draw_only() {
        let draw = |seed, step, what| step_rng(seed, step, what).random::<u64>();
        assert_eq!(draw(1, 5, StepDraw::Batch), draw(1, 5, StepDraw::Batch));
        assert_ne!(draw(1, 5, StepDraw::Batch), draw(1, 6, StepDraw::Batch));
        assert_ne!(draw(1, 5, StepDraw::Batch), draw(2, 5, StepDraw::Batch));
        assert_ne!(
            draw(1, 5, StepDraw::Batch),
            draw(1, 5, StepDraw::Objectives)
        );
    }
}

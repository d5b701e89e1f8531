//! The learning-rate schedule (linear warm-up, then linear decay to zero as
//! BERT and UNITER, or cosine decay as CLIP and BLIP) and the per-step
//! random generators, which make a step's draws a function of the seed and
//! the step alone, so a run draws the same whatever came before it (and a
//! resumed run draws what it would have).
//!
//! The schedule is a closed form of the step rather than Burn's
//! `LrScheduler`s, which are stateful iterators: a resumed run needs the
//! rate of any step without replaying the ones before.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How the learning rate falls from its peak to zero after the warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// In a straight line (BERT, UNITER).
    #[default]
    Linear,
    /// Along half a cosine (CLIP, BLIP): slower at first, faster in the middle.
    Cosine,
}

/// The learning rate of step `step` (0-based) of `steps`: linear warm-up
/// over `warmup_steps` to `peak`, then `decay` to zero at `steps`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmupSchedule {
    /// Peak learning rate, reached at the end of the warm-up.
    pub peak: f64,
    /// Warm-up steps (at most `steps - 1`).
    pub warmup_steps: usize,
    /// Steps of the whole run.
    pub steps: usize,
    /// The decay after the warm-up.
    pub decay: Decay,
}

impl WarmupSchedule {
    /// The learning rate of step `step`.
    pub fn learning_rate(&self, step: usize) -> f64 {
        let warmup = self.warmup_steps.min(self.steps.saturating_sub(1));
        if step < warmup {
            return self.peak * (step + 1) as f64 / warmup as f64;
        }
        // 1 at the end of the warm-up, 0 at `steps`.
        let remaining = (self.steps - step) as f64 / (self.steps - warmup) as f64;
        match self.decay {
            Decay::Linear => self.peak * remaining,
            Decay::Cosine => self.peak * 0.5 * (1.0 - (std::f64::consts::PI * remaining).cos()),
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
    /// The seed of the backend's own generator for the step (dropout).
    Backend,
}

/// The generator of one of step `step`'s draws: it depends only on the seed,
/// the step and the draw.
pub fn step_rng(seed: u64, step: usize, draw: StepDraw) -> ChaCha8Rng {
    let seed = match draw {
        StepDraw::Batch => seed,
        StepDraw::Objectives => !seed,
        StepDraw::Backend => seed ^ 0xd1b5_4a32_d192_ed03,
    };
    ChaCha8Rng::seed_from_u64(seed ^ (step as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The seed the backend's generator is reset to before step `step`: Burn's
/// dropout draws from the backend's one global generator, so seeding it
/// once at the start would make a resumed run's masks differ from an
/// uninterrupted run's; reseeding it at each step makes them a function of
/// the seed and the step too.
pub fn backend_seed(seed: u64, step: usize) -> u64 {
    step_rng(seed, step, StepDraw::Backend).random()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn learning_rate_warms_up_then_decays_to_zero() {
        let schedule = WarmupSchedule {
            peak: 1.0,
            warmup_steps: 10,
            steps: 100,
            decay: Decay::Linear,
        };
        assert!((schedule.learning_rate(0) - 0.1).abs() < 1e-12);
        assert!((schedule.learning_rate(9) - 1.0).abs() < 1e-12);
        assert!((schedule.learning_rate(10) - 1.0).abs() < 1e-12);
        assert!((schedule.learning_rate(55) - 0.5).abs() < 1e-12);
        let last = schedule.learning_rate(99);
        assert!(last > 0.0 && last < 0.02);
    }

    /// Cosine decay: `peak · (1 - cos(π r)) / 2` with `r` the share of the
    /// decay left, 1 after the warm-up and 0 at the end: 10 warm-up steps
    /// of 110, so step 10 + 25 leaves r = 3/4 and step 10 + 75 r = 1/4.
    #[test]
    fn cosine_decay_follows_half_a_cosine() {
        let schedule = WarmupSchedule {
            peak: 2.0,
            warmup_steps: 10,
            steps: 110,
            decay: Decay::Cosine,
        };
        let close = |step, expected: f64| {
            let got = schedule.learning_rate(step);
            assert!(
                (got - expected).abs() < 1e-12,
                "step {step}: {got} vs {expected}"
            );
        };
        close(4, 1.0);
        close(10, 2.0);
        close(35, 1.0 + 0.5f64.sqrt());
        close(60, 1.0);
        close(85, 1.0 - 0.5f64.sqrt());
        close(109, 1.0 - (std::f64::consts::PI / 100.0).cos());
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
        assert_ne!(draw(1, 5, StepDraw::Batch), draw(1, 5, StepDraw::Backend));
        assert_eq!(backend_seed(1, 5), backend_seed(1, 5));
        assert_ne!(backend_seed(1, 5), backend_seed(1, 6));
    }
}

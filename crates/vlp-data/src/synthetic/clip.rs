//! Short clips of moving objects, for frame-order objectives.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::render::{render, RgbImage};
use super::scene::Scene;

/// Frames of one scene whose objects move at constant velocity and bounce
/// off the image borders.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The scene at the first frame.
    pub scene: Scene,
    /// Frames in temporal order.
    pub frames: Vec<RgbImage>,
}

/// Animates `scene` over `num_frames` frames; each object moves 1–3 pixels a
/// frame in a random direction.
pub fn animate(scene: &Scene, num_frames: usize, rng: &mut ChaCha8Rng) -> Clip {
    let side = scene.image_size as f32;
    let mut objects = scene.objects.clone();
    let mut velocities: Vec<(f32, f32)> = objects
        .iter()
        .map(|_| {
            let angle = rng.random_range(0.0..std::f32::consts::TAU);
            let speed = rng.random_range(1.0..3.0);
            (speed * angle.cos(), speed * angle.sin())
        })
        .collect();
    let mut frames = Vec::with_capacity(num_frames);
    for _ in 0..num_frames {
        frames.push(render(&objects, scene.image_size, rng));
        for (object, velocity) in objects.iter_mut().zip(velocities.iter_mut()) {
            for (position, speed) in [
                (&mut object.centre.0, &mut velocity.0),
                (&mut object.centre.1, &mut velocity.1),
            ] {
                *position += *speed;
                let (low, high) = (object.radius, side - object.radius);
                if *position < low || *position > high {
                    *speed = -*speed;
                    *position = position.clamp(low, high);
                }
            }
        }
    }
    Clip {
        scene: scene.clone(),
        frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn frames_change_over_time_and_stay_in_bounds() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let scene = Scene::sample(&mut rng, 64);
        let clip = animate(&scene, 8, &mut rng);
        assert_eq!(clip.frames.len(), 8);
        let bright = |image: &RgbImage| {
            image
                .pixels
                .chunks(3)
                .filter(|p| p.iter().any(|&c| c > 60))
                .count()
        };
        // The objects never leave the frame, so the drawn area stays about the same.
        let first = bright(&clip.frames[0]) as f32;
        for frame in &clip.frames {
            assert!((bright(frame) as f32 - first).abs() <= 0.3 * first + 4.0);
        }
        assert_ne!(clip.frames[0].pixels, clip.frames[7].pixels);
    }
}

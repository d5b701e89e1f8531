//! Short clips of moving objects and captions of their motion (survey
//! §2.1.2's video features, §4.7's frame order modelling; issue 19).
//!
//! Every object moves in one of four directions at one speed and bounces
//! off the image border it reaches. The caption names each object with the
//! direction it starts in and whether it bounces back, so two clips of one
//! scene whose objects move differently (a motion twin: same objects, same
//! first frame) are told apart only by watching the frames in order.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::render::{render, RgbImage};
use super::scene::{Scene, SceneObject};

/// How many distinct phrasings [`Clip::caption`] offers for every clip.
pub const NUM_CLIP_PHRASINGS: usize = 4;

/// How far an object moves per frame, as a share of the image side (2
/// pixels a frame in a 64-pixel world).
pub const SPEED: f32 = 1.0 / 32.0;

/// The direction an object starts moving in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Towards smaller x.
    Left,
    /// Towards larger x.
    Right,
    /// Towards smaller y (the top of the image).
    Up,
    /// Towards larger y.
    Down,
}

impl Direction {
    /// Every direction.
    pub const ALL: [Direction; 4] = [
        Direction::Left,
        Direction::Right,
        Direction::Up,
        Direction::Down,
    ];

    /// The word a caption uses ("left", ...): a horizontal flip of the
    /// frames swaps "left" and "right" in the caption as in the images.
    pub fn word(self) -> &'static str {
        match self {
            Direction::Left => "left",
            Direction::Right => "right",
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }

    /// The unit step `(dx, dy)` in image coordinates.
    pub fn step(self) -> (f32, f32) {
        match self {
            Direction::Left => (-1.0, 0.0),
            Direction::Right => (1.0, 0.0),
            Direction::Up => (0.0, -1.0),
            Direction::Down => (0.0, 1.0),
        }
    }

    /// A direction drawn uniformly.
    pub fn sample(rng: &mut ChaCha8Rng) -> Direction {
        Direction::ALL[rng.random_range(0..Direction::ALL.len())]
    }
}

/// How one object moves over a clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Motion {
    /// The direction it starts in.
    pub direction: Direction,
    /// Whether it reaches the border within the clip and bounces back.
    pub bounces: bool,
}

/// Frames of one scene whose objects move and bounce, with the motion of
/// each object.
#[derive(Debug, Clone)]
pub struct Clip {
    /// The scene at the first frame.
    pub scene: Scene,
    /// One motion per object of the scene, in its order.
    pub motions: Vec<Motion>,
    /// Frames in temporal order.
    pub frames: Vec<RgbImage>,
}

impl Clip {
    /// Caption number `phrasing` of the clip ([`motion_caption`]).
    pub fn caption(&self, phrasing: usize) -> String {
        motion_caption(&self.scene, &self.motions, phrasing)
    }

    /// What the clip's captions state ([`motion_key`]).
    pub fn description_key(&self) -> String {
        motion_key(&self.scene, &self.motions)
    }
}

/// Caption number `phrasing` (taken modulo [`NUM_CLIP_PHRASINGS`]) of
/// `scene`'s objects moving as `motions` say: every phrasing names every
/// object with its attributes, its direction and whether it bounces back.
pub fn motion_caption(scene: &Scene, motions: &[Motion], phrasing: usize) -> String {
    let phrasing = phrasing % NUM_CLIP_PHRASINGS;
    let mut clauses: Vec<String> = scene
        .objects
        .iter()
        .zip(motions)
        .map(|(object, motion)| clause(object, *motion, phrasing))
        .collect();
    if phrasing == 1 {
        clauses.reverse();
    }
    let text = clauses.join(" , ");
    match phrasing {
        1 => format!("in this clip {text}"),
        2 => format!("a clip of {text}"),
        _ => text,
    }
}

/// What the captions of `scene` moving as `motions` state: each object's
/// phrase with its motion, sorted. Clips with equal keys match the same
/// captions.
pub fn motion_key(scene: &Scene, motions: &[Motion]) -> String {
    let mut parts: Vec<String> = scene
        .objects
        .iter()
        .zip(motions)
        .map(|(object, motion)| clause(object, *motion, 0))
        .collect();
    parts.sort_unstable();
    parts.join("|")
}

/// "a small red circle moves left and bounces back" in `phrasing`'s words.
fn clause(object: &SceneObject, motion: Motion, phrasing: usize) -> String {
    let (article, verb, bounce) = match phrasing {
        2 => ("a", "moving", "bouncing back"),
        3 => ("the", "goes", "comes back"),
        _ => ("a", "moves", "bounces back"),
    };
    let direction = motion.direction.word();
    let phrase = object.phrase();
    match motion.bounces {
        true => format!("{article} {phrase} {verb} {direction} and {bounce}"),
        false => format!("{article} {phrase} {verb} {direction}"),
    }
}

/// Where `scene`'s objects are at each of `num_frames` frames, object `i`
/// starting in `directions[i]` at [`SPEED`] and bouncing off the borders,
/// and how each moves over the clip.
///
/// # Panics
/// If `directions` does not hold one direction per object.
pub fn trajectory(
    scene: &Scene,
    directions: &[Direction],
    num_frames: usize,
) -> (Vec<Vec<SceneObject>>, Vec<Motion>) {
    assert_eq!(
        directions.len(),
        scene.objects.len(),
        "one direction per object"
    );
    let side = scene.image_size as f32;
    let speed = SPEED * side;
    let mut objects = scene.objects.clone();
    let mut velocities: Vec<(f32, f32)> = directions
        .iter()
        .map(|d| (d.step().0 * speed, d.step().1 * speed))
        .collect();
    let mut bounces = vec![false; objects.len()];
    let mut positions = Vec::with_capacity(num_frames);
    for frame in 0..num_frames {
        positions.push(objects.clone());
        if frame + 1 == num_frames {
            break;
        }
        for ((object, velocity), bounced) in objects
            .iter_mut()
            .zip(velocities.iter_mut())
            .zip(bounces.iter_mut())
        {
            for (position, speed) in [
                (&mut object.centre.0, &mut velocity.0),
                (&mut object.centre.1, &mut velocity.1),
            ] {
                *position += *speed;
                let (low, high) = (object.radius, side - object.radius);
                if *position < low || *position > high {
                    *speed = -*speed;
                    *position = position.clamp(low, high);
                    *bounced = true;
                }
            }
        }
    }
    let motions = directions
        .iter()
        .zip(bounces)
        .map(|(&direction, bounces)| Motion { direction, bounces })
        .collect();
    (positions, motions)
}

/// The clip of [`trajectory`], each frame drawn with `render_rng`
/// (background noise, colour jitter), so two clips of one scene rendered
/// from equal generators share their first frame.
///
/// # Panics
/// If `directions` does not hold one direction per object.
pub fn animate(
    scene: &Scene,
    directions: &[Direction],
    num_frames: usize,
    render_rng: &mut ChaCha8Rng,
) -> Clip {
    let (positions, motions) = trajectory(scene, directions, num_frames);
    let frames = positions
        .iter()
        .map(|objects| render(objects, scene.image_size, render_rng))
        .collect();
    Clip {
        scene: scene.clone(),
        motions,
        frames,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::scene::Relation;
    use rand::SeedableRng;

    fn object(colour: usize, shape: usize, x: f32, y: f32) -> SceneObject {
        SceneObject {
            colour,
            shape,
            size: 0,
            centre: (x, y),
            radius: 4.0,
        }
    }

    /// The mean position of the pixels of `colour` (exact: objects are not
    /// jittered past 12 per channel, the background stays below 45).
    fn centroid(image: &RgbImage, colour: [u8; 3]) -> (f32, f32) {
        let (mut sx, mut sy, mut n) = (0.0, 0.0, 0.0);
        for y in 0..image.height {
            for x in 0..image.width {
                let p = image.pixel(x, y);
                if (0..3).all(|c| (p[c] as i32 - colour[c] as i32).abs() <= 12) {
                    (sx, sy, n) = (sx + x as f32, sy + y as f32, n + 1.0);
                }
            }
        }
        (sx / n, sy / n)
    }

    #[test]
    fn objects_move_as_the_caption_says_and_bounce_off_the_border() {
        // Red at the left border moving left (bounces), blue in the middle
        // moving down (does not, in 6 frames of 2 pixels).
        let scene = Scene {
            image_size: 64,
            objects: vec![object(0, 0, 8.0, 32.0), object(2, 1, 40.0, 20.0)],
            relations: vec![Relation::LeftOf],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let clip = animate(&scene, &[Direction::Left, Direction::Down], 6, &mut rng);
        assert_eq!(clip.frames.len(), 6);
        assert_eq!(
            clip.caption(0),
            "a small red circle moves left and bounces back , a small blue square moves down"
        );
        assert_eq!(
            clip.caption(3),
            "the small red circle goes left and comes back , the small blue square goes down"
        );
        let red = crate::synthetic::COLOURS[0].1;
        let blue = crate::synthetic::COLOURS[2].1;
        let track = |colour| -> Vec<(f32, f32)> {
            clip.frames.iter().map(|f| centroid(f, colour)).collect()
        };
        let (red, blue) = (track(red), track(blue));
        // Red: left until the border (radius 4), then right; y still.
        assert!(red[1].0 < red[0].0 && red[5].0 > red[2].0, "{red:?}");
        assert!(red.iter().all(|p| (p.1 - red[0].1).abs() < 0.5));
        // Blue: 2 pixels down a frame (the speed), x still.
        for pair in blue.windows(2) {
            assert!((pair[1].1 - pair[0].1 - 2.0).abs() < 0.5, "{blue:?}");
            assert!((pair[1].0 - pair[0].0).abs() < 0.5);
        }
    }

    #[test]
    fn objects_stay_in_bounds_and_every_phrasing_states_every_motion() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for _ in 0..50 {
            let scene = Scene::sample(&mut rng, 64);
            let directions: Vec<Direction> = scene
                .objects
                .iter()
                .map(|_| Direction::sample(&mut rng))
                .collect();
            let clip = animate(&scene, &directions, 8, &mut rng.clone());
            assert_ne!(clip.frames[0].pixels, clip.frames[7].pixels);
            let (positions, motions) = trajectory(&scene, &directions, 8);
            assert_eq!(motions, clip.motions);
            for object in positions.iter().flatten() {
                let (low, high) = (object.radius, 64.0 - object.radius);
                assert!((low..=high).contains(&object.centre.0), "{object:?}");
                assert!((low..=high).contains(&object.centre.1), "{object:?}");
            }
            let captions: std::collections::HashSet<String> =
                (0..NUM_CLIP_PHRASINGS).map(|p| clip.caption(p)).collect();
            assert_eq!(captions.len(), NUM_CLIP_PHRASINGS);
            for caption in &captions {
                for (object, motion) in scene.objects.iter().zip(&clip.motions) {
                    assert!(caption.contains(&object.phrase()), "{caption}");
                    assert!(caption.contains(motion.direction.word()), "{caption}");
                }
            }
        }
    }
}

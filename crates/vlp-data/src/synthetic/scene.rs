//! Scenes of the synthetic world: objects with attributes, positions and the
//! spatial relations a caption states about them.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// Object colours with the RGB value they are drawn in.
pub const COLOURS: [(&str, [u8; 3]); 8] = [
    ("red", [220, 40, 40]),
    ("green", [40, 180, 60]),
    ("blue", [50, 80, 230]),
    ("yellow", [235, 220, 50]),
    ("purple", [150, 60, 200]),
    ("orange", [245, 140, 30]),
    ("white", [240, 240, 240]),
    ("cyan", [60, 220, 230]),
];

/// Object shapes.
pub const SHAPES: [&str; 5] = ["circle", "square", "triangle", "diamond", "cross"];

/// Object sizes with their radius as a fraction of the image side.
pub const SIZES: [(&str, f32); 2] = [("small", 0.10), ("large", 0.19)];

/// Number of distinct object classes (colour × shape × size): the label space
/// of the world's perfect detector.
pub const NUM_CLASSES: usize = COLOURS.len() * SHAPES.len() * SIZES.len();

/// One object: attributes, centre and radius in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SceneObject {
    /// Index into [`COLOURS`].
    pub colour: usize,
    /// Index into [`SHAPES`].
    pub shape: usize,
    /// Index into [`SIZES`].
    pub size: usize,
    /// Centre `(x, y)` in pixels, `y` growing downwards.
    pub centre: (f32, f32),
    /// Half of the side of the object's bounding box, in pixels.
    pub radius: f32,
}

impl SceneObject {
    /// The detector class of this object, in `0..NUM_CLASSES`.
    pub fn class_id(&self) -> usize {
        (self.colour * SHAPES.len() + self.shape) * SIZES.len() + self.size
    }

    /// "small red circle".
    pub fn phrase(&self) -> String {
        format!(
            "{} {} {}",
            SIZES[self.size].0, COLOURS[self.colour].0, SHAPES[self.shape]
        )
    }

    /// Bounding box `[x1, y1, x2, y2]` in pixels.
    pub fn bbox(&self) -> [f32; 4] {
        let (x, y) = self.centre;
        [
            x - self.radius,
            y - self.radius,
            x + self.radius,
            y + self.radius,
        ]
    }
}

/// How the first object of a pair lies relative to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// The first object's centre is left of the second's.
    LeftOf,
    /// Right of it.
    RightOf,
    /// Above it.
    Above,
    /// Below it.
    Below,
}

impl Relation {
    /// The relation seen from the other object.
    pub fn inverse(self) -> Relation {
        match self {
            Relation::LeftOf => Relation::RightOf,
            Relation::RightOf => Relation::LeftOf,
            Relation::Above => Relation::Below,
            Relation::Below => Relation::Above,
        }
    }

    /// "to the left of", as used in captions.
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::LeftOf => "to the left of",
            Relation::RightOf => "to the right of",
            Relation::Above => "above",
            Relation::Below => "below",
        }
    }

    /// Relation of `a` to `b`, or `None` when the offset is too close to a
    /// diagonal for a caption to state it unambiguously.
    fn between(a: &SceneObject, b: &SceneObject, image_size: f32) -> Option<Relation> {
        let dx = b.centre.0 - a.centre.0;
        let dy = b.centre.1 - a.centre.1;
        if (dx.abs() - dy.abs()).abs() < 0.08 * image_size {
            return None;
        }
        Some(if dx.abs() > dy.abs() {
            if dx > 0.0 {
                Relation::LeftOf
            } else {
                Relation::RightOf
            }
        } else if dy > 0.0 {
            Relation::Above
        } else {
            Relation::Below
        })
    }
}

/// A scene: 1–3 non-overlapping objects ordered left to right, and the
/// relation of each object to the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Scene {
    /// Side of the square image in pixels.
    pub image_size: usize,
    /// Objects sorted by the x coordinate of their centre.
    pub objects: Vec<SceneObject>,
    /// `relations[i]` is how `objects[i]` lies relative to `objects[i + 1]`.
    pub relations: Vec<Relation>,
}

impl Scene {
    /// Samples a scene; placements whose relations would be ambiguous or whose
    /// objects would overlap are redrawn.
    pub fn sample(rng: &mut ChaCha8Rng, image_size: usize) -> Scene {
        let side = image_size as f32;
        let count = rng.random_range(1..=3);
        loop {
            let objects = (0..count)
                .map(|_| {
                    let size = rng.random_range(0..SIZES.len());
                    let radius = (SIZES[size].1 * side).round();
                    let margin = radius + 1.0;
                    SceneObject {
                        colour: rng.random_range(0..COLOURS.len()),
                        shape: rng.random_range(0..SHAPES.len()),
                        size,
                        centre: (
                            rng.random_range(margin..side - margin),
                            rng.random_range(margin..side - margin),
                        ),
                        radius,
                    }
                })
                .collect();
            if let Some(scene) = Scene::from_objects(objects, image_size) {
                return scene;
            }
        }
    }

    /// The scene of `objects`, or `None` when they overlap, leave the image
    /// or stand in a relation too close to a diagonal to state.
    pub fn from_objects(mut objects: Vec<SceneObject>, image_size: usize) -> Option<Scene> {
        let side = image_size as f32;
        let inside = objects.iter().all(|o| {
            let [x1, y1, x2, y2] = o.bbox();
            x1 >= 0.0 && y1 >= 0.0 && x2 <= side && y2 <= side
        });
        if !inside || !separated(&objects) {
            return None;
        }
        objects.sort_by(|a, b| a.centre.0.total_cmp(&b.centre.0));
        let relations = objects
            .windows(2)
            .map(|pair| Relation::between(&pair[0], &pair[1], side))
            .collect::<Option<Vec<_>>>()?;
        Some(Scene {
            image_size,
            objects,
            relations,
        })
    }

    /// A scene that differs from this one in one attribute: one object's
    /// colour, shape or size changes, or two objects swap colours or shapes
    /// (so only the binding of attributes to objects differs). Such pairs are
    /// hard negatives for matching and contrastive objectives. `None` when the
    /// drawn change is impossible (e.g. a resized object would overlap).
    pub fn variant(&self, rng: &mut ChaCha8Rng) -> Option<Scene> {
        let mut objects = self.objects.clone();
        let n = objects.len();
        let i = rng.random_range(0..n);
        match rng.random_range(0..if n > 1 { 5 } else { 3 }) {
            0 => {
                objects[i].colour =
                    (objects[i].colour + rng.random_range(1..COLOURS.len())) % COLOURS.len()
            }
            1 => {
                objects[i].shape =
                    (objects[i].shape + rng.random_range(1..SHAPES.len())) % SHAPES.len()
            }
            2 => {
                let size = 1 - objects[i].size;
                objects[i].size = size;
                objects[i].radius = (SIZES[size].1 * self.image_size as f32).round();
            }
            kind => {
                let j = (i + rng.random_range(1..n)) % n;
                let (a, b) = (objects[i], objects[j]);
                if kind == 3 {
                    (objects[i].colour, objects[j].colour) = (b.colour, a.colour);
                } else {
                    (objects[i].shape, objects[j].shape) = (b.shape, a.shape);
                }
            }
        }
        Scene::from_objects(objects, self.image_size)
            .filter(|v| v.description_key() != self.description_key())
    }

    /// What every caption of this scene states, as one string: two scenes
    /// with the same key cannot be told apart from their captions.
    pub fn description_key(&self) -> String {
        let mut key = self.objects[0].phrase();
        for (relation, object) in self.relations.iter().zip(&self.objects[1..]) {
            key.push_str(&format!(" | {relation:?} | {}", object.phrase()));
        }
        key
    }
}

/// Bounding boxes apart by at least two pixels.
fn separated(objects: &[SceneObject]) -> bool {
    objects.iter().enumerate().all(|(i, a)| {
        objects[i + 1..].iter().all(|b| {
            let gap = a.radius + b.radius + 2.0;
            (a.centre.0 - b.centre.0).abs() > gap || (a.centre.1 - b.centre.1).abs() > gap
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn relations_match_geometry() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            let scene = Scene::sample(&mut rng, 64);
            assert!((1..=3).contains(&scene.objects.len()));
            assert_eq!(scene.relations.len(), scene.objects.len() - 1);
            for (i, relation) in scene.relations.iter().enumerate() {
                let (a, b) = (scene.objects[i], scene.objects[i + 1]);
                let (dx, dy) = (b.centre.0 - a.centre.0, b.centre.1 - a.centre.1);
                match relation {
                    Relation::LeftOf => assert!(dx > dy.abs()),
                    Relation::RightOf => assert!(-dx > dy.abs()),
                    Relation::Above => assert!(dy > dx.abs()),
                    Relation::Below => assert!(-dy > dx.abs()),
                }
            }
            for object in &scene.objects {
                let [x1, y1, x2, y2] = object.bbox();
                assert!(x1 >= 0.0 && y1 >= 0.0 && x2 <= 64.0 && y2 <= 64.0);
            }
        }
    }

    #[test]
    fn variants_differ_in_exactly_one_attribute() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut made = 0;
        for _ in 0..500 {
            let scene = Scene::sample(&mut rng, 64);
            let Some(variant) = scene.variant(&mut rng) else {
                continue;
            };
            made += 1;
            assert_ne!(variant.description_key(), scene.description_key());
            assert_eq!(variant.objects.len(), scene.objects.len());
            // Positions are kept, so objects correspond one to one.
            let mut changed = 0;
            for (a, b) in scene.objects.iter().zip(&variant.objects) {
                assert_eq!(a.centre, b.centre);
                changed += usize::from(a.colour != b.colour)
                    + usize::from(a.shape != b.shape)
                    + usize::from(a.size != b.size);
            }
            assert!((1..=2).contains(&changed), "{scene:?} -> {variant:?}");
        }
        assert!(made > 400, "most draws give a variant ({made})");
    }

    #[test]
    fn class_ids_cover_the_label_space_once() {
        let mut seen = [false; NUM_CLASSES];
        for colour in 0..COLOURS.len() {
            for shape in 0..SHAPES.len() {
                for size in 0..SIZES.len() {
                    let object = SceneObject {
                        colour,
                        shape,
                        size,
                        centre: (0.0, 0.0),
                        radius: 1.0,
                    };
                    assert!(!seen[object.class_id()]);
                    seen[object.class_id()] = true;
                }
            }
        }
        assert!(seen.iter().all(|&s| s));
    }
}

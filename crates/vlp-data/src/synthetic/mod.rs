//! The synthetic world: a deterministic generator of captioned images,
//! object boxes, visual questions and clips.
//!
//! Everything is a pure function of the world's seed, the split and an index,
//! so any sample can be regenerated anywhere without storing a data set.
//! Splits are assigned by hashing a scene's description key: train, val and
//! test never share a scene description, so held-out retrieval measures
//! generalisation to unseen combinations.

mod caption;
mod clip;
mod detector;
mod render;
mod scene;
mod vqa;

pub use caption::{caption, NUM_PHRASINGS};
pub use clip::{
    animate, motion_caption, motion_key, trajectory, Clip, Direction, Motion, NUM_CLIP_PHRASINGS,
    SPEED,
};
pub use detector::{DetectorConfig, SyntheticDetector, NUM_DETECTOR_LABELS};
pub use render::{render, RgbImage};
pub use scene::{Relation, Scene, SceneObject, COLOURS, NUM_CLASSES, SHAPES, SIZES};
pub use vqa::{answer_vocabulary, questions, QuestionKind, VqaItem};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

/// A partition of the world; scene descriptions never cross splits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training scenes (80 % of the descriptions).
    Train,
    /// Validation scenes (10 %).
    Val,
    /// Test scenes (10 %).
    Test,
}

impl Split {
    /// The split a description key belongs to: 80% train, 10% val, 10% test.
    pub fn of_description(key: &str) -> Split {
        match fnv1a(key.as_bytes()) % 10 {
            8 => Split::Val,
            9 => Split::Test,
            _ => Split::Train,
        }
    }

    fn salt(self) -> u64 {
        match self {
            Split::Train => 0x7261_696e,
            Split::Val => 0x0076_616c,
            Split::Test => 0x7465_7374,
        }
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ byte as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// SplitMix64 finaliser: decorrelates nearby seeds.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// One generated example: the scene, its rendered image and the generator
/// state that produced it (for further draws such as questions or clips).
#[derive(Debug, Clone)]
pub struct Sample {
    /// What the image shows.
    pub scene: Scene,
    /// The rendered scene.
    pub image: RgbImage,
}

/// The generator. Cheap to copy; all methods are deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticWorld {
    /// Seed of every draw (scenes, phrasings, questions, clips).
    pub seed: u64,
    /// Side of the square images in pixels (64–128 recommended).
    pub image_size: usize,
}

impl SyntheticWorld {
    /// The world seeded `seed`, with `image_size`-pixel square images.
    pub fn new(seed: u64, image_size: usize) -> Self {
        Self { seed, image_size }
    }

    fn rng(&self, split: Split, index: usize, stream: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(mix(
            self.seed ^ mix(split.salt() ^ mix(index as u64 ^ (stream << 48)))
        ))
    }

    /// Scene number `index` of `split`.
    pub fn scene(&self, split: Split, index: usize) -> Scene {
        let mut rng = self.rng(split, index, 0);
        loop {
            let scene = Scene::sample(&mut rng, self.image_size);
            if Split::of_description(&scene.description_key()) == split {
                return scene;
            }
        }
    }

    /// Scene number `index` of `split` with its rendered image.
    pub fn sample(&self, split: Split, index: usize) -> Sample {
        let scene = self.scene(split, index);
        let image = render(
            &scene.objects,
            self.image_size,
            &mut self.rng(split, index, 1),
        );
        Sample { scene, image }
    }

    /// A hard-negative twin of scene number `index` of `split`: the same
    /// layout with one attribute changed (see [`Scene::variant`]), in the same
    /// split, rendered. `None` when no valid twin was found in a few draws.
    pub fn twin(&self, split: Split, index: usize) -> Option<Sample> {
        let scene = self.scene(split, index);
        let mut rng = self.rng(split, index, 4);
        let twin = (0..8)
            .filter_map(|_| scene.variant(&mut rng))
            .find(|twin| Split::of_description(&twin.description_key()) == split)?;
        let image = render(&twin.objects, self.image_size, &mut rng);
        Some(Sample { scene: twin, image })
    }

    /// Questions about scene number `index` of `split`.
    pub fn questions(&self, split: Split, index: usize) -> Vec<VqaItem> {
        questions(&self.scene(split, index), &mut self.rng(split, index, 2))
    }

    /// A clip of `num_frames` frames starting from scene number `index` of
    /// `split`, each object moving in a direction of its own (variant 0 of
    /// [`clip_variant`](Self::clip_variant)).
    pub fn clip(&self, split: Split, index: usize, num_frames: usize) -> Clip {
        self.clip_variant(split, index, 0, num_frames)
    }

    /// Motion variant `variant` of scene number `index` of `split`: variant
    /// 0 draws every object's direction; variant `v >= 1` is a motion twin
    /// of variant 0 with one object's direction changed. All variants of a
    /// scene are rendered from one generator, so they share their first
    /// frame: only the motion tells them apart.
    pub fn clip_variant(
        &self,
        split: Split,
        index: usize,
        variant: usize,
        num_frames: usize,
    ) -> Clip {
        let (scene, directions) = self.clip_directions(split, index, variant);
        animate(
            &scene,
            &directions,
            num_frames,
            &mut self.rng(split, index, 5),
        )
    }

    /// How the objects of [`clip_variant`](Self::clip_variant)'s clip
    /// move, without drawing its frames: the scene and each object's motion.
    pub fn clip_motions(
        &self,
        split: Split,
        index: usize,
        variant: usize,
        num_frames: usize,
    ) -> (Scene, Vec<Motion>) {
        let (scene, directions) = self.clip_directions(split, index, variant);
        let (_, motions) = trajectory(&scene, &directions, num_frames);
        (scene, motions)
    }

    /// Scene `index` of `split` and the direction of each object in motion
    /// variant `variant`.
    fn clip_directions(
        &self,
        split: Split,
        index: usize,
        variant: usize,
    ) -> (Scene, Vec<Direction>) {
        let scene = self.scene(split, index);
        let mut rng = self.rng(split, index, 3);
        let mut directions: Vec<Direction> = scene
            .objects
            .iter()
            .map(|_| Direction::sample(&mut rng))
            .collect();
        if variant > 0 {
            let mut rng = self.rng(split, index, 16 + variant as u64);
            let changed = rng.random_range(0..directions.len());
            let others: Vec<Direction> = Direction::ALL
                .into_iter()
                .filter(|d| *d != directions[changed])
                .collect();
            directions[changed] = others[rng.random_range(0..others.len())];
        }
        (scene, directions)
    }

    /// Every phrasing of the clips (`num_frames` frames) of the first
    /// `num_scenes` training scenes: the corpus a video model's tokenizer
    /// is trained on.
    pub fn clip_corpus(&self, num_scenes: usize, num_frames: usize) -> Vec<String> {
        (0..num_scenes)
            .flat_map(|index| {
                let (scene, motions) = self.clip_motions(Split::Train, index, 0, num_frames);
                (0..NUM_CLIP_PHRASINGS).map(move |p| motion_caption(&scene, &motions, p))
            })
            .collect()
    }

    /// A held-out clip set of `scenes` scenes of `split` with `variants`
    /// motion variants each (`(index, variant)` pairs, variant 0 first):
    /// the first scenes whose variants' [`Clip::description_key`]s are
    /// distinct from each other and from every earlier clip's, so every
    /// caption matches exactly one clip, while each clip's motion twins
    /// (same objects, same first frame) are among the candidates.
    pub fn held_out_clips(
        &self,
        split: Split,
        scenes: usize,
        variants: usize,
        num_frames: usize,
    ) -> Vec<(usize, usize)> {
        let mut seen = HashSet::new();
        let mut clips = Vec::with_capacity(scenes * variants);
        let mut index = 0;
        while clips.len() < scenes * variants {
            let keys: Vec<String> = (0..variants)
                .map(|v| {
                    let (scene, motions) = self.clip_motions(split, index, v, num_frames);
                    motion_key(&scene, &motions)
                })
                .collect();
            let fresh: HashSet<&String> = keys.iter().collect();
            if fresh.len() == variants && keys.iter().all(|key| !seen.contains(key)) {
                clips.extend((0..variants).map(|v| (index, v)));
                seen.extend(keys);
            }
            index += 1;
        }
        clips
    }

    /// The first `count` indices of `split` whose scenes have pairwise distinct
    /// description keys: an evaluation set in which every caption has exactly
    /// one matching image.
    pub fn distinct_indices(&self, split: Split, count: usize) -> Vec<usize> {
        let mut seen = HashSet::with_capacity(count);
        let mut indices = Vec::with_capacity(count);
        let mut index = 0;
        while indices.len() < count {
            if seen.insert(self.scene(split, index).description_key()) {
                indices.push(index);
            }
            index += 1;
        }
        indices
    }

    /// Every phrasing of the first `num_scenes` training scenes and their
    /// questions: the corpus a tokenizer is trained on.
    pub fn corpus(&self, num_scenes: usize) -> Vec<String> {
        let mut texts = Vec::with_capacity(num_scenes * (NUM_PHRASINGS + 5));
        for index in 0..num_scenes {
            let scene = self.scene(Split::Train, index);
            texts.extend((0..NUM_PHRASINGS).map(|p| caption(&scene, p)));
            texts.extend(
                self.questions(Split::Train, index)
                    .into_iter()
                    .map(|q| q.question),
            );
        }
        texts.extend(answer_vocabulary());
        texts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_from_seed() {
        let world = SyntheticWorld::new(42, 64);
        assert_eq!(
            world.sample(Split::Train, 5).image,
            world.sample(Split::Train, 5).image
        );
        let other = SyntheticWorld::new(43, 64);
        assert_ne!(
            world.sample(Split::Train, 5).image,
            other.sample(Split::Train, 5).image
        );
    }

    #[test]
    fn splits_share_no_scene_description() {
        let world = SyntheticWorld::new(0, 64);
        let keys = |split| -> HashSet<String> {
            (0..400)
                .map(|i| world.scene(split, i).description_key())
                .collect()
        };
        let (train, val, test) = (keys(Split::Train), keys(Split::Val), keys(Split::Test));
        assert!(train.is_disjoint(&test));
        assert!(train.is_disjoint(&val));
        assert!(val.is_disjoint(&test));
    }

    #[test]
    fn twins_stay_in_their_split() {
        let world = SyntheticWorld::new(2, 64);
        // A changed description lands in the same split with the split's
        // share of descriptions: 80% for train, 10% for test.
        let train = (0..200).filter_map(|i| world.twin(Split::Train, i)).count();
        assert!(train > 190, "{train}");
        let test: Vec<_> = (0..200)
            .filter_map(|i| world.twin(Split::Test, i))
            .collect();
        assert!(test.len() > 50, "{}", test.len());
        for twin in test {
            assert_eq!(
                Split::of_description(&twin.scene.description_key()),
                Split::Test
            );
        }
    }

    #[test]
    fn distinct_indices_have_distinct_descriptions() {
        let world = SyntheticWorld::new(1, 64);
        let indices = world.distinct_indices(Split::Test, 300);
        let keys: HashSet<String> = indices
            .iter()
            .map(|&i| world.scene(Split::Test, i).description_key())
            .collect();
        assert_eq!(keys.len(), 300);
    }

    #[test]
    fn motion_twins_share_their_first_frame_and_differ_in_motion() {
        let world = SyntheticWorld::new(4, 64);
        let clips = world.held_out_clips(Split::Test, 40, 2, 8);
        assert_eq!(clips.len(), 80);
        let keys: HashSet<String> = clips
            .iter()
            .map(|&(index, variant)| {
                world
                    .clip_variant(Split::Test, index, variant, 8)
                    .description_key()
            })
            .collect();
        assert_eq!(keys.len(), 80, "every caption matches one clip");
        for pair in clips.chunks(2) {
            let [(index, 0), (twin_index, 1)] = pair else {
                panic!("{pair:?}")
            };
            assert_eq!(index, twin_index);
            let clip = world.clip(Split::Test, *index, 8);
            let twin = world.clip_variant(Split::Test, *index, 1, 8);
            assert_eq!(
                world.clip_motions(Split::Test, *index, 1, 8).1,
                twin.motions
            );
            assert_eq!(clip.frames[0], twin.frames[0]);
            assert_ne!(clip.frames[7], twin.frames[7]);
            let changed = clip
                .motions
                .iter()
                .zip(&twin.motions)
                .filter(|(a, b)| a.direction != b.direction)
                .count();
            assert_eq!(changed, 1);
            assert_ne!(clip.caption(0), twin.caption(0));
        }
    }

    #[test]
    fn corpus_covers_every_attribute_word() {
        let corpus = SyntheticWorld::new(0, 64).corpus(200).join(" ");
        for word in COLOURS
            .iter()
            .map(|c| c.0)
            .chain(SHAPES)
            .chain(SIZES.iter().map(|s| s.0))
        {
            assert!(corpus.contains(word), "{word}");
        }
    }
}

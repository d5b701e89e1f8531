//! Rasterises scenes into RGB images.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::scene::{SceneObject, COLOURS};

/// An 8-bit RGB image, rows top to bottom, pixels interleaved (`HWC`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub pixels: Vec<u8>,
}

impl RgbImage {
    /// The pixel at `(x, y)`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
    }
}

/// Whether the point `(dx, dy)` (offset from the object's centre) lies inside it.
fn covers(object: &SceneObject, dx: f32, dy: f32) -> bool {
    let r = object.radius;
    match object.shape {
        0 => dx * dx + dy * dy <= r * r,
        1 => dx.abs() <= 0.85 * r && dy.abs() <= 0.85 * r,
        2 => (-r..=r).contains(&dy) && dx.abs() <= (dy + r) / 2.0,
        3 => dx.abs() + dy.abs() <= r,
        _ => (dx.abs() <= r / 3.0 && dy.abs() <= r) || (dy.abs() <= r / 3.0 && dx.abs() <= r),
    }
}

/// Draws `objects` on a dark, slightly noisy background. Colours are jittered
/// per object so that a colour name covers a small range of RGB values.
pub fn render(objects: &[SceneObject], image_size: usize, rng: &mut ChaCha8Rng) -> RgbImage {
    let mut pixels = Vec::with_capacity(image_size * image_size * 3);
    for _ in 0..image_size * image_size {
        let grey = rng.random_range(20u8..45);
        pixels.extend_from_slice(&[grey, grey, grey]);
    }
    for object in objects {
        let base = COLOURS[object.colour].1;
        let colour = base.map(|c| (c as i32 + rng.random_range(-12..=12)).clamp(0, 255) as u8);
        let [x1, y1, x2, y2] = object.bbox();
        let xs = (x1.floor().max(0.0) as usize)..(x2.ceil() as usize).min(image_size);
        let ys = (y1.floor().max(0.0) as usize)..(y2.ceil() as usize).min(image_size);
        for y in ys {
            for x in xs.clone() {
                let dx = x as f32 + 0.5 - object.centre.0;
                let dy = y as f32 + 0.5 - object.centre.1;
                if covers(object, dx, dy) {
                    let at = (y * image_size + x) * 3;
                    pixels[at..at + 3].copy_from_slice(&colour);
                }
            }
        }
    }
    RgbImage {
        width: image_size,
        height: image_size,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn object(shape: usize) -> SceneObject {
        SceneObject {
            colour: 0,
            shape,
            size: 1,
            centre: (32.0, 32.0),
            radius: 24.0,
        }
    }

    fn red_pixels(image: &RgbImage) -> usize {
        image
            .pixels
            .chunks(3)
            .filter(|p| p[0] > 150 && p[1] < 100)
            .count()
    }

    #[test]
    fn shapes_have_their_expected_areas() {
        // Areas in units of r²: circle π, square (1.7)², triangle 2, diamond 2, cross 20/9.
        let expected = [std::f32::consts::PI, 1.7 * 1.7, 2.0, 2.0, 20.0 / 9.0];
        for (shape, area) in expected.iter().enumerate() {
            let mut rng = ChaCha8Rng::seed_from_u64(1);
            let image = render(&[object(shape)], 64, &mut rng);
            let measured = red_pixels(&image) as f32 / (24.0 * 24.0);
            assert!(
                (measured - area).abs() / area < 0.05,
                "shape {shape}: area {measured} r², expected {area}"
            );
        }
    }

    #[test]
    fn background_is_dark_and_object_keeps_its_colour() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let image = render(&[object(0)], 64, &mut rng);
        assert!(image.pixel(0, 0).iter().all(|&c| c < 45));
        let [r, g, b] = image.pixel(32, 32);
        assert!(r >= 208 && g <= 52 && b <= 52, "{r} {g} {b}");
    }
}

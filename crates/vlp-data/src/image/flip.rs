//! Horizontal flip (torchvision's `RandomHorizontalFlip`) that keeps the
//! caption true: mirroring the image swaps "left" and "right" in the text, as
//! MDETR's `hflip` does for its grounding captions (here on whole words
//! only, where MDETR replaces substrings); a plain flip would teach spatial
//! words backwards.

use crate::synthetic::RgbImage;

/// `image` mirrored left to right, in place.
pub fn flip_horizontal(image: &mut RgbImage) {
    for row in image.pixels.chunks_exact_mut(image.width * 3) {
        let (mut left, mut right) = (0, image.width.saturating_sub(1));
        while left < right {
            for c in 0..3 {
                row.swap(left * 3 + c, right * 3 + c);
            }
            left += 1;
            right -= 1;
        }
    }
}

/// `caption` with the whole words "left" and "right" swapped, in any case
/// ("Left" → "Right", "LEFT" → "RIGHT"); words are runs of alphanumeric
/// characters, so "Leftover" and "rightmost" stay and "left-hand" becomes
/// "right-hand".
pub fn swap_left_right(caption: &str) -> String {
    let mut out = String::with_capacity(caption.len() + 8);
    let mut rest = caption;
    while let Some(start) = rest.find(char::is_alphanumeric) {
        out.push_str(&rest[..start]);
        let word = &rest[start..];
        let end = word
            .find(|c: char| !c.is_alphanumeric())
            .unwrap_or(word.len());
        let (word, after) = word.split_at(end);
        out.push_str(&mirrored(word).unwrap_or_else(|| word.to_string()));
        rest = after;
    }
    out.push_str(rest);
    out
}

/// The mirror of "left" or "right" in `word`'s case, or `None` for other words.
fn mirrored(word: &str) -> Option<String> {
    let other = if word.eq_ignore_ascii_case("left") {
        "right"
    } else if word.eq_ignore_ascii_case("right") {
        "left"
    } else {
        return None;
    };
    let mut letters = word.chars();
    let first_upper = letters.next().is_some_and(char::is_uppercase);
    Some(if first_upper && letters.all(char::is_uppercase) {
        other.to_uppercase()
    } else if first_upper {
        let mut capitalised = other.to_string();
        capitalised[..1].make_ascii_uppercase();
        capitalised
    } else {
        other.to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_mirrors_every_row_exactly() {
        let (width, height) = (5, 3);
        let pixels: Vec<u8> = (0..width * height * 3).map(|v| v as u8).collect();
        let original = RgbImage {
            width,
            height,
            pixels,
        };
        let mut flipped = original.clone();
        flip_horizontal(&mut flipped);
        for y in 0..height {
            for x in 0..width {
                assert_eq!(flipped.pixel(x, y), original.pixel(width - 1 - x, y));
            }
        }
        flip_horizontal(&mut flipped);
        assert_eq!(flipped, original);
    }

    #[test]
    fn captions_swap_whole_words_and_keep_case() {
        assert_eq!(
            swap_left_right("a red circle left of a blue square"),
            "a red circle right of a blue square"
        );
        assert_eq!(
            swap_left_right("Left: a cat; RIGHT: a dog, right?"),
            "Right: a cat; LEFT: a dog, left?"
        );
        assert_eq!(
            swap_left_right("Leftover rightmost left-hand"),
            "Leftover rightmost right-hand"
        );
        assert_eq!(swap_left_right("É à left"), "É à right");
        assert_eq!(swap_left_right(""), "");
    }
}

//! VQA answer normalisation, as the official VQA evaluation script
//! (Antol et al. 2015; `vqaEval.py` of the VQA API, used unchanged for VQA
//! v2, Goyal et al. 2017) applies it: `processPunctuation` then
//! `processDigitArticle`, after turning line breaks and tabs into spaces
//! and trimming.

/// Punctuation handled by `processPunctuation` (the script's `punct` list).
const PUNCTUATION: [char; 21] = [
    ';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',',
    '?', '!',
];

/// The script's `manualMap`: number words to digits.
const NUMBER_WORDS: [(&str, &str); 12] = [
    ("none", "0"),
    ("zero", "0"),
    ("one", "1"),
    ("two", "2"),
    ("three", "3"),
    ("four", "4"),
    ("five", "5"),
    ("six", "6"),
    ("seven", "7"),
    ("eight", "8"),
    ("nine", "9"),
    ("ten", "10"),
];

/// The script's `articles`, dropped.
const ARTICLES: [&str; 3] = ["a", "an", "the"];

/// The script's `contractions` map, entry for entry (its quirks included:
/// keys with capitals never match after lower-casing, and `somebody'd`
/// maps to `somebodyd`).
const CONTRACTIONS: &[(&str, &str)] = &[
    ("aint", "ain't"),
    ("arent", "aren't"),
    ("cant", "can't"),
    ("couldve", "could've"),
    ("couldnt", "couldn't"),
    ("couldn'tve", "couldn't've"),
    ("couldnt've", "couldn't've"),
    ("didnt", "didn't"),
    ("doesnt", "doesn't"),
    ("dont", "don't"),
    ("hadnt", "hadn't"),
    ("hadnt've", "hadn't've"),
    ("hadn'tve", "hadn't've"),
    ("hasnt", "hasn't"),
    ("havent", "haven't"),
    ("hed", "he'd"),
    ("hed've", "he'd've"),
    ("he'dve", "he'd've"),
    ("hes", "he's"),
    ("howd", "how'd"),
    ("howll", "how'll"),
    ("hows", "how's"),
    ("Id've", "I'd've"),
    ("I'dve", "I'd've"),
    ("Im", "I'm"),
    ("Ive", "I've"),
    ("isnt", "isn't"),
    ("itd", "it'd"),
    ("itd've", "it'd've"),
    ("it'dve", "it'd've"),
    ("itll", "it'll"),
    ("let's", "let's"),
    ("maam", "ma'am"),
    ("mightnt", "mightn't"),
    ("mightnt've", "mightn't've"),
    ("mightn'tve", "mightn't've"),
    ("mightve", "might've"),
    ("mustnt", "mustn't"),
    ("mustve", "must've"),
    ("neednt", "needn't"),
    ("notve", "not've"),
    ("oclock", "o'clock"),
    ("oughtnt", "oughtn't"),
    ("ow's'at", "'ow's'at"),
    ("'ows'at", "'ow's'at"),
    ("'ow'sat", "'ow's'at"),
    ("shant", "shan't"),
    ("shed've", "she'd've"),
    ("she'dve", "she'd've"),
    ("she's", "she's"),
    ("shouldve", "should've"),
    ("shouldnt", "shouldn't"),
    ("shouldnt've", "shouldn't've"),
    ("shouldn'tve", "shouldn't've"),
    ("somebody'd", "somebodyd"),
    ("somebodyd've", "somebody'd've"),
    ("somebody'dve", "somebody'd've"),
    ("somebodyll", "somebody'll"),
    ("somebodys", "somebody's"),
    ("someoned", "someone'd"),
    ("someoned've", "someone'd've"),
    ("someone'dve", "someone'd've"),
    ("someonell", "someone'll"),
    ("someones", "someone's"),
    ("somethingd", "something'd"),
    ("somethingd've", "something'd've"),
    ("something'dve", "something'd've"),
    ("somethingll", "something'll"),
    ("thats", "that's"),
    ("thered", "there'd"),
    ("thered've", "there'd've"),
    ("there'dve", "there'd've"),
    ("therere", "there're"),
    ("theres", "there's"),
    ("theyd", "they'd"),
    ("theyd've", "they'd've"),
    ("they'dve", "they'd've"),
    ("theyll", "they'll"),
    ("theyre", "they're"),
    ("theyve", "they've"),
    ("twas", "'twas"),
    ("wasnt", "wasn't"),
    ("wed've", "we'd've"),
    ("we'dve", "we'd've"),
    ("weve", "we've"),
    ("werent", "weren't"),
    ("whatll", "what'll"),
    ("whatre", "what're"),
    ("whats", "what's"),
    ("whatve", "what've"),
    ("whens", "when's"),
    ("whered", "where'd"),
    ("wheres", "where's"),
    ("whereve", "where've"),
    ("whod", "who'd"),
    ("whod've", "who'd've"),
    ("who'dve", "who'd've"),
    ("wholl", "who'll"),
    ("whos", "who's"),
    ("whove", "who've"),
    ("whyll", "why'll"),
    ("whyre", "why're"),
    ("whys", "why's"),
    ("wont", "won't"),
    ("wouldve", "would've"),
    ("wouldnt", "wouldn't"),
    ("wouldnt've", "wouldn't've"),
    ("wouldn'tve", "wouldn't've"),
    ("yall", "y'all"),
    ("yall'll", "y'all'll"),
    ("y'allll", "y'all'll"),
    ("yall'd've", "y'all'd've"),
    ("y'alld've", "y'all'd've"),
    ("y'all'dve", "y'all'd've"),
    ("youd", "you'd"),
    ("youd've", "you'd've"),
    ("you'dve", "you'd've"),
    ("youll", "you'll"),
    ("youre", "you're"),
    ("youve", "you've"),
];

/// The script's `periodStrip.sub("", text, re.UNICODE)` passes `re.UNICODE`
/// (32) as the `count` argument: at most 32 periods are removed.
const MAX_PERIODS_STRIPPED: usize = 32;

/// `answer` normalised as the official VQA evaluation normalises answers
/// before comparing them: line breaks and tabs to spaces, trimmed, then
/// `processPunctuation` and `processDigitArticle`.
pub fn normalize_answer(answer: &str) -> String {
    let text = answer.replace(['\n', '\t'], " ");
    digits_and_articles(&punctuation(text.trim()))
}

/// The VQA v2 answer type of a normalised answer, as the dataset assigns
/// it from the answers: `yes/no`, `number` (digits only) or `other`. The
/// synthetic world's questions get theirs this way.
pub fn answer_type(answer: &str) -> &'static str {
    match answer {
        "yes" | "no" => "yes/no",
        _ if !answer.is_empty() && answer.chars().all(|c| c.is_ascii_digit()) => "number",
        _ => "other",
    }
}

/// Whether `text` has a digit, a comma and a digit in a row (`commaStrip`).
fn has_digit_comma_digit(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars
        .windows(3)
        .any(|w| w[0].is_ascii_digit() && w[1] == ',' && w[2].is_ascii_digit())
}

/// `processPunctuation`: each mark is deleted when it touches a space in
/// the input (or the input has a digit-comma-digit anywhere), else replaced
/// by a space; then periods not followed by a digit are deleted (the
/// script's `(?!<=\d)` is a look-ahead that always holds, not the intended
/// look-behind, so only the `(?!\d)` after the period counts). `\d` is taken
/// as an ASCII digit.
fn punctuation(input: &str) -> String {
    let comma_digit = has_digit_comma_digit(input);
    let mut text = input.to_string();
    for mark in PUNCTUATION {
        let touches_space =
            input.contains(&format!("{mark} ")) || input.contains(&format!(" {mark}"));
        let replacement = if touches_space || comma_digit {
            ""
        } else {
            " "
        };
        text = text.replace(mark, replacement);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut stripped = 0;
    let mut out = String::with_capacity(text.len());
    for (i, &c) in chars.iter().enumerate() {
        let before_digit = chars.get(i + 1).is_some_and(char::is_ascii_digit);
        if c == '.' && !before_digit && stripped < MAX_PERIODS_STRIPPED {
            stripped += 1;
        } else {
            out.push(c);
        }
    }
    out
}

/// `processDigitArticle`: lower-cased words, number words to digits,
/// articles dropped, contractions restored, joined by single spaces.
fn digits_and_articles(text: &str) -> String {
    let lookup = |table: &[(&'static str, &'static str)], word: &str| {
        table
            .iter()
            .find(|(from, _)| *from == word)
            .map(|(_, to)| to.to_string())
    };
    text.to_lowercase()
        .split_whitespace()
        .map(|word| lookup(&NUMBER_WORDS, word).unwrap_or_else(|| word.to_string()))
        .filter(|word| !ARTICLES.contains(&word.as_str()))
        .map(|word| lookup(CONTRACTIONS, &word).unwrap_or(word))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cases with outputs derived by hand from the script's rules (listed
    /// above each function), not from running it.
    #[test]
    fn answers_normalise_as_the_official_script_does() {
        let cases = [
            // manualMap after lower-casing.
            ("Two", "2"),
            ("none", "0"),
            ("Ten dogs", "10 dogs"),
            // Articles dropped.
            ("a dog", "dog"),
            ("The Cat!", "cat"), // "!" touches no space: becomes a space.
            // Periods not before a digit go; before a digit they stay.
            ("yes.", "yes"),
            ("3.5", "3.5"),
            ("a..1", "a.1"), // the first period precedes a period, the second a digit
            // Contractions restored; capitalised keys never match.
            ("dont", "don't"),
            ("isnt", "isn't"),
            ("Im", "im"),
            // Digit-comma-digit anywhere: every mark is deleted, not spaced.
            ("10,000", "10000"),
            ("1,000 (approx)", "1000 approx"),
            // A mark touching a space is deleted, else it becomes a space.
            ("hello, world", "hello world"),
            ("t-shirt", "t shirt"),
            ("red/white", "red white"),
            ("left - right", "left right"),
            // Line breaks, tabs and runs of spaces collapse.
            ("  yes\n", "yes"),
            ("fire\thydrant", "fire hydrant"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize_answer(input), expected, "{input:?}");
        }
    }

    #[test]
    fn at_most_32_periods_are_stripped() {
        let dots = ".".repeat(40);
        assert_eq!(normalize_answer(&dots), ".".repeat(8));
    }
}

//! CSV and TSV caption manifests: `image,caption` tables with a header, and
//! Conceptual Captions' header-less `caption<TAB>url` TSV (Sharma et al.
//! 2018). Parsed with the `csv` crate (RFC 4180 quoting for CSV: commas,
//! quotes and line breaks inside captions).

use std::path::Path;

use super::{captioned, folder_of, read_bytes, resolve, CorruptBudget, SampleList};
use crate::DataError;

/// Header names taken for the image column (case-insensitive).
const IMAGE_HEADERS: [&str; 7] = [
    "image",
    "img",
    "file",
    "filepath",
    "path",
    "image_path",
    "url",
];
/// Header names taken for the caption column (case-insensitive).
const CAPTION_HEADERS: [&str; 5] = ["caption", "text", "title", "sentence", "description"];
/// Endings of a cell that is an image path.
const IMAGE_ENDINGS: [&str; 4] = [".jpg", ".jpeg", ".png", ".webp"];

/// Which columns hold the image and the caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// A first row of known header names (such as `image`,
    /// `filepath`, `url`; `caption`, `text`, `title`) is a header; otherwise
    /// there is none and the image column is the one of the first two whose
    /// first cell is an image path (`.jpg`, `.jpeg`, `.png`, `.webp`) or a
    /// URL.
    Detect,
    /// A header row with these column names.
    Named {
        /// The image column's name.
        image: String,
        /// The caption column's name.
        caption: String,
    },
    /// Columns by 0-based position.
    Index {
        /// The image column.
        image: usize,
        /// The caption column.
        caption: usize,
        /// Whether the first row is a header (and is skipped).
        header: bool,
    },
}

/// How a delimited file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelimitedOptions {
    /// The field separator (`b','` or `b'\t'`).
    pub delimiter: u8,
    /// Whether `"` quotes fields (CSV); Conceptual Captions' TSV has bare
    /// quotes inside captions, so TSV reads them as text.
    pub quoting: bool,
    /// Where the image and caption are.
    pub columns: Columns,
}

impl DelimitedOptions {
    /// Comma-separated, quoted, columns detected.
    pub fn csv() -> Self {
        Self {
            delimiter: b',',
            quoting: true,
            columns: Columns::Detect,
        }
    }

    /// Tab-separated, unquoted, columns detected.
    pub fn tsv() -> Self {
        Self {
            delimiter: b'\t',
            quoting: false,
            columns: Columns::Detect,
        }
    }

    /// [`Self::tsv`] for `.tsv` and `.tab` files, else [`Self::csv`].
    pub fn for_path(path: &Path) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some("tsv" | "tab") => Self::tsv(),
            _ => Self::csv(),
        }
    }
}

/// Resolved columns: image, caption, whether the first row is a header.
fn columns(
    path: &Path,
    columns: &Columns,
    first: &[String],
) -> Result<(usize, usize, bool), DataError> {
    let find = |names: &[&str]| {
        first
            .iter()
            .position(|cell| names.contains(&cell.trim().to_lowercase().as_str()))
    };
    let error = |reason: String| DataError::AnnotationRecord {
        path: path.to_path_buf(),
        at: "line 1".to_string(),
        reason,
    };
    match columns {
        Columns::Index {
            image,
            caption,
            header,
        } => Ok((*image, *caption, *header)),
        Columns::Named { image, caption } => {
            let named = |name: &str| first.iter().position(|cell| cell.trim() == name);
            match (named(image), named(caption)) {
                (Some(i), Some(c)) => Ok((i, c, true)),
                _ => Err(error(format!(
                    "the header {first:?} lacks column {image:?} or {caption:?}"
                ))),
            }
        }
        Columns::Detect => {
            if let (Some(i), Some(c)) = (find(&IMAGE_HEADERS), find(&CAPTION_HEADERS)) {
                return Ok((i, c, true));
            }
            let is_image = |cell: &String| {
                let cell = cell.trim().to_lowercase();
                cell.contains("://") || IMAGE_ENDINGS.iter().any(|end| cell.ends_with(end))
            };
            match first.iter().take(2).position(is_image) {
                Some(i) if first.len() >= 2 => Ok((i, 1 - i, false)),
                _ => Err(error(format!(
                    "cannot tell the image column from {first:?}: no header names \
                     (image, caption) and no image path; give the columns"
                ))),
            }
        }
    }
}

/// One sample per row: the image (relative to the file's folder, URLs kept)
/// and its caption; the key is the image as written. A row that lacks a
/// column or is not UTF-8 is skipped and counted in `budget` with its line.
pub fn read_delimited(
    path: &Path,
    options: &DelimitedOptions,
    budget: &CorruptBudget,
) -> Result<SampleList, DataError> {
    let bytes = read_bytes(path)?;
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .quoting(options.quoting)
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let root = folder_of(path);
    let mut layout = None;
    let mut samples = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(err) => {
                budget.skip(format!("{} line {line}: {err}", path.display()))?;
                continue;
            }
        }
        let (image, caption, _) = match layout {
            Some(layout) => layout,
            None => {
                let cells: Vec<String> = record.iter().map(str::to_string).collect();
                let found = columns(path, &options.columns, &cells)?;
                layout = Some(found);
                if found.2 {
                    continue;
                }
                found
            }
        };
        match (record.get(image), record.get(caption)) {
            (Some(image), Some(caption)) if !image.trim().is_empty() => samples.push(captioned(
                image.trim().to_string(),
                resolve(root, image.trim()),
                vec![caption.to_string()],
            )),
            _ => budget.skip(format!(
                "{} line {line}: no image in column {image} or no caption in column {caption}",
                path.display()
            ))?,
        }
    }
    Ok(SampleList::new(path.to_path_buf(), samples))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{test_dir, SampleSource};

    fn read(
        dir: &Path,
        name: &str,
        text: &str,
        options: &DelimitedOptions,
    ) -> (SampleList, CorruptBudget) {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        let budget = CorruptBudget::default();
        (read_delimited(&path, options, &budget).unwrap(), budget)
    }

    #[test]
    fn headers_quotes_and_column_orders() {
        let dir = test_dir("delimited");
        // A header in any order; quoted commas, quotes and a line break.
        let csv =
            "Caption,Image\n\"a cat, \"\"asleep\"\"\nat noon\",img/a.jpg\nshort\n\"a dog\",b.png\n";
        let (list, budget) = read(&dir, "pairs.csv", csv, &DelimitedOptions::csv());
        assert_eq!(list.len(), 2);
        let first = list.get(0).unwrap();
        assert_eq!(first.captions, ["a cat, \"asleep\"\nat noon"]);
        assert_eq!(first.image.path().unwrap(), dir.join("img/a.jpg"));
        let reasons = budget.report().reasons;
        assert!(reasons[0].contains("pairs.csv line 4"), "{reasons:?}");
        // Conceptual Captions: no header, caption first, bare quotes, URLs kept.
        let tsv = "a \"quoted\" word\thttp://x/1.jpg\nplain\tlocal/2.webp\n";
        let (list, _) = read(&dir, "cc.tsv", tsv, &DelimitedOptions::tsv());
        assert_eq!(list.get(0).unwrap().captions, ["a \"quoted\" word"]);
        assert_eq!(
            list.get(0).unwrap().image.path().unwrap(),
            Path::new("http://x/1.jpg")
        );
        assert_eq!(
            list.get(1).unwrap().image.path().unwrap(),
            dir.join("local/2.webp")
        );
        // Explicit columns; an undetectable table is an error naming line 1.
        let options = DelimitedOptions {
            columns: Columns::Index {
                image: 2,
                caption: 0,
                header: false,
            },
            ..DelimitedOptions::csv()
        };
        let (list, _) = read(&dir, "three.csv", "text,7,x/y\n", &options);
        assert_eq!(list.get(0).unwrap().key, "x/y");
        let path = dir.join("odd.csv");
        std::fs::write(&path, "one,two\n").unwrap();
        let error = read_delimited(&path, &DelimitedOptions::csv(), &CorruptBudget::default())
            .unwrap_err()
            .to_string();
        assert!(error.contains("odd.csv line 1"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

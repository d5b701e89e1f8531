//! Bottom-up-attention TSV: one image per line, columns `image_id, image_w,
//! image_h, num_boxes, boxes, features`, where `boxes` (`[N, 4]` pixels
//! `x1, y1, x2, y2`) and `features` (`[N, F]`) are base64 of little-endian
//! float32 bytes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine;

use super::record::normalise_pixel_box;
use super::{RegionFeatureSource, RegionRecord};
use crate::DataError;

/// Longest image id the index keeps; a longer first column is garbage.
const MAX_ID_BYTES: usize = 1024;

/// Where one line lies in the file.
#[derive(Debug, Clone, Copy)]
struct LineSpan {
    offset: u64,
    len: u64,
    /// 1-based, for error messages.
    line: u64,
}

/// A BUTD TSV file, indexed by image id.
///
/// [`ButdTsv::open`] reads the file once and keeps only each line's byte
/// offset and length (real files hold ~400 KB per image and reach tens of
/// gigabytes); [`RegionFeatureSource::get`] seeks to one line and decodes it.
#[derive(Debug)]
pub struct ButdTsv {
    path: PathBuf,
    file: Mutex<File>,
    ids: Vec<String>,
    spans: Vec<LineSpan>,
    by_id: HashMap<String, usize>,
    /// `(line, reason)` of lines that could not be indexed.
    index_problems: Vec<(u64, String)>,
}

impl ButdTsv {
    /// Indexes the file at `path`. Blank lines are ignored; a line without
    /// tab-separated columns or repeating an earlier image id is left out of
    /// the index and reported by [`RegionFeatureSource::index_errors`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, DataError> {
        let path = path.as_ref().to_path_buf();
        let io_error = |e: std::io::Error| DataError::RegionIo {
            path: path.clone(),
            reason: e.to_string(),
        };
        let file = File::open(&path).map_err(io_error)?;
        let mut reader = BufReader::with_capacity(1 << 20, file.try_clone().map_err(io_error)?);
        let mut tsv = Self {
            path: path.clone(),
            file: Mutex::new(file),
            ids: Vec::new(),
            spans: Vec::new(),
            by_id: HashMap::new(),
            index_problems: Vec::new(),
        };
        let mut offset = 0u64;
        let mut line = 0u64;
        while let Some(scan) = scan_line(&mut reader).map_err(io_error)? {
            line += 1;
            let span = LineSpan {
                offset,
                len: scan.len,
                line,
            };
            offset += scan.len;
            tsv.add(scan, span);
        }
        Ok(tsv)
    }

    fn add(&mut self, scan: ScannedLine, span: LineSpan) {
        let id = String::from_utf8(scan.id);
        let problem = match (&id, scan.has_tab) {
            (Ok(id), false) if id.trim().is_empty() => return,
            (_, false) => "no tab-separated columns (not a BUTD TSV line)".to_string(),
            (Err(_), true) => "image_id is not UTF-8".to_string(),
            (Ok(id), true) if id.is_empty() => "empty image_id".to_string(),
            (Ok(id), true) => match self.by_id.get(id) {
                Some(&first) => format!("image_id {id:?} repeats line {}", self.spans[first].line),
                None => {
                    self.by_id.insert(id.clone(), self.ids.len());
                    self.ids.push(id.clone());
                    self.spans.push(span);
                    return;
                }
            },
        };
        self.index_problems.push((span.line, problem));
    }

    /// The TSV file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read_span(&self, span: LineSpan) -> Result<Vec<u8>, DataError> {
        let io_error = |e: std::io::Error| DataError::TsvRecord {
            path: self.path.clone(),
            line: span.line,
            reason: e.to_string(),
        };
        let mut bytes = vec![0u8; span.len as usize];
        // A poisoned lock only means another reader panicked mid-read; the
        // file handle itself is still usable since every read seeks first.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.seek(SeekFrom::Start(span.offset)).map_err(io_error)?;
        file.read_exact(&mut bytes).map_err(io_error)?;
        Ok(bytes)
    }
}

impl RegionFeatureSource for ButdTsv {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn ids(&self) -> &[String] {
        &self.ids
    }

    fn get(&self, image_id: &str) -> Result<RegionRecord, DataError> {
        let &index = self
            .by_id
            .get(image_id)
            .ok_or_else(|| DataError::UnknownImage {
                path: self.path.clone(),
                image_id: image_id.to_string(),
            })?;
        let span = self.spans[index];
        let bytes = self.read_span(span)?;
        parse_line(&bytes).map_err(|reason| DataError::TsvRecord {
            path: self.path.clone(),
            line: span.line,
            reason,
        })
    }

    fn index_errors(&self) -> Vec<DataError> {
        self.index_problems
            .iter()
            .map(|(line, reason)| DataError::TsvRecord {
                path: self.path.clone(),
                line: *line,
                reason: reason.clone(),
            })
            .collect()
    }
}

/// The first column and the length of one line, newline included.
struct ScannedLine {
    id: Vec<u8>,
    has_tab: bool,
    len: u64,
}

/// Scans one line without copying it: the id is copied, the rest skipped
/// buffer by buffer. `None` at the end of the file.
fn scan_line(reader: &mut impl BufRead) -> std::io::Result<Option<ScannedLine>> {
    let mut scan = ScannedLine {
        id: Vec::new(),
        has_tab: false,
        len: 0,
    };
    let mut in_id = true;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok((scan.len > 0).then_some(scan));
        }
        let stop = if in_id {
            memchr::memchr2(b'\t', b'\n', buffer)
        } else {
            memchr::memchr(b'\n', buffer)
        };
        let taken = stop.map_or(buffer.len(), |i| i + 1);
        if in_id {
            let id_part = &buffer[..stop.unwrap_or(buffer.len())];
            let room = MAX_ID_BYTES.saturating_sub(scan.id.len());
            scan.id
                .extend_from_slice(&id_part[..id_part.len().min(room)]);
        }
        let ends_line = stop.is_some_and(|i| buffer[i] == b'\n');
        if in_id && stop.is_some_and(|i| buffer[i] == b'\t') {
            scan.has_tab = true;
            in_id = false;
        }
        reader.consume(taken);
        scan.len += taken as u64;
        if ends_line {
            if !scan.has_tab && scan.id.last() == Some(&b'\r') {
                scan.id.pop();
            }
            return Ok(Some(scan));
        }
    }
}

/// Decodes one line (newline included); the error is the reason only, the
/// caller adds file and line.
fn parse_line(bytes: &[u8]) -> Result<RegionRecord, String> {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let columns: Vec<&[u8]> = bytes.split(|&b| b == b'\t').collect();
    let [id, width, height, num_boxes, boxes, features] = columns[..] else {
        return Err(format!(
            "expected 6 tab-separated columns (image_id, image_w, image_h, num_boxes, boxes, features), found {}",
            columns.len()
        ));
    };
    let image_id = String::from_utf8_lossy(id).into_owned();
    let width = positive_number(width, "image_w")?;
    let height = positive_number(height, "image_h")?;
    let num_boxes: usize = text(num_boxes, "num_boxes")?.parse().map_err(|_| {
        format!(
            "num_boxes {:?} is not a count",
            String::from_utf8_lossy(num_boxes)
        )
    })?;
    if num_boxes == 0 {
        return Err("num_boxes is 0".into());
    }
    let boxes = decode_floats(boxes, "boxes")?;
    if boxes.len() != num_boxes * 4 {
        return Err(format!(
            "boxes decode to {} floats, but num_boxes {num_boxes} needs {}",
            boxes.len(),
            num_boxes * 4
        ));
    }
    if let Some(v) = boxes.iter().find(|v| !v.is_finite()) {
        return Err(format!("boxes hold a non-finite value {v}"));
    }
    let features = decode_floats(features, "features")?;
    if features.is_empty() || features.len() % num_boxes != 0 {
        return Err(format!(
            "features decode to {} floats, not a positive multiple of num_boxes {num_boxes}",
            features.len()
        ));
    }
    Ok(RegionRecord {
        image_id,
        num_boxes,
        feature_dim: features.len() / num_boxes,
        features,
        boxes: boxes
            .chunks_exact(4)
            .map(|b| normalise_pixel_box([b[0], b[1], b[2], b[3]], width, height))
            .collect(),
        image_size: Some((width, height)),
        confidence: None,
        soft_labels: None,
        num_classes: 0,
    })
}

fn text<'a>(column: &'a [u8], name: &str) -> Result<&'a str, String> {
    std::str::from_utf8(column)
        .map(str::trim)
        .map_err(|_| format!("{name} is not text"))
}

fn positive_number(column: &[u8], name: &str) -> Result<f32, String> {
    let value = text(column, name)?;
    match value.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{name} {value:?} is not a positive number")),
    }
}

/// Base64 of little-endian float32 bytes. Python 3 ports of BUTD's
/// `generate_tsv.py` write the `bytes` object's repr (`b'...'`), so that
/// wrapper is accepted too.
fn decode_floats(column: &[u8], name: &str) -> Result<Vec<f32>, String> {
    let column = column
        .strip_prefix(b"b'")
        .and_then(|c| c.strip_suffix(b"'"))
        .unwrap_or(column);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(column)
        .map_err(|e| format!("{name} is not valid base64 ({e}); truncated line?"))?;
    if bytes.len() % 4 != 0 {
        return Err(format!(
            "{name} decode to {} bytes, not whole float32 values",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    fn b64(values: &[f32]) -> String {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        STANDARD.encode(bytes)
    }

    #[test]
    fn decodes_a_line() {
        let boxes = b64(&[10.0, 20.0, 110.0, 220.0]);
        let features = b64(&[1.0, 2.0, 3.0]);
        let line = format!("42\t100\t200\t1\t{boxes}\tb'{features}'\r\n");
        let record = parse_line(line.as_bytes()).unwrap();
        assert_eq!(record.image_id, "42");
        assert_eq!((record.num_boxes, record.feature_dim), (1, 3));
        assert_eq!(record.features, [1.0, 2.0, 3.0]);
        assert_eq!(record.boxes, [[0.1, 0.1, 1.0, 1.0]]);
        assert_eq!(record.image_size, Some((100.0, 200.0)));
    }

    #[test]
    fn rejects_inconsistent_lines() {
        let boxes = b64(&[0.0, 0.0, 1.0, 1.0]);
        let features = b64(&[1.0, 2.0, 3.0]);
        let two = format!("1\t10\t10\t2\t{boxes}\t{features}");
        assert!(parse_line(two.as_bytes())
            .unwrap_err()
            .contains("num_boxes 2 needs 8"));
        let nan = format!(
            "1\t10\t10\t1\t{}\t{features}",
            b64(&[0.0, f32::NAN, 1.0, 1.0])
        );
        assert!(parse_line(nan.as_bytes())
            .unwrap_err()
            .contains("non-finite"));
        let short = format!("1\t10\t10\t1\t{boxes}");
        assert!(parse_line(short.as_bytes())
            .unwrap_err()
            .contains("found 5"));
        let zero = format!("1\t0\t10\t1\t{boxes}\t{features}");
        assert!(parse_line(zero.as_bytes()).unwrap_err().contains("image_w"));
    }

    #[test]
    fn scans_lines_across_buffer_boundaries() {
        let data = b"ab\tcdefgh\n\nxyz\r\nlast\tno newline";
        let mut reader = BufReader::with_capacity(3, &data[..]);
        let mut lines = Vec::new();
        while let Some(scan) = scan_line(&mut reader).unwrap() {
            lines.push((String::from_utf8(scan.id).unwrap(), scan.has_tab, scan.len));
        }
        let expected = [
            ("ab", true, 10),
            ("", false, 1),
            ("xyz", false, 5),
            ("last", true, 15),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|&(id, tab, len)| (id.to_string(), tab, len))
            .collect();
        assert_eq!(lines, expected);
    }
}

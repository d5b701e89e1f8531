//! WebDataset shards (Breuel et al., the `webdataset` library; written by
//! img2dataset, streamed by open_clip and LAVIS): POSIX tar files whose
//! members are grouped into samples by key (the path up to the first dot of
//! the file name): `000123.jpg` + `000123.txt` and/or `000123.json`. Shards
//! are read member by member (never unpacked), split across ranks and
//! loader threads, and mixed by a seeded shuffle buffer.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Captions, CorruptBudget, ImageRef, Sample};
use crate::DataError;

/// Image member extensions (lower-cased).
const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
/// Most names one brace pattern may expand to.
const MAX_EXPANSION: usize = 10_000_000;

/// `pattern` with its brace groups expanded, as the `braceexpand` package
/// (which WebDataset uses) does for the common forms: `{00000..00099}` is a
/// numeric range (zero padding kept: the width of the wider bound when a
/// bound starts with `0`; descending ranges count down), `{a,b,c}` a list;
/// several groups give every combination, in order. Nested or unclosed
/// braces are an error naming the pattern.
pub fn expand_braces(pattern: &str) -> Result<Vec<String>, DataError> {
    let error = |reason: &str| DataError::Shards {
        pattern: pattern.to_string(),
        reason: reason.to_string(),
    };
    let mut names = vec![String::new()];
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .map(|c| open + c)
            .ok_or_else(|| error("a `{` is not closed"))?;
        let group = &rest[open + 1..close];
        if group.contains('{') {
            return Err(error("nested braces are not supported"));
        }
        let options = group_options(group).ok_or_else(|| {
            error("a brace group is neither a numeric range {A..B} nor a list {a,b}")
        })?;
        if names.len().saturating_mul(options.len()) > MAX_EXPANSION {
            return Err(error("expands to more than 10 million names"));
        }
        let prefix = &rest[..open];
        names = names
            .iter()
            .flat_map(|name| options.iter().map(move |o| format!("{name}{prefix}{o}")))
            .collect();
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(error("a `}` has no `{`"));
    }
    Ok(names.into_iter().map(|name| name + rest).collect())
}

/// The alternatives of one brace group (without its braces).
fn group_options(group: &str) -> Option<Vec<String>> {
    if let Some((start, end)) = group.split_once("..") {
        let (a, b) = (start.parse::<u64>().ok()?, end.parse::<u64>().ok()?);
        if a.abs_diff(b) >= MAX_EXPANSION as u64 {
            return None;
        }
        let padded = |bound: &str| bound.len() > 1 && bound.starts_with('0');
        let width = if padded(start) || padded(end) {
            start.len().max(end.len())
        } else {
            0
        };
        let numbers: Vec<u64> = if a <= b {
            (a..=b).collect()
        } else {
            (b..=a).rev().collect()
        };
        return Some(numbers.iter().map(|n| format!("{n:0width$}")).collect());
    }
    group
        .contains(',')
        .then(|| group.split(',').map(str::to_string).collect())
}

/// Which part of the shards one reader takes: rank `rank` of `world_size`
/// devices, loader thread `worker` of `num_workers`. Shard `i` goes to the
/// reader with `i % (world_size * num_workers) == rank * num_workers +
/// worker` (every reader gets every n-th shard; together they get all, once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSplit {
    /// This device's rank.
    pub rank: usize,
    /// How many devices read.
    pub world_size: usize,
    /// This loader thread's index on the device.
    pub worker: usize,
    /// How many loader threads each device runs.
    pub num_workers: usize,
}

impl ShardSplit {
    /// The one reader of all shards.
    pub fn all() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            worker: 0,
            num_workers: 1,
        }
    }

    /// The shards of `shards` this reader takes; a rank or worker out of
    /// range is an error.
    pub fn select<T: Clone>(&self, shards: &[T]) -> Result<Vec<T>, DataError> {
        if self.rank >= self.world_size || self.worker >= self.num_workers {
            return Err(DataError::Shards {
                pattern: format!("{self:?}"),
                reason: "rank must be below world_size and worker below num_workers".to_string(),
            });
        }
        let readers = self.world_size * self.num_workers;
        let me = self.rank * self.num_workers + self.worker;
        Ok(shards.iter().skip(me).step_by(readers).cloned().collect())
    }
}

/// How a [`WebDataset`] is streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebDatasetOptions {
    /// Samples held for shuffling; 0 or 1: shard order.
    pub shuffle_buffer: usize,
    /// Seed of the shuffle.
    pub seed: u64,
    /// Samples read ahead of the consumer (the reader thread's queue).
    pub prefetch: usize,
}

impl Default for WebDatasetOptions {
    /// No shuffle, seed 0, 64 samples read ahead.
    fn default() -> Self {
        Self {
            shuffle_buffer: 0,
            seed: 0,
            prefetch: 64,
        }
    }
}

/// A list of shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebDataset {
    shards: Vec<PathBuf>,
}

impl WebDataset {
    /// The shards of a brace pattern (`data-{00000..00099}.tar`); a pattern
    /// that expands to a missing file is an error naming it (a typo, not a
    /// corrupt sample).
    pub fn from_pattern(pattern: &str) -> Result<Self, DataError> {
        let shards: Vec<PathBuf> = expand_braces(pattern)?
            .into_iter()
            .map(PathBuf::from)
            .collect();
        if let Some(missing) = shards.iter().find(|shard| !shard.is_file()) {
            return Err(DataError::DatasetIo {
                path: missing.clone(),
                reason: format!("no such shard (from pattern {pattern:?})"),
            });
        }
        Ok(Self { shards })
    }

    /// The shards, as given.
    pub fn new(shards: Vec<PathBuf>) -> Self {
        Self { shards }
    }

    /// Every shard, in order.
    pub fn shards(&self) -> &[PathBuf] {
        &self.shards
    }

    /// The samples of `split`'s shards, streamed by a reader thread,
    /// skips counted in `budget`.
    pub fn stream(
        &self,
        split: ShardSplit,
        options: WebDatasetOptions,
        budget: &CorruptBudget,
    ) -> Result<WebDatasetStream, DataError> {
        Ok(WebDatasetStream::new(
            split.select(&self.shards)?,
            options,
            budget.clone(),
        ))
    }
}

/// One sample's members, as they arrive.
#[derive(Default)]
struct Group {
    key: String,
    image: Option<(String, Vec<u8>)>,
    text: Option<String>,
    json_captions: Option<Vec<String>>,
    problem: Option<String>,
}

impl Group {
    fn add(&mut self, shard: &Path, name: String, extension: &str, bytes: Vec<u8>) {
        let at = format!("{}:{name}", shard.display());
        if IMAGE_EXTENSIONS.contains(&extension) {
            self.image = Some((at, bytes));
        } else if extension == "txt" {
            match String::from_utf8(bytes) {
                Ok(text) => self.text = Some(text.trim().to_string()),
                Err(_) => self.problem = Some(format!("{at}: not UTF-8")),
            }
        } else if extension == "json" {
            #[derive(serde::Deserialize)]
            struct Meta {
                caption: Option<Captions>,
            }
            match serde_json::from_slice::<Meta>(&bytes) {
                Ok(meta) => self.json_captions = meta.caption.map(Captions::into_vec),
                Err(err) => self.problem = Some(format!("{at}: {err}")),
            }
        }
    }

    /// The sample, or why it is skipped. Captions: the `.json` member's
    /// `caption` (a text or a list) when it has one, else the `.txt` member.
    fn finish(self, shard: &Path) -> Result<Sample, String> {
        let at = format!("{} sample {:?}", shard.display(), self.key);
        if let Some(problem) = self.problem {
            return Err(problem);
        }
        let Some((name, bytes)) = self.image else {
            return Err(format!("{at}: no image member (.jpg, .jpeg, .png, .webp)"));
        };
        let captions = match (self.json_captions, self.text) {
            (Some(captions), _) if !captions.is_empty() => captions,
            (_, Some(text)) => vec![text],
            _ => return Err(format!("{at}: no caption (.txt, or .json with `caption`)")),
        };
        Ok(Sample {
            key: self.key,
            image: ImageRef::Bytes { name, bytes },
            captions,
            questions: Vec::new(),
        })
    }
}

/// Reads `shard` member by member and passes each complete sample to
/// `emit` (which returns false to stop). A sample without image or caption,
/// or with an unreadable member, and a truncated or corrupt rest of the
/// shard are skipped and counted in `budget`; the error is the budget's,
/// once exceeded.
pub fn read_shard(
    shard: &Path,
    budget: &CorruptBudget,
    emit: &mut dyn FnMut(Sample) -> bool,
) -> Result<(), DataError> {
    let file = match File::open(shard) {
        Ok(file) => file,
        Err(err) => return budget.skip(format!("{}: {err}", shard.display())),
    };
    let mut archive = tar::Archive::new(BufReader::new(file));
    let entries = match archive.entries() {
        Ok(entries) => entries,
        Err(err) => return budget.skip(format!("{}: {err}", shard.display())),
    };
    let mut group = Group::default();
    let mut last = String::from("(start)");
    let flush = |group: Group, emit: &mut dyn FnMut(Sample) -> bool| {
        if group.key.is_empty() {
            return Ok(true);
        }
        match group.finish(shard) {
            Ok(sample) => {
                budget.read();
                Ok(emit(sample))
            }
            Err(reason) => budget.skip(reason).map(|()| true),
        }
    };
    for entry in entries {
        let read = entry.and_then(|mut entry| {
            let name = entry.path()?.to_string_lossy().into_owned();
            let is_file = entry.header().entry_type().is_file();
            let mut bytes = Vec::new();
            if is_file {
                entry.read_to_end(&mut bytes)?;
                // The tar crate ends a cut-off member's data without an error.
                if (bytes.len() as u64) < entry.size() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!(
                            "member {name} is cut off ({} of {} bytes)",
                            bytes.len(),
                            entry.size()
                        ),
                    ));
                }
            }
            Ok((name, is_file, bytes))
        });
        let (name, is_file, bytes) = match read {
            Ok(member) => member,
            Err(err) => {
                budget.skip(format!(
                    "{}: unreadable after member {last}, rest of the shard skipped: {err}",
                    shard.display()
                ))?;
                break;
            }
        };
        if !is_file {
            continue;
        }
        let (dir, file_name) = name.rsplit_once('/').unwrap_or(("", name.as_str()));
        let (stem, extension) = file_name.split_once('.').unwrap_or((file_name, ""));
        let key = if dir.is_empty() {
            stem.to_string()
        } else {
            format!("{dir}/{stem}")
        };
        if key != group.key {
            let done = std::mem::take(&mut group);
            if !flush(done, &mut *emit)? {
                return Ok(());
            }
            group.key = key;
        }
        // `c.0.webp` is field `0.webp` of sample `c`; its kind is the last suffix.
        let kind = extension.rsplit('.').next().unwrap_or("").to_lowercase();
        group.add(shard, name.clone(), &kind, bytes);
        last = name;
    }
    flush(group, &mut *emit).map(|_| ())
}

/// Samples of a list of shards, read in order by one thread (so the order
/// is the same on every run) into a bounded queue, then mixed by a seeded
/// shuffle buffer. Ends after the last shard; yields one error and ends
/// when the budget is exceeded.
pub struct WebDatasetStream {
    queue: Receiver<Result<Sample, DataError>>,
    buffer: Vec<Sample>,
    capacity: usize,
    rng: ChaCha8Rng,
    drained: bool,
}

impl WebDatasetStream {
    /// Streams `shards` with `options`, skips counted in `budget`.
    pub fn new(shards: Vec<PathBuf>, options: WebDatasetOptions, budget: CorruptBudget) -> Self {
        let (sender, queue) = sync_channel(options.prefetch.max(1));
        let failed = sender.clone();
        let spawned = std::thread::Builder::new()
            .name("webdataset".to_string())
            .spawn(move || {
                for shard in shards {
                    // Stops at once when the consumer is gone.
                    let mut open = true;
                    let read = read_shard(&shard, &budget, &mut |sample| {
                        open = sender.send(Ok(sample)).is_ok();
                        open
                    });
                    if let Err(err) = read {
                        let _ = sender.send(Err(err));
                        return;
                    }
                    if !open {
                        return;
                    }
                }
            });
        if let Err(err) = spawned {
            let _ = failed.send(Err(DataError::DatasetIo {
                path: PathBuf::from("(webdataset reader thread)"),
                reason: err.to_string(),
            }));
        }
        Self {
            queue,
            buffer: Vec::new(),
            capacity: options.shuffle_buffer.max(1),
            rng: ChaCha8Rng::seed_from_u64(options.seed),
            drained: false,
        }
    }
}

impl Iterator for WebDatasetStream {
    type Item = Result<Sample, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.drained && self.buffer.len() < self.capacity {
            match self.queue.recv() {
                Ok(Ok(sample)) => self.buffer.push(sample),
                Ok(Err(err)) => {
                    self.drained = true;
                    self.buffer.clear();
                    return Some(Err(err));
                }
                Err(_) => self.drained = true,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let at = if self.capacity > 1 {
            self.rng.random_range(0..self.buffer.len())
        } else {
            0
        };
        Some(Ok(self.buffer.swap_remove(at)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{export, test_dir, ExportFormat, ExportOptions, SkipLimit};
    use crate::synthetic::SyntheticWorld;
    use std::fs;

    #[test]
    fn braces_expand_with_their_padding() {
        let names = expand_braces("data-{00008..00011}.tar").unwrap();
        assert_eq!(
            names,
            [
                "data-00008.tar",
                "data-00009.tar",
                "data-00010.tar",
                "data-00011.tar"
            ]
        );
        assert_eq!(expand_braces("{8..10}").unwrap(), ["8", "9", "10"]);
        assert_eq!(expand_braces("{3..1}").unwrap(), ["3", "2", "1"]);
        assert_eq!(
            expand_braces("{a,b}/{0..1}.tar").unwrap(),
            ["a/0.tar", "a/1.tar", "b/0.tar", "b/1.tar"]
        );
        assert_eq!(expand_braces("plain.tar").unwrap(), ["plain.tar"]);
        for bad in ["x{0..2", "x{{0..1}}", "x}", "{a}", "{0..z}"] {
            let error = expand_braces(bad).unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
    }

    #[test]
    fn ranks_and_workers_share_the_shards_once() {
        let shards: Vec<usize> = (0..23).collect();
        let mut union = Vec::new();
        for rank in 0..3 {
            for worker in 0..2 {
                let split = ShardSplit {
                    rank,
                    world_size: 3,
                    worker,
                    num_workers: 2,
                };
                let mine = split.select(&shards).unwrap();
                let me = rank * 2 + worker;
                assert!(mine.iter().all(|&s| s % 6 == me), "{split:?}: {mine:?}");
                union.extend(mine);
            }
        }
        union.sort();
        assert_eq!(union, shards);
        let too_far = ShardSplit {
            rank: 3,
            world_size: 3,
            ..ShardSplit::all()
        };
        assert!(too_far.select(&shards).is_err());
    }

    /// A tar of `(name, bytes)` members.
    fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in members {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_cksum();
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_sample_without_image_is_skipped_and_counted() {
        let dir = test_dir("wds-no-image");
        let shard = dir.join("shard.tar");
        let members: [(&str, &[u8]); 6] = [
            ("a.png", b"png bytes"),
            ("a.txt", b" first caption \n"),
            ("b.txt", b"no image here"),
            ("sub/c.0.webp", b"webp bytes"),
            ("sub/c.0.json", br#"{"caption": ["x", "y"], "url": "u"}"#),
            ("sub/c.0.cls", b"3"),
        ];
        fs::write(&shard, tar_of(&members)).unwrap();
        let budget = CorruptBudget::default();
        let samples: Vec<Sample> = WebDatasetStream::new(
            vec![shard.clone()],
            WebDatasetOptions::default(),
            budget.clone(),
        )
        .collect::<Result<_, _>>()
        .unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].captions, ["first caption"]);
        assert_eq!(samples[1].key, "sub/c");
        assert_eq!(samples[1].captions, ["x", "y"]);
        match &samples[1].image {
            ImageRef::Bytes { name, bytes } => {
                assert!(name.ends_with("shard.tar:sub/c.0.webp"), "{name}");
                assert_eq!(bytes, b"webp bytes");
            }
            other => panic!("{other:?}"),
        }
        let report = budget.report();
        assert_eq!((report.read, report.skipped), (2, 1));
        assert!(report.reasons[0].contains("\"b\": no image"), "{report:?}");
        // No skip allowed: the stream ends with the budget's error.
        let strict = CorruptBudget::new(SkipLimit::count(0));
        let results: Vec<_> =
            WebDatasetStream::new(vec![shard], WebDatasetOptions::default(), strict).collect();
        let error = results.last().unwrap().as_ref().unwrap_err().to_string();
        assert!(error.starts_with("1 of 2 samples skipped"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_truncated_shard_gives_its_first_samples_and_counts_the_rest() {
        let dir = test_dir("wds-truncated");
        let options = ExportOptions {
            scenes: 6,
            held_out: 1,
            shard_size: 6,
            ..ExportOptions::new(ExportFormat::WebDataset)
        };
        export(&SyntheticWorld::new(2, 32), &options, &dir).unwrap();
        let shard = dir.join("train-00000.tar");
        let bytes = fs::read(&shard).unwrap();
        // Cut inside the fourth sample's image (each sample: 3 members).
        let cut = tar_offsets(&bytes)[9] + 512 + 40;
        fs::write(&shard, &bytes[..cut]).unwrap();
        let budget = CorruptBudget::default();
        let samples: Vec<Sample> =
            WebDatasetStream::new(vec![shard], WebDatasetOptions::default(), budget.clone())
                .collect::<Result<_, _>>()
                .unwrap();
        assert_eq!(samples.len(), 3);
        let report = budget.report();
        assert_eq!(report.skipped, 1, "{report:?}");
        assert!(
            report.reasons[0]
                .contains("train-00000.tar: unreadable after member 000000000003.json"),
            "{report:?}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Offsets of the members' headers in an uncompressed ustar archive.
    fn tar_offsets(bytes: &[u8]) -> Vec<usize> {
        let mut offsets = Vec::new();
        let mut at = 0;
        while at + 512 <= bytes.len() && bytes[at] != 0 {
            offsets.push(at);
            let size_field = std::str::from_utf8(&bytes[at + 124..at + 135]).unwrap();
            let size = usize::from_str_radix(size_field.trim_matches('\0').trim(), 8).unwrap();
            at += 512 + size.div_ceil(512) * 512;
        }
        offsets
    }

    #[test]
    fn the_shuffle_is_seeded_and_loses_nothing() {
        let dir = test_dir("wds-shuffle");
        let options = ExportOptions {
            scenes: 12,
            held_out: 1,
            shard_size: 4,
            ..ExportOptions::new(ExportFormat::WebDataset)
        };
        export(&SyntheticWorld::new(3, 32), &options, &dir).unwrap();
        let dataset =
            WebDataset::from_pattern(&format!("{}/train-{{00000..00002}}.tar", dir.display()))
                .unwrap();
        let keys = |seed, shuffle_buffer| -> Vec<String> {
            let options = WebDatasetOptions {
                shuffle_buffer,
                seed,
                prefetch: 2,
            };
            dataset
                .stream(ShardSplit::all(), options, &CorruptBudget::default())
                .unwrap()
                .map(|s| s.unwrap().key)
                .collect()
        };
        let ordered = keys(0, 0);
        assert_eq!(ordered.len(), 12);
        assert!(ordered.windows(2).all(|w| w[0] < w[1]));
        let shuffled = keys(7, 5);
        assert_eq!(shuffled, keys(7, 5));
        assert_ne!(shuffled, ordered);
        assert_ne!(shuffled, keys(8, 5));
        let mut sorted = shuffled;
        sorted.sort();
        assert_eq!(sorted, ordered);
        let missing =
            WebDataset::from_pattern(&format!("{}/train-{{00000..00003}}.tar", dir.display()));
        assert!(missing.unwrap_err().to_string().contains("train-00003.tar"));
        fs::remove_dir_all(&dir).unwrap();
    }
}

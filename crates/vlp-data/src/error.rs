use std::path::PathBuf;

/// Errors of the data layer. Each names the file or item at fault.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// No file at the tokenizer path.
    #[error("tokenizer file {path} not found")]
    TokenizerNotFound {
        /// The path given.
        path: PathBuf,
    },
    /// A file that the `tokenizers` crate cannot read.
    #[error("tokenizer file {path} is not a valid tokenizer.json: {reason}")]
    TokenizerInvalid {
        /// The file.
        path: PathBuf,
        /// The `tokenizers` crate's message.
        reason: String,
    },
    /// A tokenizer without one of `[PAD] [UNK] [CLS] [SEP] [MASK]`.
    #[error("tokenizer {source_name} has no special token {token}")]
    MissingSpecialToken {
        /// The file (or "trained tokenizer").
        source_name: String,
        /// The missing token.
        token: String,
    },
    /// Saving a tokenizer failed.
    #[error("could not write tokenizer file {path}: {reason}")]
    TokenizerWrite {
        /// The file.
        path: PathBuf,
        /// The `tokenizers` crate's message.
        reason: String,
    },
    /// Training a WordPiece tokenizer failed (the `tokenizers` crate's message).
    #[error("tokenizer training failed: {0}")]
    TokenizerTraining(String),
    /// Encoding texts failed, or `max_len` leaves no room for `[CLS]` and `[SEP]`.
    #[error("could not tokenize {text:?}: {reason}")]
    Tokenize {
        /// The (first) text.
        text: String,
        /// Why.
        reason: String,
    },
    /// A region feature file could not be read.
    #[error("could not read {path}: {reason}")]
    RegionIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A malformed line of a BUTD TSV file.
    #[error("{path} line {line}: {reason}")]
    TsvRecord {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A file that is not a readable `.npz` (zip) archive.
    #[error("{path}: not a readable npz archive: {reason}")]
    NpzArchive {
        /// The file.
        path: PathBuf,
        /// The zip reader's message.
        reason: String,
    },
    /// A missing or malformed array of an `.npz` file.
    #[error("{path}, array `{key}`: {reason}")]
    NpzArray {
        /// The file.
        path: PathBuf,
        /// The array's name.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An image id the region source does not hold.
    #[error("no image {image_id:?} in {path}")]
    UnknownImage {
        /// The source (file or folder).
        path: PathBuf,
        /// The id asked for.
        image_id: String,
    },
    /// More corrupt region records than allowed.
    #[error("{count} corrupt region records, more than the {max} allowed; last: {last}")]
    TooManyCorruptRecords {
        /// Corrupt records met.
        count: usize,
        /// The limit.
        max: usize,
        /// The last record's error.
        last: Box<DataError>,
    },
    /// Region records that cannot form one batch (e.g. different feature widths).
    #[error("cannot batch regions: {0}")]
    RegionBatch(String),
    /// An image whose sides the patch size does not divide.
    #[error("cannot cut a {width}x{height} image into {patch_size}-pixel patches")]
    PatchSize {
        /// Image width in pixels.
        width: usize,
        /// Image height in pixels.
        height: usize,
        /// Patch side in pixels.
        patch_size: usize,
    },
    /// An empty answer vocabulary or one with a repeated answer.
    #[error("invalid answer vocabulary: {0}")]
    AnswerVocabulary(String),
    /// Region masking asked of a batcher that has no detector.
    #[error("{0}")]
    RegionMaskingWithoutRegions(&'static str),
    /// Patch masking asked of a batcher that yields regions.
    #[error("patch_masking needs pixel images; the batcher has a detector (regions)")]
    PatchMaskingWithoutImages,
    /// A probability outside `[0, 1]`.
    #[error("{name} is {value}, not a probability in [0, 1]")]
    Probability {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: f64,
    },
    /// An image file that cannot be read (missing, unreadable).
    #[error("could not read image {path}: {reason}")]
    ImageRead {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// Image bytes that do not decode: corrupt, truncated or empty.
    #[error("image {origin} does not decode: {reason}")]
    ImageDecode {
        /// The file, archive member or other origin the caller named.
        origin: String,
        /// The decoder's message.
        reason: String,
    },
    /// Bytes of an unknown image format or of one vlp does not decode
    /// (it decodes JPEG, PNG and WebP).
    #[error("image {origin}: unsupported format: {reason}")]
    ImageFormat {
        /// The file, archive member or other origin the caller named.
        origin: String,
        /// What the decoder recognised, if anything.
        reason: String,
    },
    /// An image whose header declares more pixels, or whose decoding needs
    /// more memory, than [`MAX_IMAGE_PIXELS`](crate::image::MAX_IMAGE_PIXELS)
    /// and [`MAX_DECODE_BYTES`](crate::image::MAX_DECODE_BYTES) allow.
    #[error("image {origin} is too large: {reason}")]
    ImageTooLarge {
        /// The file, archive member or other origin the caller named.
        origin: String,
        /// Its size, or the limit the decoder hit.
        reason: String,
    },
    /// A setting of an [`ImageTransformConfig`](crate::image::ImageTransformConfig)
    /// out of its range.
    #[error("image transform setting {key} {reason}")]
    ImageTransform {
        /// The setting.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A dataset file that cannot be opened or read.
    #[error("could not read {path}: {reason}")]
    DatasetIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        reason: String,
    },
    /// A dataset file that cannot be written (export).
    #[error("could not write {path}: {reason}")]
    DatasetWrite {
        /// The file.
        path: PathBuf,
        /// The I/O or encoder error.
        reason: String,
    },
    /// An annotation file that does not parse as its format (JSON syntax, a
    /// missing key, a wrong type); the parser's message names the key and
    /// the line and column.
    #[error("{path}: {reason}")]
    Annotation {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the key and position.
        reason: String,
    },
    /// One bad record of an annotation file.
    #[error("{path} {at}: {reason}")]
    AnnotationRecord {
        /// The file.
        path: PathBuf,
        /// Where: `line 3`, `images[7]`, `question 42`.
        at: String,
        /// What is wrong with it.
        reason: String,
    },
    /// More samples skipped as corrupt than the budget allows.
    #[error(
        "{skipped} of {seen} samples skipped, more than the {allowed} allowed; first: {first}"
    )]
    TooManySkipped {
        /// Samples skipped.
        skipped: usize,
        /// Samples met (read and skipped).
        seen: usize,
        /// The most the budget allowed at that point.
        allowed: usize,
        /// The first skip reasons, `; `-separated.
        first: String,
    },
    /// An index past the end of a sample source.
    #[error("sample {index} asked of {origin}, which has {len}")]
    SampleIndex {
        /// The source (file or description).
        origin: String,
        /// The index asked for.
        index: usize,
        /// The source's length.
        len: usize,
    },
    /// A malformed shard pattern or shard split.
    #[error("shards {pattern:?}: {reason}")]
    Shards {
        /// The pattern (or split) given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A malformed image-path pattern (VQA v2).
    #[error("image pattern {pattern:?}: {reason}")]
    ImagePattern {
        /// The pattern given.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A video whose clip cannot be loaded.
    #[error("video {video}: {reason}")]
    Video {
        /// The video's id.
        video: String,
        /// What is wrong, naming the file.
        reason: String,
    },
    /// A dataset format name that vlp does not know, or options that do not
    /// fit the format.
    #[error("{0}")]
    DatasetFormat(String),
}

impl DataError {
    /// Checks masking settings (typically read from a config file) before
    /// they reach `rand`, which panics on values outside `[0, 1]`.
    pub(crate) fn check_probabilities(settings: &[(&'static str, f64)]) -> Result<(), DataError> {
        match settings
            .iter()
            .find(|(_, value)| !(0.0..=1.0).contains(value))
        {
            Some(&(name, value)) => Err(DataError::Probability { name, value }),
            None => Ok(()),
        }
    }
}

//! The BLIP/LAVIS annotation list (Li et al. 2022, BLIP; the LAVIS library's
//! `coco_karpathy_{train,val,test}.json`): a JSON list of `{"image",
//! "caption", "image_id"}`, one entry per caption in training files and one
//! per image with a caption list in evaluation files.

use std::path::Path;

use serde::Deserialize;

use super::{captioned, id_text, read_json, resolve, Captions, SampleList};
use crate::DataError;

#[derive(Deserialize)]
struct LavisRecord {
    image: String,
    caption: Captions,
    #[serde(default)]
    image_id: Option<serde_json::Value>,
}

/// One sample per entry, its image under `images` (LAVIS' `vis_root`), keyed
/// by `image_id` (else the image path). A file that does not parse, or an
/// entry without `image` or `caption`, is an error naming the file and the
/// key.
pub fn read_lavis(path: &Path, images: &Path) -> Result<SampleList, DataError> {
    let records: Vec<LavisRecord> = read_json(path)?;
    let samples = records
        .into_iter()
        .map(|record| {
            let key = record
                .image_id
                .as_ref()
                .map_or_else(|| record.image.clone(), id_text);
            captioned(
                key,
                resolve(images, &record.image),
                record.caption.into_vec(),
            )
        })
        .collect();
    Ok(SampleList::new(path.to_path_buf(), samples))
}

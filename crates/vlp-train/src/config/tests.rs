//! Tests of the configuration schema: layering, validation, presets.

use super::*;

#[test]
fn round_trips_and_rejects_unknown_keys() {
    let config = PretrainConfig::default();
    let parsed: PretrainConfig = toml::from_str(&config.to_toml()).unwrap();
    assert_eq!(parsed, config);
    let partial: PretrainConfig = toml::from_str("steps = 5\n[model]\nhidden_size = 64\n").unwrap();
    assert_eq!(
        (partial.steps, partial.model.hidden_size, partial.batch_size),
        (5, 64, config.batch_size)
    );
    let err = toml::from_str::<PretrainConfig>("[model]\nhiden_size = 64\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("hiden_size"), "{err}");
    let survivor = PretrainConfig {
        schedule: Decay::Cosine,
        max_grad_norm: 2.0,
        checkpoint_every: 50,
        ..config
    };
    let text = survivor.to_toml();
    assert!(text.contains("schedule = \"cosine\""), "{text}");
    assert_eq!(toml::from_str::<PretrainConfig>(&text).unwrap(), survivor);
    let err = toml::from_str::<PretrainConfig>("schedule = \"step\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("step"), "{err}");
    let clip = PretrainConfig {
        max_grad_norm: -1.0,
        ..PretrainConfig::default()
    };
    let err = clip.validate().unwrap_err().to_string();
    assert!(err.contains("max_grad_norm"), "{err}");
}

#[test]
fn validation_names_the_key() {
    let mut config = PretrainConfig::default();
    config.model.num_heads = 3;
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("model.num_heads"));
    let mut config = PretrainConfig::default();
    config.data.mlm_probability = 1.5;
    assert!(config
        .validate()
        .unwrap_err()
        .to_string()
        .contains("data.mlm_probability"));
    for (batch_size, micro_batches) in [(96, 0), (96, 5), (4, 4)] {
        let config = PretrainConfig {
            batch_size,
            micro_batches,
            ..PretrainConfig::default()
        };
        let err = config.validate().unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("micro_batches ({micro_batches})")),
            "{err}"
        );
    }
}

#[test]
fn dataset_tables_round_trip_and_what_needs_the_world_is_named() {
    let text = r#"
[data]
max_skipped = 0.05
[[data.sources]]
format = "coco"
annotations = "ann/captions_train2017.json"
images = "train2017"
[[data.sources]]
format = "webdataset"
shards = "cc-{000..009}.tar"
weight = 3.0
[data.image]
scale = [1.0, 1.0]
flip_probability = 0.0
"#;
    let config: PretrainConfig = toml::from_str(text).unwrap();
    assert_eq!(config.data.sources.len(), 2);
    assert_eq!(config.data.sources[1].weight, 3.0);
    assert_eq!(config.data.image.scale, (1.0, 1.0));
    let round: PretrainConfig = toml::from_str(&config.to_toml()).unwrap();
    assert_eq!(round, config);
    // No held-out set, and no Karpathy file to take its `val` split from.
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("--val-annotations"), "{err}");
    let mut config = config;
    config.data.held_out = Some(config.data.sources[0].clone());
    config.validate().unwrap();
    let transform = config.data.image_transform();
    assert_eq!((transform.image_size, transform.resize_to), (64, 64));
    let mut regions = config.clone();
    regions.model.visual = VisualKind::Regions;
    let err = regions.validate().unwrap_err().to_string();
    assert!(
        err.contains("model.visual") && err.contains("`regions`"),
        "{err}"
    );
    // Region features for every dataset, the held-out one included.
    let specs = regions
        .data
        .sources
        .iter_mut()
        .chain(&mut regions.data.held_out);
    specs.for_each(|spec| spec.regions = Some("features.tsv".into()));
    regions.validate().unwrap();
    config.data.sources[0].images = None;
    let err = config.validate().unwrap_err().to_string();
    assert!(
        err.contains("data.sources[0]") && err.contains("`images`"),
        "{err}"
    );
    config.data.sources[0].images = Some("train2017".into());
    config.data.image.scale = (0.0, 1.0);
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("data.image"), "{err}");
}

#[test]
fn library_enums_read_and_write_the_toml_spellings() {
    use vlp_features::{BoxGeometry, ResNetLayout};
    use vlp_models::{DualEncoderPooling, DualStreamKind};
    let config: PretrainConfig = toml::from_str(
        "[model]\ncnn_layout = \"resnet50\"\nbox_geometry = \"vilbert5\"\n\
         [model.architecture]\nkind = \"dual_stream\"\nco_attention = \"lxmert\"\n\
         text_layers = 1\nvisual_layers = 1\ncross_layers = 1\n",
    )
    .unwrap();
    let m = &config.model;
    assert_eq!(
        (m.cnn_layout, m.box_geometry),
        (ResNetLayout::ResNet50, BoxGeometry::CornersArea5)
    );
    assert!(matches!(
        m.architecture,
        Architecture::DualStream {
            co_attention: DualStreamKind::Lxmert,
            ..
        }
    ));
    let written = config.to_toml();
    for spelling in [
        "cnn_layout = \"resnet50\"",
        "box_geometry = \"vilbert5\"",
        "co_attention = \"lxmert\"",
    ] {
        assert!(written.contains(spelling), "{spelling} not in\n{written}");
    }
    let clip: PretrainConfig = toml::from_str(
        "[model.architecture]\nkind = \"dual_encoder\"\ntext_layers = 1\n\
         image_layers = 1\nprojection_dim = 8\n",
    )
    .unwrap();
    let Architecture::DualEncoder { pooling, .. } = clip.model.architecture else {
        panic!("a dual encoder");
    };
    assert_eq!(pooling, DualEncoderPooling::Clip, "the default pooling");
    // Burn's derived serialisation spelled the variants; they still read.
    assert_eq!(
        serde_json::from_str::<BoxGeometry>("\"CornersSizeArea7\"").unwrap(),
        BoxGeometry::CornersSizeArea7
    );
}

#[test]
fn a_family_size_the_model_cannot_build_is_an_error_naming_the_key() {
    let mut config: PretrainConfig = toml::from_str(
        "[model.architecture]\nkind = \"dual_stream\"\nco_attention = \"vilbert\"\n\
         text_layers = 1\nvisual_layers = 1\ncross_layers = 1\nvisual_num_heads = 3\n",
    )
    .unwrap();
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("vision.num_attention_heads"), "{err}");
    config.model.architecture = Architecture::DualStream {
        co_attention: vlp_models::DualStreamKind::Vilbert,
        text_layers: 1,
        visual_layers: 1,
        cross_layers: 2,
        visual_hidden_size: None,
        visual_num_heads: None,
        visual_intermediate_size: None,
        bi_hidden_size: None,
        bi_num_heads: None,
    };
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("num_cross_layers"), "{err}");
}

#[test]
fn fusion_momentum_settings_default_off_and_map_to_the_pretrainer() {
    let fusion = "[model.architecture]\nkind = \"fusion\"\ntext_layers = 1\n\
                  fusion_layers = 1\nimage_layers = 1\n";
    let off: PretrainConfig = toml::from_str(fusion).unwrap();
    let albef = off.fusion(100).unwrap();
    assert_eq!(
        (albef.queue_size, albef.momentum, albef.distill_alpha),
        (0, 0.995, 0.4)
    );
    let on: PretrainConfig = toml::from_str(&format!(
        "{fusion}queue_size = 64\nmomentum = 0.99\ndistill_alpha = 0.3\n"
    ))
    .unwrap();
    assert_eq!(toml::from_str::<PretrainConfig>(&on.to_toml()).unwrap(), on);
    let albef = on.fusion(100).unwrap();
    assert_eq!(
        (albef.queue_size, albef.momentum, albef.distill_alpha),
        (64, 0.99, 0.3)
    );
    let bad: PretrainConfig =
        toml::from_str(&format!("{fusion}queue_size = 64\nmomentum = 1.5\n")).unwrap();
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("model.architecture.momentum"), "{err}");
    let mut split = on.clone();
    split.micro_batches = 2;
    let err = split.validate().unwrap_err().to_string();
    assert!(err.contains("queue_size = 0"), "{err}");
    split.micro_batches = 1;
    assert_eq!(split.validate(), Ok(()));
    let base = PretrainConfig::from_layers(crate::presets::find("albef-base").ok(), None).unwrap();
    let albef = base.fusion(100).unwrap();
    assert_eq!(
        (albef.queue_size, albef.momentum, albef.distill_alpha),
        (65536, 0.995, 0.4)
    );
}

#[test]
fn architecture_settings_are_typed_and_round_trip() {
    let dual = "[model.architecture]\nkind = \"dual_stream\"\nco_attention = \"vilbert\"\n\
                text_layers = 2\nvisual_layers = 1\ncross_layers = 1\n";
    let config: PretrainConfig = toml::from_str(dual).unwrap();
    assert_eq!(config.model.architecture.name(), "dual_stream");
    let parsed: PretrainConfig = toml::from_str(&config.to_toml()).unwrap();
    assert_eq!(parsed, config);
    for (text, needle) in [
        (format!("{dual}visual_layer = 3\n"), "visual_layer"),
        (dual.replace("vilbert", "visualbert"), "visualbert"),
        (
            dual.replace("dual_stream", "triple_stream"),
            "triple_stream",
        ),
        (dual.replace("cross_layers = 1\n", ""), "cross_layers"),
        (
            "[model.architecture]\nkind = \"fusion\"\ntext_layers = 1\n\
             fusion_layers = 1\nimage_layers = 1\nqueue = 8\n"
                .into(),
            "queue",
        ),
    ] {
        let err = toml::from_str::<PretrainConfig>(&text)
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{needle} not in {err}");
    }
}

/// A model on clips: the world's clips and their captions, frames per clip
/// in the visual extractor; VQA questions, datasets on disk and zero
/// frames are named errors.
#[test]
fn clips_need_frames_and_the_world() {
    let parse = |text: &str| -> PretrainConfig { toml::from_str(text).unwrap() };
    let config = parse(
        "[data]\nimage_size = 32\nnum_frames = 6\n[model]\nvisual = \"frames\"\npatch_size = 8\n",
    );
    config.validate().unwrap();
    let vlp_features::VisualEmbeddingsConfig::Frames(frames) = config.visual() else {
        panic!("frame patches")
    };
    assert_eq!((frames.max_frames, frames.patches.num_patches()), (6, 16));
    let mut no_frames = config.clone();
    no_frames.data.num_frames = 0;
    let err = no_frames.validate().unwrap_err().to_string();
    assert!(err.contains("data.num_frames"), "{err}");
    let mut even = config.clone();
    even.model.time_kernel = 2;
    let err = even.validate().unwrap_err().to_string();
    assert!(err.contains("model.time_kernel"), "{err}");
    let mut hero = config.clone();
    hero.model.architecture = toml::from_str("kind = \"hero\"\ntemporal_layers = 2").unwrap();
    hero.validate().unwrap();
    hero.model.visual = VisualKind::Patches;
    let err = hero.validate().unwrap_err().to_string();
    assert!(
        err.contains("model.visual") && err.contains("hero"),
        "{err}"
    );
    let mut vqa = config.clone();
    vqa.objectives = toml::from_str("vqa = 1").unwrap();
    let err = vqa.validate().unwrap_err().to_string();
    assert!(err.contains("objectives.vqa"), "{err}");
    let mut datasets = config;
    datasets.data.sources = vec![DatasetSpec {
        annotations: Some("train.jsonl".into()),
        ..DatasetSpec::new(ExportFormat::Jsonl)
    }];
    let err = datasets.validate().unwrap_err().to_string();
    assert!(
        err.contains("model.visual") && err.contains("clips"),
        "{err}"
    );
}

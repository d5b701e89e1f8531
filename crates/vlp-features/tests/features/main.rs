//! vlp-features' integration tests, one binary (each test binary links the
//! Burn stack again): ViT patch positions and the torchvision ResNet.

mod patch_positions;
mod resnet_torchvision;

"""Reference of `cargo xtask bench data`: the input pipeline a PyTorch user
runs (a DataLoader with 2 worker processes), on the JPEGs and captions the
runner generated.

Per image, as torchvision's evaluation transform on PIL images:
PIL decode -> convert("RGB") -> resize the shorter side to 256 (BILINEAR,
torchvision's default) -> centre crop 224 -> float32 / 255, ImageNet mean
and std, HWC -> CHW. Per caption: Hugging Face `tokenizers` with the same
tokenizer.json, truncated and padded to 32 tokens (`encode_batch`).

Each worker builds whole batches (as DataLoader workers do) and returns
only a checksum: the cost of moving the batch to the main process is left
out, which favours the reference. The pool is started and warmed up before
the timed pass. Writes {"images_per_second", "images", "seconds",
"first_image": path of the first image's [3, 224, 224] tensor as raw
little-endian float32}.
"""

import argparse
import json
import multiprocessing as mp
import time

import numpy as np
from PIL import Image
from tokenizers import Tokenizer

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE, CROP, MAX_TOKENS = 256, 224, 32
TOKENIZER = None


def load(path):
    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = image.size
        # torchvision's Resize(256): the shorter side to 256, the longer
        # one scaled and truncated.
        if width <= height:
            size = (RESIZE, int(RESIZE * height / width))
        else:
            size = (int(RESIZE * width / height), RESIZE)
        image = image.resize(size, Image.BILINEAR)
        # torchvision's CenterCrop(224).
        left = int(round((size[0] - CROP) / 2.0))
        top = int(round((size[1] - CROP) / 2.0))
        image = image.crop((left, top, left + CROP, top + CROP))
        pixels = np.asarray(image, dtype=np.float32) / 255.0
        return np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1))


def init(tokenizer_path):
    global TOKENIZER
    TOKENIZER = Tokenizer.from_file(tokenizer_path)
    TOKENIZER.enable_truncation(MAX_TOKENS)
    TOKENIZER.enable_padding(length=MAX_TOKENS)


def batch(chunk):
    images = np.stack([load(path) for path, _ in chunk])
    ids = np.array([e.ids for e in TOKENIZER.encode_batch([c for _, c in chunk])])
    return float(images.sum()) + float(ids.sum())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--manifest", required=True, help="JSON list of [image, caption]")
    parser.add_argument("--tokenizer", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", required=True)
    parser.add_argument("--first-image", required=True)
    args = parser.parse_args()
    with open(args.manifest) as f:
        pairs = json.load(f)
    batches = [pairs[i : i + args.batch_size] for i in range(0, len(pairs), args.batch_size)]
    load(pairs[0][0]).astype("<f4").tofile(args.first_image)
    with mp.Pool(args.workers, initializer=init, initargs=(args.tokenizer,)) as pool:
        pool.map(batch, batches[: args.workers], chunksize=1)
        start = time.perf_counter()
        pool.map(batch, batches, chunksize=1)
        seconds = time.perf_counter() - start
    with open(args.out, "w") as f:
        json.dump(
            {
                "images_per_second": len(pairs) / seconds,
                "images": len(pairs),
                "seconds": seconds,
                "first_image": args.first_image,
            },
            f,
        )


if __name__ == "__main__":
    main()

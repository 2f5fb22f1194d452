"""Write scikit-learn's copy of the UCI handwritten digits as PNG files, one folder per class.

    pip install scikit-learn && python data/make_digits.py

Produces data/demo/digits/<0-9>/digit_<index>.png (1,797 images, 8x8, grayscale). The 17 grey levels
(0-16) of the original are scaled to 0-255 and inverted, so digits are dark ink on white paper.
"""

from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits


def main() -> None:
    out = Path(__file__).resolve().parent / "demo" / "digits"
    digits = load_digits()
    for i, (img, label) in enumerate(zip(digits.images, digits.target)):
        folder = out / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (255 - np.round(img * 255.0 / 16.0)).astype(np.uint8)
        # optimize + no metadata keeps the files small and byte-identical between runs
        Image.fromarray(pixels, "L").save(folder / f"digit_{i:04d}.png", optimize=True)
    print(f"wrote {len(digits.images)} images to {out}")


if __name__ == "__main__":
    main()

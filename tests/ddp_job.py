"""`tlbench` (tui.main) with probes inside each process, for tests/engine/train/test_distributed.py: run it under torchrun
(or alone) as `python tests/ddp_job.py RECORD_DIR <tlbench arguments>`.

Each process writes RECORD_DIR/rank<R>.json when the command returns: the first augmentation crops it drew,
how many DistributedDataParallel wrappers it built and took apart, and RECORD_DIR/rank<R>.pt, its model's
final state. With TLBENCH_TEST_BREAK_FIRST=1, training sample 0 fails to decode from the first epoch on, as a
file that broke after the scan does (a whole batch, with --batch-size 1). TLBENCH_TEST_STEP_SLEEP=S makes
every training step S seconds longer (a window to stop a run in; the numbers do not change). With
TLBENCH_TEST_BREAK_STORE=1, building the decoded-image cache fails on local rank 0 (a full disk). The error a
failed command reported is recorded as "error".
"""

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from torch.nn.parallel import DistributedDataParallel  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

import engine.cli.common as cli_common  # noqa: E402
import engine.train.augment as augment  # noqa: E402
import engine.train.finetune as finetune  # noqa: E402
import engine.train.loop as loop  # noqa: E402
from engine.data.decoded import DecodedFiles  # noqa: E402
from engine.data.loaders import ImageFiles  # noqa: E402

out = Path(sys.argv[1])
rank = int(os.environ.get("RANK", "0"))
record = {"crops": [], "wraps": 0, "unwraps": 0, "broken_batches": 0}

real_make_params = v2.RandomResizedCrop.make_params


def make_params(self, flat_inputs):
    params = real_make_params(self, flat_inputs)
    if len(record["crops"]) < 16:
        record["crops"].append([int(params[k]) for k in ("top", "left", "height", "width")])
    return params


real_ddp_init = DistributedDataParallel.__init__
real_remove_hooks = DistributedDataParallel._remove_autograd_hooks


def ddp_init(self, *args, **kwargs):
    record["wraps"] += 1
    real_ddp_init(self, *args, **kwargs)


def remove_hooks(self):
    record["unwraps"] += 1
    real_remove_hooks(self)


def breaking(real_getitem):
    """The training set's __getitem__ (from the files, or from the decoded-image cache), sample 0 broken."""
    def getitem(self, i):
        if self.transform is not None and i == 0 and os.environ.get("TLBENCH_TEST_BREAK_FIRST"):
            record["broken_batches"] += 1
            size = self.prep.crop_size
            return torch.zeros(3, size, size, dtype=torch.uint8), i, "broke after the scan (test)"
        return real_getitem(self, i)
    return getitem


real_summary = finetune.summary


def summary(ft, *args, **kwargs):
    torch.save(ft.model.state_dict(), out / f"rank{rank}.pt")
    return real_summary(ft, *args, **kwargs)


real_step = loop.train_step


def train_step(*args, **kwargs):
    time.sleep(float(os.environ.get("TLBENCH_TEST_STEP_SLEEP", "0")))
    return real_step(*args, **kwargs)


real_build_store = augment.build_store


def build_store(*args, **kwargs):
    if os.environ.get("TLBENCH_TEST_BREAK_STORE"):
        raise OSError(28, "No space left on device")
    return real_build_store(*args, **kwargs)


real_report_failure = cli_common.report_failure


def report_failure(args, error, title=None):
    record["error"] = str(error)
    return real_report_failure(args, error, title)


loop.train_step = train_step
augment.build_store = build_store
cli_common.report_failure = report_failure
v2.RandomResizedCrop.make_params = make_params
DistributedDataParallel.__init__ = ddp_init
DistributedDataParallel._remove_autograd_hooks = remove_hooks
ImageFiles.__getitem__ = breaking(ImageFiles.__getitem__)
DecodedFiles.__getitem__ = breaking(DecodedFiles.__getitem__)
finetune.summary = summary

from tui.main import main  # noqa: E402

out.mkdir(parents=True, exist_ok=True)
try:
    code = main(sys.argv[2:])
finally:
    (out / f"rank{rank}.json").write_text(json.dumps(record))
sys.exit(code)

"""timm weights in the Hugging Face cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub).

huggingface_hub's own functions find them (`try_to_load_from_cache`) and download them once
(`hf_hub_download`, its progress routed into our ProgressAdvanced events); the file is read here (safetensors,
or a pickle with weights_only=True) and handed to timm's `create_model`, whose checkpoint filter adapts it.
Offline (TLBENCH_OFFLINE=1 or HF_HUB_OFFLINE=1) a model not in the cache fails at once, with the command that
fetches it on a networked machine and where to copy the cache folder.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import huggingface_hub
import safetensors.torch
import torch
from huggingface_hub.errors import EntryNotFoundError
from timm.models import get_pretrained_cfg
from timm.models._hub import _get_safe_alternatives
from tqdm.auto import tqdm

from engine.core.errors import EXIT_FAILED, WeightsError
from engine.core.events import ProgressAdvanced
from engine.core.jobs import JobContext, JobStopped
from engine.fetch.downloads import human_bytes, network_problem, offline
from engine.models.spec import BackboneSpec

HF_ENDPOINT = "https://huggingface.co"
_TRUE = ("1", "true", "yes", "on")


def hub_cache_dir() -> Path:
    """The hub cache as huggingface_hub resolves it, read from the environment now (its constants are read once,
    at import; a test or a user's shell may set HF_HOME later)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def hub_offline() -> bool:
    return offline() or os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def repo_and_files(spec: BackboneSpec) -> tuple[str, list[str]]:
    """The hub repository and the file names timm loads from it, safetensors first (timm's own order)."""
    repo = spec.extra.get("hf_hub_id")
    if not repo:
        raise WeightsError(f"{spec.name} has no weights on the Hugging Face hub in timm's pretrained config; "
                           "use --weights FILE (a state dict) or --weights random.")
    cfg = get_pretrained_cfg(spec.extra["timm_name"])
    filename = (cfg.hf_hub_filename if cfg is not None else None) or "pytorch_model.bin"
    return repo, [*_get_safe_alternatives(filename), filename]


def cached_file(spec: BackboneSpec) -> Path | None:
    """The weights file in the hub cache (huggingface_hub's try_to_load_from_cache), or None."""
    repo, files = repo_and_files(spec)
    for filename in files:
        found = huggingface_hub.try_to_load_from_cache(repo, filename, cache_dir=hub_cache_dir())
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def fetch_command(spec: BackboneSpec) -> str:
    repo, files = repo_and_files(spec)
    return f"hf download {repo} {files[0]}"


def _where_to_copy() -> str:
    return (f"then copy its cache folder (~/.cache/huggingface/hub/models--{{org}}--{{name}}, or $HF_HUB_CACHE's) "
            f"into {hub_cache_dir()} here")


def missing_error(spec: BackboneSpec, why: str) -> WeightsError:
    repo, _ = repo_and_files(spec)
    folder = "models--" + repo.replace("/", "--")
    return WeightsError(
        f"No weights for {spec.name} here: {repo} is not in the Hugging Face cache ({hub_cache_dir()}) and {why}. "
        f"On a machine with internet run `{fetch_command(spec)}` (or python -c \"import timm; "
        f"timm.create_model('{spec.extra['timm_name']}', pretrained=True)\"), then copy the folder {folder} from "
        f"its ~/.cache/huggingface/hub into {hub_cache_dir()} here (set HF_HOME or HF_HUB_CACHE to use another "
        "cache); or use --weights FILE, or a backbone that ships its weights (efficientnet_lite0)."
    )


@functools.cache
def _remote_size(repo: str, filename: str) -> int | None:
    try:
        meta = huggingface_hub.get_hf_file_metadata(huggingface_hub.hf_hub_url(repo, filename), timeout=5)
    except Exception:  # noqa: BLE001 - a size is a nicety: no answer is "size unknown"
        return None
    return meta.size


def status(spec: BackboneSpec) -> tuple[str, str | None, str, int | None]:
    """(status, path, detail, bytes) as engine.models.spec.WeightsStatus records them."""
    if not spec.extra.get("hf_hub_id"):  # a few old timm configs name only a URL: not supported here
        return "missing", None, (f"timm declares no Hugging Face hub weights for {spec.name}; use --weights FILE "
                                 "(a state dict) or --weights random"), None
    path = cached_file(spec)
    if path is not None:
        return "cached", str(path), f"in the Hugging Face cache ({hub_cache_dir()})", path.stat().st_size
    repo, files = repo_and_files(spec)
    if hub_offline():
        return "missing", None, (f"not in the Hugging Face cache and offline (TLBENCH_OFFLINE/HF_HUB_OFFLINE): "
                                 f"run `{fetch_command(spec)}` on a networked machine, {_where_to_copy()}"), None
    problem = network_problem(HF_ENDPOINT)
    if problem:
        return "missing", None, (f"not in the Hugging Face cache and no network ({problem}): run "
                                 f"`{fetch_command(spec)}` on a networked machine, {_where_to_copy()}"), None
    size = next((s for s in (_remote_size(repo, f) for f in files) if s is not None), None)
    return "download", None, f"downloads on first use ({human_bytes(size)}) from {HF_ENDPOINT}/{repo}", size


def _progress_class(ctx: JobContext | None, phase: str):
    """A tqdm that reports bytes as ProgressAdvanced events (the CLI's bar, the workbench's) instead of
    drawing on stderr; without a job context huggingface_hub's own bar is used."""
    if ctx is None:
        return None

    class EventBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # we draw nothing ourselves: the events do
            super().__init__(*args, **kwargs)
            self._first = self._done = kwargs.get("initial") or 0  # a resumed download starts part-way
            self._since = time.monotonic()

        def update(self, n=1):
            self._done += n or 0
            rate = (self._done - self._first) / max(time.monotonic() - self._since, 1e-6)
            ctx.progress(ProgressAdvanced(phase, self._done, self.total, "bytes", rate),
                         force=self.total is not None and self._done >= self.total)
            ctx.check()  # a stopped job stops the download too (JobStopped propagates out of huggingface_hub)
            return super().update(n)

    return EventBar


def check_available(spec: BackboneSpec) -> None:
    """Raise the missing-weights error now when the weights are neither cached nor downloadable (offline, or no
    route to the hub: the connection check takes seconds at most and is remembered), so a run fails before
    it starts rather than when it first needs the model."""
    if cached_file(spec) is not None:
        return
    if hub_offline():
        raise missing_error(spec, "downloading is off (TLBENCH_OFFLINE or HF_HUB_OFFLINE is set)")
    problem = network_problem(HF_ENDPOINT)
    if problem:
        raise missing_error(spec, f"there is no network ({problem})")


def ensure(spec: BackboneSpec, ctx: JobContext | None = None) -> Path:
    """The weights file in the hub cache, downloaded once (with progress) when absent and allowed."""
    path = cached_file(spec)
    if path is not None:
        return path
    check_available(spec)
    repo, files = repo_and_files(spec)
    if ctx is not None:
        size = next((s for s in (_remote_size(repo, f) for f in files) if s is not None), None)
        ctx.log(f"downloading {spec.name} weights ({human_bytes(size)}) from {HF_ENDPOINT}/{repo} into "
                f"{hub_cache_dir()} (once: later runs load them from there)")
    last: Exception | None = None
    for filename in files:
        try:
            found = huggingface_hub.hf_hub_download(repo, filename, cache_dir=hub_cache_dir(),
                                                    tqdm_class=_progress_class(ctx, f"weights {spec.name}"))
            return Path(str(found))
        except EntryNotFoundError as err:  # the repository has the other format
            last = err
        except Exception as err:  # noqa: BLE001 - HTTP, DNS, disk: all say the same thing to the user
            if ctx is not None and ctx.stopped:  # asked to stop (JobStopped from the bar, or however the hub
                raise JobStopped() from None     # passed it on): a stopped job, not a failed download
            last = err
            break
    err = missing_error(spec, f"the download failed ({type(last).__name__}: {last})")
    err.exit_code = EXIT_FAILED  # as for a failed `tlbench fetch`: the command itself was right
    raise err


def read_state_dict(path: Path) -> dict:
    """A safetensors file, or a pickle loaded with weights_only=True (no code runs)."""
    try:
        if path.name.endswith(".safetensors"):
            return safetensors.torch.load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise WeightsError(f"The weights file {path} could not be read safely ({type(err).__name__}: {err}). "
                           "Delete it to download it again, or copy a good one there.") from None
    for key in ("state_dict", "model"):  # common wrappers around a state dict
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of parameter names to tensors).")
    return state

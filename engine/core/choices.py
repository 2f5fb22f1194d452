"""The named choices that settings in several layers take: plain tuples, no torch.

The command-line parsers, the workbench's form and the settings classes (TrainConfig, the adversarial params)
read them; the modules that act on them (engine.runtime.devices, engine.runtime.precision,
engine.models.loading, engine.data.splits) import them from here. A choice that one settings class alone
takes (the training modes, the attack methods) lives beside that class.
"""

from __future__ import annotations

# --device
DEVICES = ("auto", "cpu", "cuda", "mps")
# --precision of a job that trains or decides (auto: measured once per device and backbone)
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# --precision of a job on a trained run: the precision it recorded, or one forced for this job
RUN_PRECISIONS = ("recorded", *(p for p in PRECISIONS if p != "auto"))
# --group-duplicates: keep each duplicate group of the last audit on one side of the split
GROUP_DUPLICATES = ("auto", "on", "off")
# `tlbench explain --method`: Grad-CAM, integrated gradients, occlusion
EXPLAIN_METHODS = ("gradcam", "ig", "occlusion")

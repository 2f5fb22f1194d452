# here, not in engine.serve.export, so the CLI's parser needs no torch
# pt2 (torch.export) first: the default; TorchScript is deprecated upstream and kept as the legacy format
EXPORT_FORMATS = ("pt2", "onnx", "torchscript")
EXPORT_FILES = {"pt2": "model.pt2", "onnx": "model.onnx", "torchscript": "model.pt"}

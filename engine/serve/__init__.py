# here, not in engine.serve.export, so the CLI's parser needs no torch
EXPORT_FORMATS = ("torchscript", "onnx")

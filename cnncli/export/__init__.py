"""`cnncli export`: a trained model as a TensorFlow SavedModel, a LiteRT (.tflite) or an ONNX
file, with a sidecar that carries its class names and image conversion, proven to agree with
the Keras model before it is put in place.

- formats: the formats, their packages (the `cnncli[export]` extra), default outputs
- sidecar: the sidecar PATH.cnncli.json, written and read back
- convert: the conversions, through Keras' model.export; int8 calibration images
- check: the agreement check (top-1, max abs diff, accuracy)
- run: export_model, which puts them together atomically
Exported files run again through cnncli.inference.runtimes.
"""

"""Datasets: `build` turns image folders and label tables into a dataset folder (manifest,
index.csv, sharded TFRecords); `store` opens and reads one back, without TensorFlow."""

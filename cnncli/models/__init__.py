"""Models: the course's architectures (presets), spec files (spec), safe loading and saving
with what a model needs stored in the file (io), and layer-by-layer summaries (summary)."""

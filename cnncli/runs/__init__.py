"""Every run at a glance: `cnncli runs` (one row per run folder, read from run.json and
history.csv only, no TensorFlow) and `cnncli report` (one HTML page per run or per
comparison).

- find: which folders are runs (and which are not, counted)
- record: one run folder read into a RunRecord (status, metrics, options)
- table: the rows of `cnncli runs`, sorted, with the options that differ; JSON and CSV
- charts: learning curves (overlaid) and final-metric bars, drawn with matplotlib
- compute: what a report computes with the model (evaluation, summary, activations)
- pages: the HTML of a run's page and of a comparison page
- report: writing the report folders
"""

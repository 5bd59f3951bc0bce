"""Training: `fit` (train and resume into a run folder; checks before TensorFlow loads),
`options` (TrainOptions and its rules), `model` (build and compile), `loop` (model.fit and
interruption), `callbacks`, `events` (what a run reports), `distribute`, `augment` and
`rundir` (the run folder layout). The tf.data input is cnncli.datasets.tfdata."""

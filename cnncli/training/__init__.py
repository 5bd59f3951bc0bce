"""Training: `fit` (train and resume into a run folder), its callbacks, the tf.data input
(cnncli.datasets.tfdata), augmentation layers and the run folder layout (`rundir`)."""

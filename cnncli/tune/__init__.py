"""`cnncli tune`: search the options of `cnncli train` with Optuna, each trial a run folder
(cnncli.tune.run.run_tune); resumable, and shared by several processes or machines."""
